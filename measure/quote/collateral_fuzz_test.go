package quote

import (
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/google/go-tdx-guest/pcs"
)

// FuzzCollateralResponses feeds arbitrary issuer-chain headers and
// response bodies (seeded with Intel's sample responses) through what
// checkCollateral parses from a PCCS or cache directory: the issuer
// chain, the signed JSON envelope, the TCB info and QE identity objects
// and their level matching, and CRLs. Nothing may panic; a body whose
// signature verifies must be one of the seeds' signed objects.
func FuzzCollateralResponses(f *testing.F) {
	for _, name := range []string{"tcb-50806f000000", "qe-identity", "pckcrl-platform"} {
		f.Add(load(f, "pcs/"+name+".issuer-chain"), load(f, "pcs/"+name))
	}
	f.Add([]byte("-----BEGIN%20CERTIFICATE-----%0A"), load(f, "pcs/rootcrl"))
	f.Add([]byte("%zz"), []byte(`{"tcbInfo":{"tcbLevels":[{"tcb":{"sgxtcbcomponents":[]}}]},"signature":"00"}`))
	f.Fuzz(func(t *testing.T, chain, body []byte) {
		h := map[string][]string{headerTCBInfoChain: {string(chain)}}
		signer, _, err := issuerChain(h, headerTCBInfoChain, IntelRoots(), at20230701)
		if err == nil {
			if _, err := signedJSON(body, "tcbInfo", signer); err == nil {
				var ti pcs.TdxTcbInfo
				if json.Unmarshal(body, &ti) != nil || ti.TcbInfo.ID != "TDX" {
					t.Fatalf("signature verified over a body that is not Intel's TCB info: %q", body)
				}
			}
			_, _ = signedJSON(body, "enclaveIdentity", signer)
		}
		var ti pcs.TdxTcbInfo
		if json.Unmarshal(body, &ti) == nil {
			var q Quote
			q.TeeTcbSvn[1] = 1
			_ = checkModule(&q, ti.TcbInfo)
			ext := &pcs.PckExtensions{}
			ext.TCB.CPUSvnComponents = make([]byte, 16)
			_, _ = matchTCBLevel(ti.TcbInfo.TcbLevels, q.TeeTcbSvn, ext)
		}
		var qi pcs.QeIdentity
		if json.Unmarshal(body, &qi) == nil {
			q := Quote{qeReport: make([]byte, qeReportSize)}
			_ = checkQE(&q, qi.EnclaveIdentity, Policy{})
		}
		if crl, err := x509.ParseRevocationList(body); err == nil {
			_ = crl.Issuer.String()
		}
	})
}
