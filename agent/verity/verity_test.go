package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	mverity "github.com/chrysalis-cc/chrysalis/models/verity"
	"golang.org/x/sys/unix"
)

func iowr(nr uint) uint { return 3<<30 | dmIoctlSize<<16 | 0xfd<<8 | nr }

func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		got uint
		nr  uint
	}{{cmdVersion, 0}, {cmdDevCreate, 3}, {cmdDevRemove, 4}, {cmdDevSuspend, 6}, {cmdTableLoad, 9}, {cmdTableStatus, 12}} {
		// The generic _IOC layout (amd64, arm64, riscv64); others differ
		// in the direction bits, which x/sys/unix gets right.
		switch runtime.GOARCH {
		case "amd64", "arm64", "riscv64":
			if c.got != iowr(c.nr) {
				t.Errorf("nr %d: got %#x, want %#x", c.nr, c.got, iowr(c.nr))
			}
		}
	}
}

var ne = binary.NativeEndian

func TestEncodeRequestHeader(t *testing.T) {
	b, err := encodeRequest(header{name: "model", uuid: "CHRYSALIS-VERITY-model", flags: dmReadonlyFlag, targetCount: 2, dev: 0x1234}, []byte("abcdefgh"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != dmIoctlSize+8 {
		t.Fatalf("len %d", len(b))
	}
	want := map[int]uint32{0: 4, 4: 0, 8: 0, 12: uint32(len(b)), 16: 312, 20: 2, 24: 0, 28: 1, 32: 0, 36: 0}
	for off, v := range want {
		if got := ne.Uint32(b[off:]); got != v {
			t.Errorf("u32 at %d = %d, want %d", off, got, v)
		}
	}
	if got := ne.Uint64(b[40:]); got != 0x1234 {
		t.Errorf("dev %#x", got)
	}
	if !bytes.Equal(b[48:48+6], []byte("model\x00")) || !allZeroT(b[48+5:176]) {
		t.Errorf("name field %q", b[48:176])
	}
	if !bytes.Equal(b[176:176+22], []byte("CHRYSALIS-VERITY-model")) || !allZeroT(b[176+22:305]) {
		t.Errorf("uuid field %q", b[176:305])
	}
	if !allZeroT(b[305:312]) || string(b[312:]) != "abcdefgh" {
		t.Errorf("data %q", b[305:])
	}

	// Reply room.
	b, err = encodeRequest(header{name: "x"}, nil, 1000)
	if err != nil || len(b) != 1312 || ne.Uint32(b[12:]) != 1312 || ne.Uint32(b[16:]) != 312 {
		t.Errorf("extra: len %d size %d err %v", len(b), ne.Uint32(b[12:]), err)
	}

	// Limits: 127 name bytes and 128 uuid bytes fit, one more does not.
	n127, u128 := strings.Repeat("n", 127), strings.Repeat("u", 128)
	b, err = encodeRequest(header{name: n127, uuid: u128}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b[48+127] != 0 || b[176+128] != 0 || b[48+126] != 'n' || b[176+127] != 'u' {
		t.Error("terminating NULs missing")
	}
	for _, h := range []header{{name: n127 + "n"}, {uuid: u128 + "u"}, {name: "a\x00b"}, {uuid: "a\x00"}} {
		if _, err := encodeRequest(h, nil, 0); err == nil {
			t.Errorf("%q/%q accepted", h.name, h.uuid)
		}
	}
}

func allZeroT(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func TestEncodeTargets(t *testing.T) {
	for _, params := range []string{"", "1", "1234567", "12345678", strings.Repeat("p", 100)} {
		b, err := encodeTargets([]target{{start: 5, length: 1 << 40, typ: "verity", params: params}, {start: 7, length: 9, typ: "linear", params: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		n := (40 + len(params) + 1 + 7) / 8 * 8
		if len(b) != n+48 || len(b)%8 != 0 {
			t.Fatalf("params %q: len %d, want %d", params, len(b), n+48)
		}
		if ne.Uint64(b[0:]) != 5 || ne.Uint64(b[8:]) != 1<<40 || ne.Uint32(b[16:]) != 0 || ne.Uint32(b[20:]) != uint32(n) {
			t.Errorf("spec header % x", b[:24])
		}
		if string(b[24:40]) != "verity\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
			t.Errorf("type %q", b[24:40])
		}
		if string(b[40:40+len(params)]) != params || !allZeroT(b[40+len(params):n]) {
			t.Errorf("params %q", b[40:n])
		}
		s := b[n:]
		if ne.Uint64(s[0:]) != 7 || ne.Uint64(s[8:]) != 9 || ne.Uint32(s[20:]) != 48 || cstr(s[24:40]) != "linear" || string(s[40:42]) != "x\x00" {
			t.Errorf("second spec % x", s)
		}
	}
	for _, tg := range []target{{typ: ""}, {typ: strings.Repeat("t", 16)}, {typ: "verity", params: "a\x00"}} {
		if _, err := encodeTargets([]target{tg}); err == nil {
			t.Errorf("%+v accepted", tg)
		}
	}
}

var (
	salt32 = bytes.Repeat([]byte{0xab}, 32)
	root32 = bytes.Repeat([]byte{0x11}, 32)
)

func TestTableParams(t *testing.T) {
	data, hash := unix.Mkdev(7, 0), unix.Mkdev(259, 300)
	cases := []struct {
		name    string
		sb      mverity.Superblock
		root    []byte
		opts    Options
		want    string
		sectors uint64
	}{
		{"4096 sha256 salt", mverity.Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 262144, Salt: salt32}, root32, Options{},
			"1 7:0 259:300 4096 4096 262144 1 sha256 " + strings.Repeat("11", 32) + " " + strings.Repeat("ab", 32), 2097152},
		{"512 blocks", mverity.Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 512, HashBlockSize: 512, DataBlocks: 3, Salt: []byte{1, 2}}, root32, Options{OnCorruption: RestartOnCorruption},
			"1 7:0 259:300 512 512 3 1 sha256 " + strings.Repeat("11", 32) + " 0102 1 restart_on_corruption", 3},
		{"no salt sha512", mverity.Superblock{Version: 1, HashType: 1, Algorithm: "sha512", DataBlockSize: 4096, HashBlockSize: 1024, DataBlocks: 10, Salt: []byte{}}, bytes.Repeat([]byte{0xfe}, 64), Options{OnCorruption: PanicOnCorruption},
			"1 7:0 259:300 4096 1024 10 1 sha512 " + strings.Repeat("fe", 64) + " - 1 panic_on_corruption", 80},
	}
	for _, c := range cases {
		got, sectors, err := tableParams(&c.sb, data, hash, c.root, c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want || sectors != c.sectors {
			t.Errorf("%s:\n got %q %d\nwant %q %d", c.name, got, sectors, c.want, c.sectors)
		}
	}
	sb := cases[0].sb
	if _, _, err := tableParams(&sb, data, hash, root32[:31], Options{}); err == nil {
		t.Error("short root hash accepted")
	}
	if _, _, err := tableParams(&sb, data, hash, root32, Options{OnCorruption: 7}); err == nil {
		t.Error("bad corruption mode accepted")
	}
	sb.Algorithm = "md5"
	if _, _, err := tableParams(&sb, data, hash, root32, Options{}); err == nil {
		t.Error("md5 accepted")
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"model", "m-1.2_x", strings.Repeat("a", 111)} {
		if err := checkName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("a", 112), strings.Repeat("a", 200)} {
		if err := checkName(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

// fakeControl records requests and answers like the kernel.
type fakeControl struct {
	reqs   [][]byte
	cmds   []uint
	fail   map[uint]error
	status string
	closed bool
}

func (f *fakeControl) ioctl(cmd uint, b []byte) error {
	f.cmds = append(f.cmds, cmd)
	f.reqs = append(f.reqs, bytes.Clone(b))
	if err := f.fail[cmd]; err != nil {
		return err
	}
	ne.PutUint32(b[0:], 4)
	ne.PutUint32(b[4:], 48)
	switch cmd {
	case cmdDevCreate, cmdDevSuspend:
		ne.PutUint64(b[40:], uint64(unix.Mkdev(253, 3)))
		ne.PutUint32(b[28:], ne.Uint32(b[28:])|dmReadonlyFlag)
		if cmd == cmdDevSuspend {
			ne.PutUint32(b[28:], dmReadonlyFlag)
		}
	case cmdTableStatus:
		need := 312 + 40 + len(f.status) + 1
		if len(b) < need {
			ne.PutUint32(b[28:], dmBufferFullFlag)
			return nil
		}
		ne.PutUint32(b[20:], 1)
		s := b[312:]
		ne.PutUint64(s[8:], 16)
		copy(s[24:], "verity")
		copy(s[40:], f.status+"\x00")
	}
	return nil
}

func (f *fakeControl) Close() error { f.closed = true; return nil }

// writeImage formats blocks×bs bytes of data and returns the paths of the
// data and hash files and the root hash.
func writeImage(t *testing.T, blocks, bs int, salt []byte) (string, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, blocks*bs)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	dp, hp := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	if err := os.WriteFile(dp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	hf, err := os.Create(hp)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	res, err := mverity.Format(mverity.Bytes(data), int64(len(data)), hf, mverity.Params{DataBlockSize: bs, HashBlockSize: bs, Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	return dp, hp, res.RootHash
}

func fakeSystem(ctl *fakeControl) (system, *[]string) {
	var nodes []string
	return system{
		openControl: func() (control, error) { return ctl, nil },
		blockDev: func(p string) (uint64, error) {
			if strings.HasSuffix(p, "data") {
				return uint64(unix.Mkdev(7, 1)), nil
			}
			return uint64(unix.Mkdev(7, 2)), nil
		},
		ensureNode: func(p string, dev uint64) error { nodes = append(nodes, p); return nil },
	}, &nodes
}

func TestOpenRequests(t *testing.T) {
	dp, hp, root := writeImage(t, 300, 4096, salt32)
	ctl := &fakeControl{status: "V"}
	sys, nodes := fakeSystem(ctl)
	d, err := open(sys, "model", dp, hp, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantParams := "1 7:1 7:2 4096 4096 300 1 sha256 " + hex.EncodeToString(root) + " " + strings.Repeat("ab", 32)
	if d.Table != wantParams || d.TableLine() != "0 2400 verity "+wantParams {
		t.Errorf("table %q", d.TableLine())
	}
	if d.Path != "/dev/dm-3" || len(*nodes) != 1 || (*nodes)[0] != "/dev/dm-3" || d.UUID != "CHRYSALIS-VERITY-model" {
		t.Errorf("path %q nodes %v uuid %q", d.Path, *nodes, d.UUID)
	}
	if want := []uint{cmdVersion, cmdDevCreate, cmdTableLoad, cmdDevSuspend}; !equalCmds(ctl.cmds, want) {
		t.Fatalf("cmds %x, want %x", ctl.cmds, want)
	}
	create := ctl.reqs[1]
	if cstr(create[48:176]) != "model" || cstr(create[176:305]) != "CHRYSALIS-VERITY-model" || ne.Uint32(create[28:]) != dmReadonlyFlag {
		t.Errorf("create header %q %q %d", create[48:176], create[176:305], ne.Uint32(create[28:]))
	}
	load := ctl.reqs[2]
	specLen := (40 + len(wantParams) + 1 + 7) &^ 7
	if len(load) != 312+specLen || ne.Uint32(load[12:]) != uint32(len(load)) || ne.Uint32(load[16:]) != 312 || ne.Uint32(load[20:]) != 1 || ne.Uint32(load[28:]) != dmReadonlyFlag {
		t.Errorf("load header: len %d size %d start %d count %d", len(load), ne.Uint32(load[12:]), ne.Uint32(load[16:]), ne.Uint32(load[20:]))
	}
	spec := load[312:]
	if ne.Uint64(spec[0:]) != 0 || ne.Uint64(spec[8:]) != 2400 || cstr(spec[24:40]) != "verity" || cstr(spec[40:]) != wantParams || ne.Uint32(spec[20:]) != uint32(specLen) {
		t.Errorf("load spec %q", spec)
	}
	resume := ctl.reqs[3]
	if cstr(resume[48:176]) != "model" || ne.Uint32(resume[28:]) != 0 {
		t.Errorf("resume flags %d", ne.Uint32(resume[28:]))
	}

	st, err := d.Status()
	if err != nil || st.Corrupted || st.Raw != "V" {
		t.Errorf("status %+v %v", st, err)
	}
	ctl.status = "C" + strings.Repeat(" x", 10000) // forces a buffer-full retry
	st, err = d.Status()
	if err != nil || !st.Corrupted {
		t.Errorf("status C: %+v %v", st.Corrupted, err)
	}
	ctl.status = "?"
	if _, err := d.Status(); err == nil {
		t.Error("unknown status accepted")
	}
	if err := d.Close(); err != nil || !ctl.closed || ctl.cmds[len(ctl.cmds)-1] != cmdDevRemove {
		t.Errorf("close: %v", err)
	}
	if _, err := d.Status(); err == nil {
		t.Error("status after close")
	}
}

func equalCmds(a, b []uint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenCleansUp(t *testing.T) {
	dp, hp, root := writeImage(t, 4, 512, []byte{})
	ctl := &fakeControl{fail: map[uint]error{cmdTableLoad: unix.EINVAL}}
	sys, _ := fakeSystem(ctl)
	_, err := open(sys, "m", dp, hp, root, Options{})
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("err %v", err)
	}
	if ctl.cmds[len(ctl.cmds)-1] != cmdDevRemove || !ctl.closed {
		t.Errorf("no cleanup: cmds %x closed %v", ctl.cmds, ctl.closed)
	}
	if !strings.Contains(err.Error(), " 512 512 4 1 sha256 ") || !strings.Contains(err.Error(), " -)") {
		t.Errorf("error lacks the table: %v", err)
	}
}

func TestOpenRejects(t *testing.T) {
	dp, hp, root := writeImage(t, 10, 4096, salt32)
	sys, _ := fakeSystem(&fakeControl{})
	try := func(what, name, dp, hp string, root []byte) {
		t.Helper()
		if _, err := open(sys, name, dp, hp, root, Options{}); err == nil {
			t.Errorf("%s accepted", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	try("short root", "m", dp, hp, root[:20])
	try("long root", "m", dp, hp, append(root, 0))
	try("slash name", "a/b", dp, hp, root)
	try("long name", strings.Repeat("n", 128), dp, hp, root)

	small := filepath.Join(t.TempDir(), "small")
	b, _ := os.ReadFile(dp)
	os.WriteFile(small, b[:9*4096+4095], 0o600)
	try("small data", "m", small, hp, root)

	h, _ := os.ReadFile(hp)
	short := filepath.Join(t.TempDir(), "shorthash")
	os.WriteFile(short, h[:len(h)-1], 0o600)
	try("short hash device", "m", dp, short, root)

	bad := bytes.Clone(h)
	copy(bad[32:64], "md5\x00\x00\x00")
	badp := filepath.Join(t.TempDir(), "badalg")
	os.WriteFile(badp, bad, 0o600)
	try("unknown algorithm", "m", dp, badp, root)

	bad = bytes.Clone(h)
	bad[0] = 'V'
	os.WriteFile(badp, bad, 0o600)
	try("bad signature", "m", dp, badp, root)
	try("missing hash device", "m", dp, badp+"x", root)
}
