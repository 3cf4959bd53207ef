package configdisk

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

func testConfig() *guest.Config {
	return &guest.Config{
		Version:  1,
		Measured: guest.MeasuredConfig{Instance: "dev", OwnerAddress: "UQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqEBI", Model: "tiny", Debug: true},
		Network:  guest.DevNetwork,
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.img")
	cfg := testConfig()
	if err := Write(p, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != ImageSize {
		t.Errorf("size %d, want %d", st.Size(), ImageSize)
	}
	got, doc, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *cfg {
		t.Errorf("read %+v, want %+v", got, cfg)
	}
	want, _ := Encode(cfg)
	if !bytes.Equal(doc, want) {
		t.Errorf("doc = %q, want %q", doc, want)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want 1", len(ents))
	}
	// Overwrite atomically with another config; byte-reproducible.
	cfg.Measured.Instance = "second"
	if err := Write(p, cfg); err != nil {
		t.Fatal(err)
	}
	got, _, err = Read(p)
	if err != nil || got.Measured.Instance != "second" {
		t.Fatalf("after rewrite: %+v, %v", got, err)
	}
	p2 := filepath.Join(dir, "again.img")
	if err := Write(p2, cfg); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(p2)
	if !bytes.Equal(a, b) {
		t.Error("two writes of the same config differ")
	}
	if _, _, err := ReadBytes(a); err != nil {
		t.Errorf("ReadBytes: %v", err)
	}
}

// TestExternalTools checks the image with dosfstools and mtools when they
// are installed: a strict FAT32 checker and an independent reader.
func TestExternalTools(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.img")
	if err := Write(p, testConfig()); err != nil {
		t.Fatal(err)
	}
	if fsck, err := exec.LookPath("fsck.fat"); err == nil {
		out, err := exec.Command(fsck, "-n", "-v", p).CombinedOutput()
		if err != nil {
			t.Errorf("fsck.fat: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "32 bit entries") {
			t.Errorf("fsck.fat does not see FAT32:\n%s", out)
		}
	} else {
		t.Log("fsck.fat not installed; skipped")
	}
	if mtype, err := exec.LookPath("mtype"); err == nil {
		cmd := exec.Command(mtype, "-i", p, "::"+guest.ConfigFileName)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.CombinedOutput()
		want, _ := Encode(testConfig())
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("mtype: %v\n%q\nwant %q", err, out, want)
		}
	} else {
		t.Log("mtools not installed; skipped")
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	bad := testConfig()
	bad.Measured.Instance = "bad name"
	if err := Write(filepath.Join(dir, "x.img"), bad); err == nil || !strings.Contains(err.Error(), "measured.instance") {
		t.Errorf("invalid config err = %v", err)
	}
	if err := Write(filepath.Join(dir, "x.img"), nil); err == nil {
		t.Error("nil config accepted")
	}
	if err := Write(filepath.Join(dir, "missing", "x.img"), testConfig()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed writes left %d files", len(ents))
	}
}

// smallImage builds a small FAT32 image (go-diskfs allows FAT32 below the
// spec's cluster minimum) holding files name -> content.
func smallImage(t testing.TB, size int64, files map[string][]byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "small.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	fsys, err := fat32.Create(file.New(f, false), size, 0, SectorSize, "T", true)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		w, err := fsys.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(content); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadErrors(t *testing.T) {
	good, _ := Encode(testConfig())
	small := smallImage(t, 128<<10, map[string][]byte{guest.ConfigFileName: good})
	if _, _, err := ReadBytes(small); err != nil {
		t.Fatalf("small image: %v", err)
	}
	loop := bytes.Clone(small)
	// Make the root directory's chain (cluster 2) loop: 2 -> 3 -> 2, in
	// both FAT copies.
	reserved := int(binary.LittleEndian.Uint16(loop[0x0E:]))
	fatBytes := int(binary.LittleEndian.Uint32(loop[0x24:])) * SectorSize
	for _, start := range []int{reserved * SectorSize, reserved*SectorSize + fatBytes} {
		binary.LittleEndian.PutUint32(loop[start+8:], 3)
		binary.LittleEndian.PutUint32(loop[start+12:], 2)
	}
	fatMismatch := bytes.Clone(small)
	binary.LittleEndian.PutUint32(fatMismatch[reserved*SectorSize+40:], 7)
	hugeFAT := bytes.Clone(small)
	binary.LittleEndian.PutUint32(hugeFAT[0x24:], 1<<30)
	fat16 := bytes.Clone(small)
	binary.LittleEndian.PutUint16(fat16[0x16:], 8)

	tests := []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "too small"},
		{"zeros", make([]byte, 1<<20), "signature missing"},
		{"nojson", smallImage(t, 128<<10, map[string][]byte{"other.txt": []byte("x")}), "no config.json"},
		{"badjson", smallImage(t, 128<<10, map[string][]byte{guest.ConfigFileName: []byte("{")}), "config.json: config:"},
		{"badconfig", smallImage(t, 128<<10, map[string][]byte{guest.ConfigFileName: []byte(`{"version":2}`)}), "version 2"},
		{"toolarge", smallImage(t, 256<<10, map[string][]byte{guest.ConfigFileName: bytes.Repeat([]byte(" "), guest.MaxConfigSize+1)}), "larger than"},
		{"loop", loop, "loops"},
		{"fatmismatch", fatMismatch, "fat tables did not match"},
		{"hugefat", hugeFAT, "does not fit"},
		{"fat16", fat16, "FAT12/16"},
		{"truncated", small[:8192], "does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadBytes(tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestReadPathErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Read(filepath.Join(dir, "none.img")); err == nil || !strings.Contains(err.Error(), "none.img") {
		t.Errorf("missing err = %v", err)
	}
	if _, _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file or block device") {
		t.Errorf("dir err = %v", err)
	}
	p := filepath.Join(dir, "junk.img")
	os.WriteFile(p, bytes.Repeat([]byte{0xAB}, 8192), 0o644)
	if _, _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no FAT32") {
		t.Errorf("junk err = %v", err)
	}
}

func FuzzReadBytes(f *testing.F) {
	good, _ := Encode(testConfig())
	f.Add(smallImage(f, 64<<10, map[string][]byte{guest.ConfigFileName: good}))
	f.Add(smallImage(f, 64<<10, map[string][]byte{"a.txt": []byte("x"), guest.ConfigFileName: []byte("{}")}))
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, img []byte) {
		if len(img) > 1<<20 {
			t.Skip()
		}
		cfg, doc, err := ReadBytes(img)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if cfg == nil || len(doc) == 0 || len(doc) > guest.MaxConfigSize {
			t.Fatalf("success with cfg=%v, %d bytes", cfg, len(doc))
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
