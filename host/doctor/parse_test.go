package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseQEMUVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		err  string
	}{
		{"@qemu-7.2-version.txt", Version{7, 2, 22}, ""},
		{"@qemu-10.1-version.txt", Version{10, 1, 0}, ""},
		{"QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4+tdx1.0)\n", Version{8, 2, 2}, ""},
		{"QEMU emulator version 9.1.50 (v9.1.0-1234-gabcdef)\n", Version{9, 1, 50}, ""},
		{"QEMU emulator version 10.1\n", Version{10, 1, 0}, ""},
		{"qemu-kvm 1.0\n", Version{}, `first line "qemu-kvm 1.0"`},
		{"", Version{}, "no \"QEMU emulator version"},
	}
	for _, tt := range tests {
		in := []byte(tt.in)
		if name, ok := strings.CutPrefix(tt.in, "@"); ok {
			in = readTestdata(t, name)
		}
		v, err := ParseQEMUVersion(in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || v != tt.want {
			t.Errorf("%q: %v, %v; want %v", tt.in, v, err, tt.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"10.1", "10.1.0", 0},
		{"7.2.22", "10.1", -1},
		{"10.2", "10.1", 1},
		{"8.2.2", "8.2.3", -1},
	}
	for _, tt := range tests {
		a, err := ParseVersion(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseVersion(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Compare(b); got != tt.want {
			t.Errorf("%s vs %s: %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for _, bad := range []string{"", "10", "10.1.2.3", "v10.1", "10.x"} {
		if _, err := ParseVersion(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseVersion(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestHasObject(t *testing.T) {
	if HasObject(readTestdata(t, "qemu-7.2-object-help.txt"), "tdx-guest") {
		t.Error("QEMU 7.2 lists tdx-guest")
	}
	if !HasObject(readTestdata(t, "qemu-7.2-object-help.txt"), "sev-guest") {
		t.Error("QEMU 7.2 does not list sev-guest")
	}
	if !HasObject(readTestdata(t, "qemu-10.1-object-help.txt"), "tdx-guest") {
		t.Error("QEMU 10.1 does not list tdx-guest")
	}
	if HasObject([]byte("  tdx-guest-x\n"), "tdx-guest") {
		t.Error("prefix match")
	}
}

func TestParseMeminfo(t *testing.T) {
	m, err := ParseMeminfo(readTestdata(t, "meminfo-256g.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := Meminfo{MemTotalKiB: 263845888, MemAvailableKiB: 251658240, HugePagesTotal: 1024, HugePagesFree: 1024, HugepageSizeKiB: 2048}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	bad := []struct{ in, err string }{
		{"MemTotal: 1 kB\n", "no MemAvailable line"},
		{"MemAvailable: 1 kB\n", "no MemTotal line"},
		{"MemTotal: x kB\nMemAvailable: 1 kB\n", `line 1: MemTotal: "x" is not a size`},
		{"MemTotal: 1 MB\nMemAvailable: 1 kB\n", "line 1: MemTotal: want a number"},
		{"MemTotal: -5 kB\nMemAvailable: 1 kB\n", `"-5" is not a size`},
		{"MemTotal: 1 kB\nMemAvailable: 1 kB\nMemTotal: 2 kB\n", "line 3: MemTotal given twice"},
		{"MemTotal:\nMemAvailable: 1 kB\n", "line 1: MemTotal: want a number"},
	}
	for _, tt := range bad {
		if _, err := ParseMeminfo([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
		}
	}
}

func TestParseQGSConf(t *testing.T) {
	tests := []struct {
		in   string
		want QGSConf
		err  string
	}{
		{"@qgs-vsock.conf", QGSConf{Port: 4050, Line: 2}, ""},
		{"@qgs-socket.conf", QGSConf{}, ""},
		{"  port=4051  \n", QGSConf{Port: 4051, Line: 1}, ""},
		{"number_threads = 4\nreport = 1\n", QGSConf{}, ""},
		{"port = http\n", QGSConf{}, `line 1: port "http" is not a vsock port number`},
		{"\n\nport = 0\n", QGSConf{}, `line 3: port "0"`},
	}
	for _, tt := range tests {
		in := []byte(tt.in)
		if name, ok := strings.CutPrefix(tt.in, "@"); ok {
			in = readTestdata(t, name)
		}
		c, err := ParseQGSConf(in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || c != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, c, err, tt.want)
		}
	}
}

func TestParsePCCSURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"@sgx_default_qcnl.conf", "https://localhost:8081/sgx/certification/v4/"},
		{"@sgx_default_qcnl-legacy.conf", "https://pccs.example.net:8081/sgx/certification/v3/"},
		{"{\n  //\"pccs_url\": \"https://commented/\"\n}\n", ""},
		{"# PCCS_URL=https://commented/\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		in := []byte(tt.in)
		if name, ok := strings.CutPrefix(tt.in, "@"); ok {
			in = readTestdata(t, name)
		}
		if got := ParsePCCSURL(in); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}
