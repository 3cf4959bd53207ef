package rim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func addFixtures(f *testing.F) {
	for _, p := range allFixtures {
		f.Add(read(f, p))
	}
	f.Add([]byte(rimXML(res(`index="0" active="True" alternatives="1" name="m" size="48" h:Hash0="` + h48 + `"`))))
}

func FuzzParse(f *testing.F) {
	addFixtures(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, m := range r.Measurements() {
			if seen[m.Index] || m.Index < 0 || m.Index > maxIndex || len(m.Alternatives) == 0 {
				t.Fatalf("measurement %+v", m)
			}
			seen[m.Index] = true
			for _, a := range m.Alternatives {
				if len(a) != m.Size {
					t.Fatalf("index %d: alternative of %d bytes, size %d", m.Index, len(a), m.Size)
				}
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	addFixtures(f)
	root := corimRoot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, res, err := Verify(data, root, at)
		if err != nil {
			if r != nil || res != nil {
				t.Fatal("results with an error")
			}
			if !strings.HasPrefix(err.Error(), "rim ") {
				t.Fatalf("error %q does not name the RIM", err)
			}
			return
		}
		if len(res.Chain) < 2 || !res.Chain[len(res.Chain)-1].Equal(root) || len(r.Measurements()) == 0 {
			t.Fatalf("verified without a chain to the root or measurements: %+v", res)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, p := range []string{driver550, badChain} {
		data := read(f, p)
		sum := sha256.Sum256(data)
		b, _ := json.Marshal(map[string]string{"id": id550, "rim": base64.StdEncoding.EncodeToString(data), "sha256": hex.EncodeToString(sum[:])})
		f.Add(b)
	}
	f.Add([]byte(`{"id":"` + id550 + `","rim":"PGEvPg=="}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		data, err := decodeResponse(id550, body)
		if err == nil && len(data) == 0 {
			t.Fatal("empty RIM accepted")
		}
	})
}
