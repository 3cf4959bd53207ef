package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeData writes blocks×bs bytes of deterministic pseudo-random data to
// path. With sparse, only every 997th block and the last one are written
// (the rest are holes), to keep large cases cheap.
func writeData(t testing.TB, path string, blocks int64, bs int, sparse bool, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, uint64(blocks)))
	buf := make([]byte, bs)
	for b := int64(0); b < blocks; b++ {
		if sparse && b%997 != 0 && b != blocks-1 {
			continue
		}
		for i := 0; i < bs; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.WriteAt(buf, b*int64(bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(blocks * int64(bs)); err != nil {
		t.Fatal(err)
	}
}

var rootRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)\s*$`)

func veritysetupArgs(p Params) []string {
	p = p.withDefaults()
	salt := hex.EncodeToString(p.Salt)
	if len(p.Salt) == 0 {
		salt = "-"
	}
	args := []string{
		"--hash=" + p.Hash,
		fmt.Sprintf("--data-block-size=%d", p.DataBlockSize),
		fmt.Sprintf("--hash-block-size=%d", p.HashBlockSize),
		"--salt=" + salt,
	}
	if p.NoSuperblock {
		args = append(args, "--no-superblock")
	} else {
		args = append(args, "--uuid="+FormatUUID(p.UUID))
	}
	return args
}

func needVeritysetup(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Skip("veritysetup not on PATH (install cryptsetup-bin); skipping the comparison with the reference implementation")
	}
	return path
}

func TestAgainstVeritysetup(t *testing.T) {
	vs := needVeritysetup(t)
	seed := []byte("test archive")
	salt := DeriveSalt(seed)
	uuid := DeriveUUID(seed)
	cases := []struct {
		name   string
		blocks int64
		p      Params
		sparse bool
	}{
		{"1 block", 1, Params{}, false},
		{"2 blocks", 2, Params{}, false},
		{"127 blocks", 127, Params{}, false},
		{"128 blocks", 128, Params{}, false},
		{"129 blocks", 129, Params{}, false},
		{"128x128 blocks", 128 * 128, Params{}, true},
		{"128x128+1 blocks (3 levels)", 128*128 + 1, Params{}, true},
		{"512-byte blocks 1", 1, Params{DataBlockSize: 512, HashBlockSize: 512}, false},
		{"512-byte blocks 17", 17, Params{DataBlockSize: 512, HashBlockSize: 512}, false},
		{"512-byte blocks 16x16+1 (3 levels)", 16*16 + 1, Params{DataBlockSize: 512, HashBlockSize: 512}, false},
		{"512-byte blocks 4 levels", 16*16*16 + 3, Params{DataBlockSize: 512, HashBlockSize: 512}, false},
		{"data 512 hash 4096", 1000, Params{DataBlockSize: 512}, false},
		{"data 4096 hash 512", 300, Params{HashBlockSize: 512}, false},
		{"data 8192 hash 1024", 70, Params{DataBlockSize: 8192, HashBlockSize: 1024}, false},
		{"sha512 65 blocks", 65, Params{Hash: "sha512"}, false},
		{"sha512 512-byte hash blocks", 100, Params{Hash: "sha512", HashBlockSize: 512}, false},
		{"sha1 129 blocks", 129, Params{Hash: "sha1"}, false},
		{"sha1 512-byte blocks", 40, Params{Hash: "sha1", DataBlockSize: 512, HashBlockSize: 512}, false},
		{"empty salt", 129, Params{Salt: []byte{}}, false},
		{"short salt", 3, Params{Salt: []byte{0xab, 0xcd, 0xef}}, false},
		{"256-byte salt", 200, Params{Salt: bytes.Repeat([]byte{0x5a}, 256)}, false},
		{"no superblock", 129, Params{NoSuperblock: true}, false},
		{"no superblock 1 block", 1, Params{NoSuperblock: true}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := c.p
			if p.Salt == nil {
				p.Salt = salt
			}
			p.UUID = uuid
			dbs := p.withDefaults().DataBlockSize
			data := filepath.Join(dir, "data")
			writeData(t, data, c.blocks, dbs, c.sparse, uint64(i))

			refHash := filepath.Join(dir, "ref.hash")
			out, err := exec.Command(vs, append(append([]string{"format"}, veritysetupArgs(p)...), data, refHash)...).CombinedOutput()
			if err != nil {
				t.Fatalf("veritysetup format: %v\n%s", err, out)
			}
			m := rootRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no root hash in veritysetup output:\n%s", out)
			}
			refRoot := string(m[1])

			f, err := os.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var buf writerAtBuffer
			res, err := Format(f, c.blocks*int64(dbs), &buf, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(res.RootHash); got != refRoot {
				t.Errorf("root hash %s, veritysetup %s", got, refRoot)
			}
			ref, err := os.ReadFile(refHash)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(buf.b)) != res.HashDeviceSize {
				t.Errorf("wrote %d bytes, HashDeviceSize %d", len(buf.b), res.HashDeviceSize)
			}
			if !bytes.Equal(buf.b, ref) {
				t.Errorf("hash device differs from veritysetup's (ours %d bytes, theirs %d, first difference at %d)",
					len(buf.b), len(ref), firstDiff(buf.b, ref))
			}
			if res.DataBlocks != c.blocks {
				t.Errorf("DataBlocks %d, want %d", res.DataBlocks, c.blocks)
			}
			if want := regexp.MustCompile(fmt.Sprintf(`(?m)^Hash blocks:\s+%d$`, res.HashBlocks)); !c.p.NoSuperblock && !want.Match(out) {
				t.Errorf("HashBlocks %d not in veritysetup output:\n%s", res.HashBlocks, out)
			}
			t.Logf("levels %d, hash blocks %d, hash device %d bytes", res.Levels, res.HashBlocks, res.HashDeviceSize)

			// veritysetup verify accepts our hash device and root hash.
			ours := filepath.Join(dir, "ours.hash")
			if err := os.WriteFile(ours, buf.b, 0o600); err != nil {
				t.Fatal(err)
			}
			vargs := []string{"verify"}
			if p.NoSuperblock {
				vargs = append(vargs, veritysetupArgs(p)...)
			}
			vargs = append(vargs, data, ours, hex.EncodeToString(res.RootHash))
			if out, err := exec.Command(vs, vargs...).CombinedOutput(); err != nil {
				t.Errorf("veritysetup verify on our hash device: %v\n%s", err, out)
			}

			// Our Verify accepts it, and names a flipped data block.
			size := c.blocks * int64(dbs)
			if err := Verify(f, size, bytes.NewReader(buf.b), res.RootHash, p); err != nil {
				t.Errorf("Verify: %v", err)
			}
			bad := c.blocks / 2
			flipped := flipReader{f, bad*int64(dbs) + 7}
			err = Verify(flipped, size, bytes.NewReader(buf.b), res.RootHash, p)
			want := fmt.Sprintf("data block %d ", bad)
			if c.blocks == 1 {
				want = "data block 0 "
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Verify with a flipped byte in block %d: %v; want an error naming %q", bad, err, want)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// writerAtBuffer is an in-memory io.WriterAt.
type writerAtBuffer struct{ b []byte }

func (w *writerAtBuffer) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(w.b)) {
		w.b = append(w.b, make([]byte, end-int64(len(w.b)))...)
	}
	copy(w.b[off:], p)
	return len(p), nil
}

// flipReader inverts the byte at off.
type flipReader struct {
	r   io.ReaderAt
	off int64
}

func (f flipReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if f.off >= off && f.off < off+int64(n) {
		p[f.off-off] ^= 0xff
	}
	return n, err
}

func TestPaddingNotMultiple(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("chrysalis"), 1000), 0o600); err != nil { // 9000 bytes
		t.Fatal(err)
	}
	p := Params{Salt: DeriveSalt(nil), UUID: DeriveUUID(nil)}
	_, err := Format(bytes.NewReader(nil), 9000, &writerAtBuffer{}, p)
	if err == nil || !strings.Contains(err.Error(), "not a multiple of the data block size 4096") || !strings.Contains(err.Error(), "12288") {
		t.Fatalf("Format of 9000 bytes: %v", err)
	}
	added, err := PadFile(data, 4096)
	if err != nil || added != 12288-9000 {
		t.Fatalf("PadFile: %d, %v", added, err)
	}
	if added, err := PadFile(data, 4096); err != nil || added != 0 {
		t.Fatalf("second PadFile: %d, %v", added, err)
	}
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	var buf writerAtBuffer
	res, err := Format(bytes.NewReader(b), int64(len(b)), &buf, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.DataBlocks != 3 || res.Levels != 1 {
		t.Errorf("result %+v", res)
	}
	vs, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Log("veritysetup not on PATH; not comparing")
		return
	}
	out, err := exec.Command(vs, append(append([]string{"format"}, veritysetupArgs(p)...), data, filepath.Join(dir, "h"))...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if m := rootRE.FindSubmatch(out); m == nil || string(m[1]) != hex.EncodeToString(res.RootHash) {
		t.Errorf("veritysetup root differs:\n%s\nours %x", out, res.RootHash)
	}
}

func TestParamErrors(t *testing.T) {
	salt := []byte{1}
	for _, c := range []struct {
		p    Params
		size int64
		want string
	}{
		{Params{}, 4096, "salt is required"},
		{Params{Salt: salt}, 0, "at least one data block"},
		{Params{Salt: salt, DataBlockSize: 1000}, 4000, "data block size 1000"},
		{Params{Salt: salt, HashBlockSize: 256}, 4096, "hash block size 256"},
		{Params{Salt: salt, Hash: "md5"}, 4096, "unsupported hash"},
		{Params{Salt: make([]byte, 257)}, 4096, "at most 256"},
		{Params{Salt: salt}, 4097, "not a multiple"},
	} {
		if _, err := Format(bytes.NewReader(nil), c.size, &writerAtBuffer{}, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v size %d: %v; want %q", c.p, c.size, err, c.want)
		}
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	data := make([]byte, 300*4096+0)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var first []byte
	for i, w := range []int{1, 2, 3, 8, 2} {
		var src io.ReaderAt = bytes.NewReader(data)
		if i == len([]int{1, 2, 3, 8, 2})-1 {
			src = Bytes(data) // hashed in place
		}
		var buf writerAtBuffer
		var last int64
		p := Params{Salt: DeriveSalt(nil), Workers: w, Progress: func(done, total int64) {
			if done < last || total != int64(len(data)) {
				t.Errorf("progress %d/%d after %d", done, total, last)
			}
			last = done
		}}
		if _, err := Format(src, int64(len(data)), &buf, p); err != nil {
			t.Fatal(err)
		}
		if last != int64(len(data)) {
			t.Errorf("workers %d: progress ended at %d", w, last)
		}
		if first == nil {
			first = buf.b
		} else if !bytes.Equal(first, buf.b) {
			t.Errorf("workers %d: output differs", w)
		}
	}
}

func TestVerifyTamperedTree(t *testing.T) {
	data := make([]byte, 129*4096)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	p := Params{Salt: DeriveSalt([]byte("x")), UUID: DeriveUUID([]byte("x"))}
	var buf writerAtBuffer
	res, err := Format(bytes.NewReader(data), int64(len(data)), &buf, p)
	if err != nil {
		t.Fatal(err)
	}
	// Layout: superblock block 0, level 1 (top) block 1, level 0 blocks 2-3.
	for _, c := range []struct {
		off  int
		want string
	}{
		{4096 + 5, "hash block 1 (top level) does not match the root hash"},
		{2*4096 + 32*3, "hash block 2 (level 0) does not match hash block 1 (level 1)"},
		{100, "superblock"},
	} {
		b := bytes.Clone(buf.b)
		b[c.off] ^= 1
		if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(b), res.RootHash, p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flip at %d: %v; want %q", c.off, err, c.want)
		}
	}
	wrong := bytes.Clone(res.RootHash)
	wrong[0] ^= 1
	if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(buf.b), wrong, p); err == nil {
		t.Error("wrong root hash accepted")
	}
	sb, err := ParseSuperblock(buf.b)
	if err != nil {
		t.Fatal(err)
	}
	q := sb.Params()
	if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(buf.b), res.RootHash, q); err != nil {
		t.Errorf("Verify with the superblock's params: %v", err)
	}
}

func TestUUID(t *testing.T) {
	u := DeriveUUID([]byte("seed"))
	s := FormatUUID(u)
	if s[14] != '8' || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Errorf("derived UUID %s lacks version 8 / variant bits", s)
	}
	back, err := ParseUUID(s)
	if err != nil || back != u {
		t.Errorf("ParseUUID(%s) = %v, %v", s, back, err)
	}
	for _, bad := range []string{"", "00000000-0000-0000-0000-00000000000g", "000000000000-0000-0000-000000000000"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
	if got := DeriveSalt([]byte("seed")); len(got) != sha256.Size {
		t.Errorf("salt length %d", len(got))
	}
}

func TestParseSuperblockStrict(t *testing.T) {
	good, err := (&Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 9, Salt: []byte{1, 2}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSuperblock(good); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off int
		val byte
	}{
		{0, 'x'}, {8, 2}, {12, 2}, {32, 0}, {32, 'S'}, {40, 'x'}, {65, 3}, {72, 0}, {81, 2}, {84, 1}, {90, 1}, {400, 1},
	} {
		b := bytes.Clone(good)
		b[c.off] = c.val
		if _, err := ParseSuperblock(b); err == nil {
			t.Errorf("byte %d = %#x accepted", c.off, c.val)
		}
	}
	if _, err := ParseSuperblock(good[:511]); err == nil {
		t.Error("short superblock accepted")
	}
}

func FuzzParseSuperblock(f *testing.F) {
	good, _ := (&Superblock{Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 9, Salt: DeriveSalt(nil)}).MarshalBinary()
	f.Add(good)
	f.Add(good[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		enc, err := sb.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed superblock does not encode: %v", err)
		}
		if !bytes.Equal(enc, b[:superblockSize]) {
			t.Fatal("parse/encode is not the identity")
		}
	})
}

func BenchmarkFormat(b *testing.B) {
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(data); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	p := Params{Salt: DeriveSalt(nil), UUID: DeriveUUID(nil)}
	var buf writerAtBuffer
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Format(Bytes(data), int64(len(data)), &buf, p); err != nil {
			b.Fatal(err)
		}
	}
}
