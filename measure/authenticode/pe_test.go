package authenticode

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"debug/pe"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const envKernel = "CHRYSALIS_TEST_KERNEL"

// The pinned guest kernel: Debian linux-image 7.3.4+deb13-cloud-amd64
// (trixie-backports), /usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz.
const (
	pinnedKernelSHA256 = "7435b9178e91998f4f70774510c4ffad6764a08c64b17f7ef9c4252ea5948932"
	// Authenticode SHA-256 as printed by `osslsigncode verify`
	// ("Calculated message digest" = "Current message digest").
	pinnedKernelAuthenticode256 = "2ea1c663e0ab1238a63716c2e783a66757a0449b0c1d3a6a79293b6719b1870c"
	pinnedKernelAuthenticode384 = "92887f6f9422d0c275a3ca93034a57f13c02e72f67f4173d63ccc39742bc45ce4810e341375454d5dda6b275874c1c5f"
)

// expectedStream writes down what edk2 hashes for a synthetic image,
// straight from the layout the builder used.
func expectedStream(p *synthPE, b []byte) []byte {
	_, _, checksum, certDir, _ := p.layout()
	var out []byte
	out = append(out, b[:checksum]...)
	cert := 0
	if p.numDirs > 4 {
		out = append(out, b[checksum+4:certDir]...)
		out = append(out, b[certDir+8:p.soh]...)
		cert = int(p.certSize)
	} else {
		out = append(out, b[checksum+4:p.soh]...)
	}
	secs := slices.Clone(p.sections)
	slices.SortStableFunc(secs, func(a, b synthSection) int { return int(a.ptr) - int(b.ptr) })
	sum := int(p.soh)
	for _, s := range secs {
		if s.size == 0 {
			continue
		}
		out = append(out, b[s.ptr:s.ptr+s.size]...)
		sum += int(s.size)
	}
	if len(b) > sum+cert {
		out = append(out, b[sum:len(b)-cert]...)
	}
	return out
}

func TestDigestSynthetic(t *testing.T) {
	tests := map[string]func(p *synthPE){
		"default":            func(p *synthPE) {},
		"pe32":               func(p *synthPE) { p.plus = false },
		"no dos header":      func(p *synthPE) { p.noDOS = true },
		"no certificate":     func(p *synthPE) { p.certSize = 0 },
		"no trailing data":   func(p *synthPE) { p.trailing = 0 },
		"nothing after":      func(p *synthPE) { p.trailing, p.certSize = 0, 0 },
		"four directories":   func(p *synthPE) { p.numDirs = 4 }, // no cert entry: the table bytes are hashed as trailing data
		"no directories":     func(p *synthPE) { p.numDirs = 0 },
		"five directories":   func(p *synthPE) { p.numDirs = 5 },
		"larger opt header":  func(p *synthPE) { p.sizeOfOpt = 112 + 16*8 + 24 },
		"cert in the middle": func(p *synthPE) { p.trailing = 0x100; p.certOff = 0xc10 },
		"equal offsets": func(p *synthPE) {
			p.sections = []synthSection{{".b", 0x400, 0x200}, {".a", 0x400, 0x100}, {".c", 0x600, 0x10}}
			p.trailing = 0x200
		},
		"overlapping sections": func(p *synthPE) {
			// Overlap is hashed twice, as edk2 does, while
			// SUM_OF_BYTES_HASHED stays within the file.
			p.sections = []synthSection{{".a", 0x400, 0x200}, {".b", 0x500, 0x200}}
			p.trailing, p.certSize = 0x400, 0x10
		},
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			p := defaultPE()
			mut(p)
			b := p.build()
			im, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedStream(p, b)
			var got bytes.Buffer
			for _, r := range im.Hashed {
				got.Write(b[r.Offset : r.Offset+r.Length])
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("hashed %d bytes %v, want %d bytes", got.Len(), im.Hashed, len(want))
			}
			d384, err := SHA384(b)
			if err != nil || d384 != sha512.Sum384(want) {
				t.Fatalf("SHA384 = %x, %v", d384, err)
			}
			d256, err := SHA256(b)
			if err != nil || d256 != sha256.Sum256(want) {
				t.Fatalf("SHA256 = %x, %v", d256, err)
			}
			d1, err := Digest(b, crypto.SHA512)
			if want := sha512.Sum512(want); err != nil || !bytes.Equal(d1, want[:]) {
				t.Fatalf("Digest(SHA512) = %x, %v", d1, err)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	p := defaultPE()
	b := p.build()
	im, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	_, _, checksum, certDir, _ := p.layout()
	if im.PEOffset != 0x80 || im.Magic != MagicPE32Plus || im.Machine != 0x8664 || im.NumberOfRvaAndSizes != 16 ||
		im.SizeOfHeaders != 0x400 || im.CheckSumOffset != checksum || im.CertDirOffset != certDir ||
		im.CertTableSize != 0x48 || int(im.CertTableOffset) != len(b)-0x48 || len(im.Sections) != 4 || im.Sections[2].Name != ".setup" {
		t.Fatalf("%+v", im)
	}
	if !bytes.Equal(im.Data(), b) {
		t.Fatal("Data() differs")
	}
	// The checksum and the certificate entry do not matter; anything else
	// in the headers does.
	d0, _ := SHA384(b)
	c := slices.Clone(b)
	c[checksum] ^= 1
	c[certDir] ^= 1 // the table's offset (its size decides what is hashed)
	if d, _ := SHA384(c); d != d0 {
		t.Fatal("digest depends on CheckSum or the certificate table offset")
	}
	c[checksum+4] ^= 1
	if d, _ := SHA384(c); d == d0 {
		t.Fatal("digest does not depend on the header byte after CheckSum")
	}
	// Certificate contents do not matter.
	c = slices.Clone(b)
	c[len(c)-1] ^= 1
	if d, _ := SHA384(c); d != d0 {
		t.Fatal("digest depends on the certificate table bytes")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *synthPE)
		raw    func(b []byte) []byte
		want   string
		notPE  bool
	}{
		{name: "short", raw: func(b []byte) []byte { return b[:63] }, want: "shorter than a DOS header", notPE: true},
		{name: "lfanew past end", raw: func(b []byte) []byte { binary.LittleEndian.PutUint32(b[0x3c:], 0x7fffff00); return b }, want: "offset 0x3c: PE header offset 0x7fffff00 is past the end", notPE: true},
		{name: "no signature", raw: func(b []byte) []byte { b[0x81] = 'X'; return b }, want: "offset 0x80: no PE signature", notPE: true},
		{name: "bad magic", raw: func(b []byte) []byte { b[0x98] = 0x07; return b }, want: "optional header magic 0x207", notPE: false},
		{name: "small optional header", mutate: func(p *synthPE) { p.sizeOfOpt = 100 }, want: "SizeOfOptionalHeader 0x64 is smaller than the 0x70 bytes"},
		{name: "too many directories", mutate: func(p *synthPE) { p.numDirs = 17; p.sizeOfOpt = 112 + 16*8 }, want: "NumberOfRvaAndSizes 17 exceeds 16"},
		{name: "directories outside optional header", mutate: func(p *synthPE) { p.sizeOfOpt = 112 + 8*8 }, want: "SizeOfOptionalHeader 0xb0 cannot hold 16 data directories"},
		{name: "headers past end", raw: func(b []byte) []byte { binary.LittleEndian.PutUint32(b[0xd4:], 0x100000); return b }, want: "SizeOfHeaders 0x100000 is past the end"},
		{name: "headers before cert entry", mutate: func(p *synthPE) { p.soh = 0x100 }, want: "ends before the end of the Certificate Table entry"},
		{name: "headers inside optional header", mutate: func(p *synthPE) { p.soh = 0xc0; p.numDirs = 2 }, want: "ends inside the optional header"},
		{name: "section past end", mutate: func(p *synthPE) { p.trailing, p.certSize = 0, 0 }, raw: func(b []byte) []byte { return b[:len(b)-1] }, want: `section 3 ".data" raw data [0xa00,+0x200) runs past the end`},
		{name: "cert past end", raw: func(b []byte) []byte { return b[:len(b)-8] }, want: "certificate table [0xc37,+0x48) runs past the end"},
		{name: "cert larger than extra data", mutate: func(p *synthPE) { p.certOff = 0x400; p.trailing = 0x10; p.certSize = 0x20 }, want: "certificate table size 0x20 exceeds the 0x10 bytes after the 0xc00 hashed bytes"},
		{name: "sections overlap past the end", mutate: func(p *synthPE) {
			p.sections = []synthSection{{".a", 0x400, 0x800}, {".b", 0x400, 0x800}}
			p.trailing, p.certSize = 0, 0
		}, want: "SizeOfHeaders plus the sections' SizeOfRawData is 0x1400, more than the 0xc00-byte image"},
		{name: "section table past end", mutate: func(p *synthPE) {
			p.soh = 0x1a0
			p.sections = nil
			p.trailing, p.certSize = 0, 0
		}, raw: func(b []byte) []byte {
			b[0x86] = 0xff // NumberOfSections 0xff
			return b
		}, want: "255 section headers run past the end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultPE()
			if tc.mutate != nil {
				tc.mutate(p)
			}
			b := p.build()
			if tc.raw != nil {
				b = tc.raw(b)
			}
			_, err := Parse(b)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FormatError", err)
			}
			if errors.Is(err, ErrNotPE) != tc.notPE {
				t.Fatalf("errors.Is(%q, ErrNotPE) != %v", err, tc.notPE)
			}
		})
	}
}

func TestForeign(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	random := make([]byte, 1<<16)
	rnd.Read(random)
	elf := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 200)...)
	for name, b := range map[string][]byte{"random": random, "zeros": make([]byte, 4096), "elf": elf, "empty": nil} {
		if _, err := Parse(b); !errors.Is(err, ErrNotPE) {
			t.Errorf("%s: %v, want ErrNotPE", name, err)
		}
	}
	b := defaultPE().build()
	for cut := 0; cut < len(b); cut++ {
		if _, err := Parse(b[:cut]); err == nil {
			t.Fatalf("Parse of %d-byte prefix succeeded", cut)
		}
	}
}

func TestLoad(t *testing.T) {
	p := t.TempDir() + "/vmlinuz"
	os.WriteFile(p, []byte("not a kernel, but long enough to hold a DOS header......................"), 0o644)
	if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), p+": authenticode: ") {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

// testdata/signed.efi is defaultPE().build() without certificate, signed
// by osslsigncode 2.9 with a throwaway key (testdata/README).
func TestSignedTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/signed.efi")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/signed.efi.osslsigncode-sha256")
	if err != nil {
		t.Fatal(err)
	}
	got, err := SHA256(b)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != strings.TrimSpace(string(want)) {
		t.Fatalf("Authenticode SHA-256 %x, osslsigncode %s", got, want)
	}
	im, _ := Parse(b)
	if im.CertTableSize == 0 {
		t.Fatal("testdata/signed.efi has no certificate table")
	}
}

// TestWriteUnsigned writes the unsigned image testdata/signed.efi was made
// from (see testdata/README) when CHRYSALIS_WRITE_UNSIGNED names a path.
func TestWriteUnsigned(t *testing.T) {
	out := os.Getenv("CHRYSALIS_WRITE_UNSIGNED")
	if out == "" {
		t.Skip("CHRYSALIS_WRITE_UNSIGNED not set")
	}
	p := defaultPE()
	p.certSize = 0
	if err := os.WriteFile(out, p.build(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var osslDigest = regexp.MustCompile(`(?m)^Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// osslsigncodeDigest runs `osslsigncode verify` (which exits non-zero when
// it cannot build the chain) and returns the calculated SHA-256 digest.
func osslsigncodeDigest(t *testing.T, path string) string {
	t.Helper()
	if _, err := exec.LookPath("osslsigncode"); err != nil {
		t.Skip("osslsigncode not installed")
	}
	out, _ := exec.Command("osslsigncode", "verify", "-in", path).CombinedOutput()
	m := osslDigest.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no calculated digest in osslsigncode output:\n%s", out)
	}
	return strings.ToLower(string(m[1]))
}

func TestOsslsigncodeTestdata(t *testing.T) {
	d := osslsigncodeDigest(t, "testdata/signed.efi")
	b, _ := os.ReadFile("testdata/signed.efi")
	got, _ := SHA256(b)
	if hex.EncodeToString(got[:]) != d {
		t.Fatalf("ours %x, osslsigncode %s", got, d)
	}
}

func realKernel(t testing.TB) (string, []byte) {
	t.Helper()
	p := os.Getenv(envKernel)
	if p == "" {
		t.Skipf("%s not set: no real kernel to test against", envKernel)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", envKernel, err)
	}
	return p, b
}

func TestRealKernel(t *testing.T) {
	path, b := realKernel(t)
	im, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	d256, _ := SHA256(b)
	d384, _ := SHA384(b)
	t.Logf("sections %+v, certificate table [%#x,+%#x), hashed %v", im.Sections, im.CertTableOffset, im.CertTableSize, im.Hashed)
	t.Logf("Authenticode SHA-256 %x", d256)
	t.Logf("Authenticode SHA-384 %x", d384)
	// debug/pe agrees on the section table.
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != len(im.Sections) {
		t.Fatalf("debug/pe: %d sections, ours %d", len(f.Sections), len(im.Sections))
	}
	for i, s := range f.Sections {
		o := im.Sections[i]
		if s.Name != o.Name || s.Offset != o.PointerToRawData || s.Size != o.SizeOfRawData || s.VirtualAddress != o.VirtualAddress {
			t.Errorf("section %d: debug/pe %+v, ours %+v", i, s.SectionHeader, o)
		}
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == pinnedKernelSHA256 {
		if got := hex.EncodeToString(d256[:]); got != pinnedKernelAuthenticode256 {
			t.Errorf("pinned kernel Authenticode SHA-256 %s, want %s", got, pinnedKernelAuthenticode256)
		}
		if got := hex.EncodeToString(d384[:]); got != pinnedKernelAuthenticode384 {
			t.Errorf("pinned kernel Authenticode SHA-384 %s, want %s", got, pinnedKernelAuthenticode384)
		}
	}
	if d := osslsigncodeDigest(t, path); hex.EncodeToString(d256[:]) != d {
		t.Errorf("Authenticode SHA-256 %x, osslsigncode %s", d256, d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(defaultPE().build())
	p := defaultPE()
	p.plus = false
	p.numDirs = 3
	f.Add(p.build())
	if b, err := os.ReadFile("testdata/signed.efi"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FormatError: %v", err, err)
			}
			return
		}
		// Every hashed range lies inside the image.
		for _, r := range im.Hashed {
			if r.Offset < 0 || r.Length <= 0 || r.Offset+r.Length > int64(len(b)) {
				t.Fatalf("range %+v outside the %d-byte image", r, len(b))
			}
		}
		if _, err := im.Digest(crypto.SHA384); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkAuthenticode(b *testing.B) {
	var img []byte
	if p := os.Getenv(envKernel); p != "" {
		var err error
		if img, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		img = defaultPE().build()
	}
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := SHA384(img); err != nil {
			b.Fatal(err)
		}
	}
}
