package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-tdx-guest/pcs"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func ecdsaKey(c *x509.Certificate) (*ecdsa.PublicKey, error) {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("certificate %q key is not ECDSA P-256", c.Subject.CommonName)
	}
	return k, nil
}

func masked(v, mask []byte) []byte {
	out := make([]byte, len(v))
	for i := range v {
		out[i] = v[i] & mask[i]
	}
	return out
}

// checkModule compares MRSIGNERSEAM and SEAMATTRIBUTES with the TCB info
// and, for TDX module versions > 0 (TEE_TCB_SVN[1]), judges the module's
// own TCB level from tdxModuleIdentities.
func checkModule(q *Quote, info pcs.TcbInfo) error {
	m := info.TdxModule
	if !bytes.Equal(m.Mrsigner.Bytes, q.MRSIGNERSEAM[:]) {
		return mismatch("MRSIGNERSEAM", m.Mrsigner.Bytes, q.MRSIGNERSEAM[:])
	}
	if len(m.AttributesMask.Bytes) != 8 || len(m.Attributes.Bytes) != 8 {
		return fail("collateral", "TCB info tdxModule attributes are not 8 bytes")
	}
	if got := masked(q.SEAMATTRIBUTES[:], m.AttributesMask.Bytes); !bytes.Equal(got, m.Attributes.Bytes) {
		return mismatch("SEAMATTRIBUTES", m.Attributes.Bytes, got)
	}
	if q.TeeTcbSvn[1] == 0 {
		q.ModuleTCBStatus = ""
		return nil
	}
	id := "TDX_" + hex.EncodeToString(q.TeeTcbSvn[1:2])
	for _, mi := range info.TdxModuleIdentities {
		if mi.ID != id {
			continue
		}
		if !bytes.Equal(mi.Mrsigner.Bytes, q.MRSIGNERSEAM[:]) {
			return mismatch("MRSIGNERSEAM", mi.Mrsigner.Bytes, q.MRSIGNERSEAM[:])
		}
		for _, l := range mi.TcbLevels {
			if uint32(q.TeeTcbSvn[0]) >= l.Tcb.Isvsvn {
				q.ModuleTCBStatus = string(l.TcbStatus)
				q.AdvisoryIDs = append(q.AdvisoryIDs, l.AdvisoryIDs...)
				return nil
			}
		}
		return fail("tcb_status", "TDX module %s SVN %d is below every TCB level", id, q.TeeTcbSvn[0])
	}
	return fail("tcb_status", "TCB info has no TDX module identity %s", id)
}

// checkQE compares the QE report with the QE identity and judges its TCB.
func checkQE(q *Quote, eid pcs.EnclaveIdentity, p Policy) error {
	r := q.qeReport
	if len(eid.MiscselectMask.Bytes) != 4 || len(eid.Miscselect.Bytes) != 4 || len(eid.AttributesMask.Bytes) != 16 || len(eid.Attributes.Bytes) != 16 {
		return fail("collateral", "QE identity miscselect/attributes have the wrong sizes")
	}
	misc := binary.LittleEndian.Uint32(r[16:20]) & binary.LittleEndian.Uint32(eid.MiscselectMask.Bytes)
	if want := binary.LittleEndian.Uint32(eid.Miscselect.Bytes); misc != want {
		return fail("qe_report.MISCSELECT", "expected %08x, got %08x (masked)", want, misc)
	}
	if got := masked(r[48:64], eid.AttributesMask.Bytes); !bytes.Equal(got, eid.Attributes.Bytes) {
		return mismatch("qe_report.ATTRIBUTES", eid.Attributes.Bytes, got)
	}
	if !bytes.Equal(r[128:160], eid.Mrsigner.Bytes) {
		return mismatch("qe_report.MRSIGNER", eid.Mrsigner.Bytes, r[128:160])
	}
	if got := binary.LittleEndian.Uint16(r[256:258]); got != eid.IsvProdID {
		return fail("qe_report.ISVPRODID", "expected %d, got %d", eid.IsvProdID, got)
	}
	isvsvn := uint32(binary.LittleEndian.Uint16(r[258:260]))
	for _, l := range eid.TcbLevels {
		if l.Tcb.Isvsvn <= isvsvn {
			q.QETCBStatus = string(l.TcbStatus)
			if !p.statusAllowed(q.QETCBStatus) {
				return fail("tcb_status", "QE TCB status is %q (ISVSVN %d), not in the allowed list %v", q.QETCBStatus, isvsvn, allowedList(p))
			}
			return nil
		}
	}
	return fail("tcb_status", "QE ISVSVN %d is below every QE identity TCB level", isvsvn)
}

// matchTCBLevel finds the first TCB level (the list is sorted, newest
// first) that the PCK certificate's SGX SVNs, PCESVN and the quote's
// TEE_TCB_SVN all meet (Intel's algorithm; with a TDX module version
// > 0, TEE_TCB_SVN[0:2] is judged by the module identity instead).
func matchTCBLevel(levels []pcs.TcbLevel, teeTcbSvn [16]byte, ext *pcs.PckExtensions) (*pcs.TcbLevel, error) {
	cpu := ext.TCB.CPUSvnComponents
	for i := range levels {
		l := &levels[i]
		if len(l.Tcb.SgxTcbcomponents) != len(cpu) || len(l.Tcb.TdxTcbcomponents) != 16 {
			continue
		}
		ok := ext.TCB.PCESvn >= l.Tcb.Pcesvn
		for j := 0; ok && j < len(cpu); j++ {
			ok = cpu[j] >= l.Tcb.SgxTcbcomponents[j].Svn
		}
		start := 0
		if teeTcbSvn[1] > 0 {
			start = 2
		}
		for j := start; ok && j < 16; j++ {
			ok = teeTcbSvn[j] >= l.Tcb.TdxTcbcomponents[j].Svn
		}
		if ok {
			return l, nil
		}
	}
	return nil, errors.New("no matching TCB level found: the platform's SGX/PCE SVNs and TEE_TCB_SVN are below every level in the TCB info")
}

func hexString(b []byte) string { return hex.EncodeToString(b) }
