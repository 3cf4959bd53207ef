package pack

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chrysalis-cc/chrysalis/models/verity"
)

// treeFiles is the test tree: paths to sizes (-1: directory).
func treeFiles() map[string]int {
	m := map[string]int{
		"config.json":          300,
		"empty":                0,
		"model.gguf":           3*DefaultBlockSize + 17,
		"exact":                DefaultBlockSize,
		"sub/a":                1,
		"sub/deeper/b.bin":     5000,
		"sub/deeper/emptydir":  -1,
		"Z-upper":              10,
		"tokenizer/merges.txt": 70000,
	}
	// Enough entries in one directory to need several directory headers
	// and inode metadata blocks.
	for i := range 300 {
		m[fmt.Sprintf("many/f%03d", i)] = i % 7
	}
	return m
}

func content(path string, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(len(path)), uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// makeTree writes treeFiles under root in an order and with modes and
// times chosen by seed.
func makeTree(t testing.TB, root string, seed uint64) {
	t.Helper()
	files := treeFiles()
	var names []string
	for p := range files {
		names = append(names, p)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	old := syscall.Umask(int(seed % 2 * 0o077))
	defer syscall.Umask(old)
	for _, p := range names {
		full := filepath.Join(root, p)
		n := files[p]
		if n < 0 {
			if err := os.MkdirAll(full, 0o700); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
				t.Fatal(err)
			}
			// Group/other bits and the umask vary and must not matter;
			// the owner-execute bit is part of the content (isExec).
			mode := os.FileMode(0o600 + seed%2*0o055)
			if isExec(p) {
				mode |= 0o100
			}
			if err := os.WriteFile(full, content(p, n), mode); err != nil {
				t.Fatal(err)
			}
		}
		tm := time.Unix(int64(1e9+r.IntN(1e8)), 0)
		os.Chtimes(full, tm, tm)
	}
}

// isExec says which test files carry the owner-execute bit.
func isExec(p string) bool { return len(p)%3 == 0 }

func TestDeterministic(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "first", "model"), filepath.Join(base, "x", "second-dir")
	makeTree(t, a, 1)
	makeTree(t, b, 2)
	ra, err := Pack(context.Background(), a, filepath.Join(base, "a.img"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Pack(context.Background(), b, filepath.Join(base, "b.img"), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{"", ".verity"} {
		x, _ := os.ReadFile(filepath.Join(base, "a.img"+suf))
		y, _ := os.ReadFile(filepath.Join(base, "b.img"+suf))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("a.img%s and b.img%s differ (%d, %d bytes)", suf, suf, len(x), len(y))
		}
	}
	if !bytes.Equal(ra.RootHash, rb.RootHash) || ra.Size%4096 != 0 || ra.Files != len(treeFiles())-1 {
		t.Fatalf("results differ or wrong: %+v %+v", ra, rb)
	}
	seed := []byte(hex.EncodeToString(ra.ImageSHA256))
	if !bytes.Equal(ra.Salt, verity.DeriveSalt(seed)) || ra.UUID != verity.DeriveUUID(seed) {
		t.Fatal("salt or uuid not derived from the image hash")
	}
	// The hash device verifies in Go.
	img, _ := os.ReadFile(filepath.Join(base, "a.img"))
	hd, err := os.Open(ra.VerityPath)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	if err := verity.Verify(verity.Bytes(img), int64(len(img)), hd, ra.RootHash, verity.Params{Salt: ra.Salt, UUID: ra.UUID}); err != nil {
		t.Fatal(err)
	}
	// A different content gives a different image.
	os.WriteFile(filepath.Join(b, "empty"), []byte("x"), 0o644)
	rc, err := Pack(context.Background(), b, filepath.Join(base, "b.img"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rc.RootHash, ra.RootHash) {
		t.Fatal("changed content, same root hash")
	}
}

// TestTools checks the image with unsquashfs and the hash device with
// veritysetup, when they are installed (CI installs both).
func TestTools(t *testing.T) {
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs not installed (apt-get install squashfs-tools)")
	}
	base := t.TempDir()
	src := filepath.Join(base, "src")
	makeTree(t, src, 3)
	for _, bs := range []int{4096, DefaultBlockSize, 1 << 20} {
		img := filepath.Join(base, fmt.Sprintf("m%d.img", bs))
		res, err := Pack(context.Background(), src, img, Options{BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(base, fmt.Sprintf("x%d", bs))
		if out, err := exec.Command("unsquashfs", "-no-progress", "-d", dst, img).CombinedOutput(); err != nil {
			t.Fatalf("unsquashfs -d: %v\n%s", err, out)
		}
		for p, n := range treeFiles() {
			fi, err := os.Stat(filepath.Join(dst, p))
			if err != nil {
				t.Fatal(err)
			}
			if n < 0 {
				if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
					t.Fatalf("%s: %v", p, fi.Mode())
				}
				continue
			}
			got, _ := os.ReadFile(filepath.Join(dst, p))
			want := os.FileMode(0o644)
			if isExec(p) {
				want = 0o755
			}
			if !bytes.Equal(got, content(p, n)) || fi.Mode().Perm() != want {
				t.Fatalf("%s: content or mode (%v) differs after unsquashfs", p, fi.Mode())
			}
		}
		var count int
		filepath.WalkDir(dst, func(string, os.DirEntry, error) error { count++; return nil })
		if count != res.Files+res.Dirs {
			t.Fatalf("unsquashfs extracted %d entries, want %d", count, res.Files+res.Dirs)
		}
		lls, err := exec.Command("unsquashfs", "-lls", img).CombinedOutput()
		if err != nil {
			t.Fatalf("unsquashfs -lls: %v\n%s", err, lls)
		}
		if strings.Count(string(lls), "squashfs-root/") != res.Files+res.Dirs-1 {
			t.Fatalf("unsquashfs -lls lists %d entries, want %d\n%s", strings.Count(string(lls), "squashfs-root/"), res.Files+res.Dirs-1, lls)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(lls)), "\n") {
			if strings.Contains(l, "squashfs-root") && !strings.Contains(l, "0/0") && !strings.Contains(l, "root/root") {
				t.Fatalf("owner not 0/0: %s", l)
			}
			if strings.Contains(l, "squashfs-root") && !strings.Contains(l, "1970-01-01 00:00") {
				t.Fatalf("mtime not 0: %s", l)
			}
		}
		if _, err := exec.LookPath("veritysetup"); err == nil {
			out, err := exec.Command("veritysetup", "verify", img, res.VerityPath, hex.EncodeToString(res.RootHash)).CombinedOutput()
			if err != nil {
				t.Fatalf("veritysetup verify: %v\n%s", err, out)
			}
		}
	}
}

func TestBadInputs(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "good")
	os.MkdirAll(good, 0o755)
	os.WriteFile(filepath.Join(good, "f"), []byte("x"), 0o644)
	mk := func(name string, f func(dir string)) string {
		d := filepath.Join(base, name)
		os.MkdirAll(d, 0o755)
		f(d)
		return d
	}
	fifo := mk("fifo", func(d string) { syscall.Mkfifo(filepath.Join(d, "p"), 0o644) })
	link := mk("link", func(d string) { os.Symlink("/etc/passwd", filepath.Join(d, "l")) })
	long := mk("long", func(d string) {
		// 255 bytes is the Linux limit, so a longer name cannot exist;
		// 255 itself is accepted. Check the limit through the scanner.
		os.WriteFile(filepath.Join(d, strings.Repeat("n", 255)), nil, 0o644)
	})
	file := filepath.Join(base, "plainfile")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		name, dir, out, want string
		bs                   int
	}{
		{"missing dir", filepath.Join(base, "nope"), filepath.Join(base, "o.img"), "no such file", 0},
		{"not a dir", file, filepath.Join(base, "o.img"), "not a directory", 0},
		{"fifo", fifo, filepath.Join(base, "o.img"), "not a regular file", 0},
		{"symlink", link, filepath.Join(base, "o.img"), "symbolic link", 0},
		{"out inside", good, filepath.Join(good, "o.img"), "inside the input", 0},
		{"out deep inside", good, filepath.Join(good, ".", "o.img"), "inside the input", 0},
		{"out missing dir", good, filepath.Join(base, "nodir", "o.img"), "output directory", 0},
		{"bad block size", good, filepath.Join(base, "o.img"), "block size", 5000},
		{"empty out", good, "", "no output", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pack(context.Background(), tc.dir, tc.out, Options{BlockSize: tc.bs})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Pack(context.Background(), long, filepath.Join(base, "long.img"), Options{}); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pack(ctx, good, filepath.Join(base, "c.img"), Options{}); err == nil {
		t.Fatal("cancelled context: no error")
	}
	if _, err := os.Stat(filepath.Join(base, "c.img")); !os.IsNotExist(err) {
		t.Fatal("cancelled pack left an image")
	}
}

func TestEmptyDir(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "e")
	os.Mkdir(src, 0o755)
	res, err := Pack(context.Background(), src, filepath.Join(base, "e.img"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 4096 || res.Files != 0 || res.Verity.Levels != 0 {
		t.Fatalf("%+v", res)
	}
	if _, err := exec.LookPath("unsquashfs"); err == nil {
		if out, err := exec.Command("unsquashfs", "-lls", filepath.Join(base, "e.img")).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
}

// BenchmarkPack packs a generated 64 MiB model directory (one large file
// and a few small ones), image and verity tree.
func BenchmarkPack(b *testing.B) {
	base := b.TempDir()
	src := filepath.Join(base, "m")
	os.Mkdir(src, 0o755)
	big := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	os.WriteFile(filepath.Join(src, "model.gguf"), big[:60<<20], 0o644)
	for i := range 4 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("shard%d", i)), big[60<<20+i<<20:60<<20+(i+1)<<20], 0o644)
	}
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Pack(context.Background(), src, filepath.Join(base, "m.img"), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
