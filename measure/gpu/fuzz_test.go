package gpu

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"
)

func FuzzParseReport(f *testing.F) {
	for _, v := range vectors {
		f.Add(readReport(f, v.report))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		// A parsed report splits exactly and its accessors never panic.
		if !bytes.Equal(append(r.SignedBytes(), r.Signature[:]...), b) {
			t.Fatal("SignedBytes ‖ Signature differs from the input")
		}
		if len(r.Blocks) != len(r.Measurements) || len(r.Opaque) != len(r.opaque) {
			t.Fatal("duplicate block or opaque field slipped through")
		}
		r.DriverVersion()
		r.VBIOSVersion()
		r.VBIOSRIMID()
		r.NVDEC0Status()
		r.ProtectedPCIeStatus()
		r.FeatureFlag()
		CheckFWID(DeviceRoot(), r)
	})
}

func FuzzParseChainPEM(f *testing.F) {
	for _, v := range vectors {
		b, err := os.ReadFile(v.chain)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(deviceRootPEM)
	f.Add(corimRootPEM)
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseChainPEM(b)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		VerifyDeviceChain(certs, DeviceRoot(), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	})
}

func FuzzDecodeEvidence(f *testing.F) {
	for _, name := range []string{"A", "B", "D", "E"} {
		e := evidenceB(f)
		e.Report = readReport(f, vec(name).report)
		b, err := json.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if b, err := os.ReadFile("testdata/evidence.canonical.golden.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvidence(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes to the same value.
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := DecodeEvidence(again)
		if err != nil {
			t.Fatalf("re-encoded evidence rejected: %v", err)
		}
		if e2.Digest() != e.Digest() {
			t.Fatal("digest changed across a round trip")
		}
	})
}

func BenchmarkVerifyReport(b *testing.B) {
	raw := readReport(b, vec("B").report)
	pemText, err := os.ReadFile(vec("B").chain)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := ParseReport(raw)
		if err != nil {
			b.Fatal(err)
		}
		chain, err := ParseChainPEM(pemText)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyDeviceChain(chain, DeviceRoot(), verifyAt); err != nil {
			b.Fatal(err)
		}
		if _, err := CheckFWID(chain[0], r); err != nil {
			b.Fatal(err)
		}
		if err := r.VerifySignature(chain[0]); err != nil {
			b.Fatal(err)
		}
	}
}
