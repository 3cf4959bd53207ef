package doctor

import (
	"strings"
	"testing"
)

// seed adds the named testdata files to the corpus.
func seed(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(readTestdata(f, n))
	}
}

func FuzzParseQEMUVersion(f *testing.F) {
	seed(f, "qemu-7.2-version.txt", "qemu-10.1-version.txt", "qemu-7.2-object-help.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseQEMUVersion(b)
		if err != nil {
			return
		}
		for _, p := range v {
			if p < 0 || p > 9999 {
				t.Fatalf("version %v out of range", v)
			}
		}
		if !strings.Contains(string(b), "QEMU emulator version ") {
			t.Fatalf("parsed %v from output without the version phrase", v)
		}
	})
}

func FuzzHasObject(f *testing.F) {
	seed(f, "qemu-7.2-object-help.txt", "qemu-10.1-object-help.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		if HasObject(b, "tdx-guest") && !strings.Contains(string(b), "tdx-guest") {
			t.Fatal("tdx-guest found where there is none")
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	seed(f, "meminfo-256g.txt", "meminfo-64g.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeminfo(b)
		if err != nil {
			return
		}
		for _, v := range []int64{m.MemTotalKiB, m.MemAvailableKiB, m.HugePagesTotal, m.HugePagesFree, m.HugepageSizeKiB} {
			if v < 0 || v > 1<<50 {
				t.Fatalf("field out of range: %+v", m)
			}
		}
	})
}

func FuzzParseQGSConf(f *testing.F) {
	seed(f, "qgs-vsock.conf", "qgs-socket.conf")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseQGSConf(b)
		if err != nil {
			return
		}
		if c.Port < 0 || c.Port > 0xFFFFFFFE || (c.Port == 0) != (c.Line == 0) {
			t.Fatalf("bad result %+v", c)
		}
	})
}

func FuzzParsePCCSURL(f *testing.F) {
	seed(f, "sgx_default_qcnl.conf", "sgx_default_qcnl-legacy.conf")
	f.Fuzz(func(t *testing.T, b []byte) {
		u := ParsePCCSURL(b)
		if u != "" && !strings.Contains(string(b), u) {
			t.Fatalf("URL %q is not in the input", u)
		}
		if strings.ContainsAny(u, "\n\"") {
			t.Fatalf("URL %q spans a line or a quote", u)
		}
	})
}
