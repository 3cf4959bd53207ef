package verify

import (
	"errors"

	"github.com/chrysalis-cc/chrysalis/measure/quote"
)

// Reason names the check that rejected evidence. Proxies log it and may
// count it; the wrapped error says the details.
type Reason string

// Rejection reasons.
const (
	// ReasonFormat: the certificate extension, bundle or quote does not
	// parse, or names an unknown evidence type.
	ReasonFormat Reason = "format"
	// ReasonCertificate: the RA-TLS certificate itself is unacceptable
	// (bad self-signature, outside its validity window, evidence extension
	// missing or not critical, an unknown critical extension).
	ReasonCertificate Reason = "certificate"
	// ReasonPolicy: the policy cannot judge this evidence (TDX evidence
	// without quote settings, an empty image allowlist).
	ReasonPolicy Reason = "policy"
	// ReasonInsecureDev: insecure-dev evidence under a policy that does
	// not opt in to it.
	ReasonInsecureDev Reason = "insecure-dev"
	// ReasonReportDataBinding: the evidence is not bound to the TLS key
	// the peer presented and its claims (claims key hash, bundle
	// REPORTDATA, or the quote's REPORTDATA differ).
	ReasonReportDataBinding Reason = "report-data-binding"
	// ReasonNonce: the claims nonce is not the nonce the verifier sent.
	ReasonNonce Reason = "nonce"
	// ReasonQuoteSignature: the quote's PCK chain, QE report or
	// signature does not verify against the trusted roots.
	ReasonQuoteSignature Reason = "quote-signature"
	// ReasonCollateral: TCB info, QE identity or CRLs are missing,
	// invalid, expired, or the QE or TDX module does not match them.
	ReasonCollateral Reason = "collateral"
	// ReasonTCBStatus: the platform, TDX module or QE TCB status is not
	// allowed (including "Unknown" without collateral).
	ReasonTCBStatus Reason = "tcb-status"
	// ReasonDebug: TDATTRIBUTES has the DEBUG bit set.
	ReasonDebug Reason = "debug"
	// ReasonTDFields: TDATTRIBUTES (other bits), XFAM, MRCONFIGID,
	// MROWNER or MROWNERCONFIG differ from the expected values.
	ReasonTDFields Reason = "td-fields"
	// ReasonImageNotAllowed: the image hash (MRTD, RTMR0-2, TD fields) is
	// not in the allowlist built from signed manifests.
	ReasonImageNotAllowed Reason = "image-not-allowed"
	// ReasonEventLog: the RTMR3 event log does not replay to the register
	// value (bundle or quote).
	ReasonEventLog Reason = "event-log"
	// ReasonEventPolicy: the replayed events are not acceptable (config
	// missing or invalid, unknown events, debug config refused, claims
	// disagreeing with the measured config).
	ReasonEventPolicy Reason = "event-policy"
)

// Error is a rejection: Reason says which check failed, Err the details.
// Certificate and Bundle return *Error for every rejection.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the detailed error.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of a rejection, or "" if err is not one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func reject(r Reason, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Reason: r, Err: err}
}

// quoteReason maps a measure/quote failure to a reason. debug says the
// quote's DEBUG bit is set (then a TDATTRIBUTES failure is about it).
func quoteReason(err error, debug bool) Reason {
	var qe *quote.Error
	if !errors.As(err, &qe) {
		return ReasonQuoteSignature
	}
	switch qe.Field {
	case "structure":
		return ReasonFormat
	case "REPORTDATA":
		return ReasonReportDataBinding
	case "pck_chain", "signature", "qe_report", "qe_report.REPORTDATA":
		return ReasonQuoteSignature
	case "tcb_status":
		return ReasonTCBStatus
	case "TDATTRIBUTES":
		if debug {
			return ReasonDebug
		}
		return ReasonTDFields
	case "XFAM", "MRCONFIGID", "MROWNER", "MROWNERCONFIG":
		return ReasonTDFields
	default:
		// collateral, and the QE and TDX module identity checks against it
		// (qe_report.MRSIGNER, MRSIGNERSEAM, ...).
		return ReasonCollateral
	}
}

// quoteDebug reports whether a quote's TDATTRIBUTES has the DEBUG bit
// set (false when it does not parse).
func quoteDebug(raw []byte) bool {
	q, err := quote.Parse(raw)
	return err == nil && q.TDAttributes()&1 != 0
}
