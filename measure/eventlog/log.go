package eventlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
)

// Limits the parser enforces.
const (
	// MaxLogSize bounds a log (CCEL areas are 64-256 KiB, TPM logs
	// tens of KiB).
	MaxLogSize = 16 << 20
	// MaxEvents bounds the number of records after the header.
	MaxEvents = 1 << 16
	// MaxAlgorithms bounds the digest algorithms of the Spec ID header.
	MaxAlgorithms = 8
	// MaxDigestSize bounds a digest size the header may declare.
	MaxDigestSize = 64
)

// SpecIDSignature is the signature of the crypto-agile log header.
const SpecIDSignature = "Spec ID Event03\x00"

const (
	legacyDigestSize = 20 // SHA-1 digest of TCG_PCClientPCREvent
)

// FormatError is a parse error at a byte offset of the input.
type FormatError struct {
	// Offset is the byte offset of the problem in the parsed buffer.
	Offset int
	// Msg describes the problem.
	Msg string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("eventlog: offset %d (%#x): %s", e.Offset, e.Offset, e.Msg)
}

func errAt(off int, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// AlgSize is one entry of the Spec ID header's algorithm list.
type AlgSize struct {
	Alg  Alg
	Size int
}

// SpecID is the log header: the first record, TCG_EfiSpecIDEvent.
type SpecID struct {
	// HeaderIndex is the header record's PCRIndex: 0 in TPM logs; OVMF's
	// TDX CCEL writes 1. It has no meaning and is kept for re-encoding.
	HeaderIndex uint32
	// PlatformClass is 0 for client platforms, 1 for servers.
	PlatformClass uint32
	// VersionMinor, VersionMajor and Errata give the PFP spec version
	// (major 2).
	VersionMinor, VersionMajor, Errata uint8
	// UintnSize is 1 for 32-bit, 2 for 64-bit UINTN.
	UintnSize uint8
	// Algorithms are the digest algorithms every event carries.
	Algorithms []AlgSize
	// VendorInfo is the optional vendor data.
	VendorInfo []byte
}

// DigestSize returns the size the header declares for alg.
func (s *SpecID) DigestSize(alg Alg) (int, bool) {
	for _, a := range s.Algorithms {
		if a.Alg == alg {
			return a.Size, true
		}
	}
	return 0, false
}

// Digest is one digest of an event.
type Digest struct {
	Alg Alg
	Sum []byte
}

// String returns "alg:hex".
func (d Digest) String() string { return d.Alg.String() + ":" + hex.EncodeToString(d.Sum) }

// Event is one TCG_PCR_EVENT2 record.
type Event struct {
	// Seq is the event's position in Log.Events (the header is not an
	// event).
	Seq int
	// Offset is the record's byte offset in the log.
	Offset int
	// Index is the register index as recorded: the CC measurement
	// register index in a CCEL (see RTMRIndex), the PCR in a TPM log.
	Index uint32
	// Type is the TCG event type.
	Type EventType
	// Digests are the record's digests in log order.
	Digests []Digest
	// Data is the event data (not necessarily what was hashed).
	Data []byte
}

// Digest returns the event's digest under alg.
func (e *Event) Digest(alg Alg) ([]byte, bool) {
	for _, d := range e.Digests {
		if d.Alg == alg {
			return d.Sum, true
		}
	}
	return nil, false
}

// Extends reports whether the event extends its register: every type but
// EV_NO_ACTION does.
func (e *Event) Extends() bool { return e.Type != EvNoAction }

// String is a one-line summary: position, index, type, label.
func (e *Event) String() string {
	return fmt.Sprintf("#%d @%#x index %d %s: %s", e.Seq, e.Offset, e.Index, e.Type, e.Describe())
}

// Log is a parsed crypto-agile event log.
type Log struct {
	// SpecID is the header.
	SpecID SpecID
	// Events are the records after the header, in log order.
	Events []Event
	// End is the offset just past the last record.
	End int
	// Padding is the number of 0xFF bytes after End (the unused log
	// area; it includes a 0xFFFFFFFF end marker).
	Padding int
}

// reader reads little-endian fields of b[off:end] with absolute offsets.
type reader struct {
	b        []byte
	off, end int
}

func (r *reader) left() int { return r.end - r.off }

func (r *reader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(r.left()) {
		return nil, errAt(r.off, "%s needs %d bytes but only %d are left", what, n, r.left())
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v, nil
}

func (r *reader) u8(what string) (uint8, error) {
	v, err := r.take(1, what)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	v, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(v), nil
}

func (r *reader) u32(what string) (uint32, error) {
	v, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(v), nil
}

// Parse parses a crypto-agile event log: the Spec ID header, then
// records until the end of b or the 0xFF padding that follows the last
// record. It copies b.
func Parse(b []byte) (*Log, error) {
	if len(b) > MaxLogSize {
		return nil, errAt(0, "log is %d bytes, more than the %d-byte limit", len(b), MaxLogSize)
	}
	if len(b) == 0 {
		return nil, errAt(0, "empty log")
	}
	b = bytes.Clone(b)
	r := &reader{b: b, end: len(b)}
	l := &Log{}
	if err := parseHeader(r, &l.SpecID); err != nil {
		return nil, err
	}
	for r.off < r.end {
		if isPadding(b[r.off:min(r.off+4, r.end)]) {
			for i := r.off; i < r.end; i++ {
				if b[i] != 0xFF {
					return nil, errAt(i, "byte %#02x after the end of the log at offset %d: the unused log area must be 0xFF", b[i], r.off)
				}
			}
			l.Padding = r.end - r.off
			break
		}
		if len(l.Events) == MaxEvents {
			return nil, errAt(r.off, "more than %d events", MaxEvents)
		}
		e, err := parseEvent(r, &l.SpecID)
		if err != nil {
			return nil, err
		}
		e.Seq = len(l.Events)
		l.Events = append(l.Events, e)
	}
	l.End = r.end - l.Padding
	return l, nil
}

func isPadding(b []byte) bool {
	for _, c := range b {
		if c != 0xFF {
			return false
		}
	}
	return true
}

func parseHeader(r *reader, s *SpecID) error {
	var err error
	if s.HeaderIndex, err = r.u32("header PCR index"); err != nil {
		return err
	}
	typOff := r.off
	typ, err := r.u32("header event type")
	if err != nil {
		return err
	}
	if EventType(typ) != EvNoAction {
		return errAt(typOff, "first record has type %s, want EV_NO_ACTION carrying %q: not a TCG crypto-agile event log", EventType(typ), "Spec ID Event03")
	}
	digOff := r.off
	dig, err := r.take(legacyDigestSize, "header SHA-1 digest")
	if err != nil {
		return err
	}
	if !bytes.Equal(dig, make([]byte, legacyDigestSize)) {
		return errAt(digOff, "header digest is not zero")
	}
	sizeOff := r.off
	size, err := r.u32("header event size")
	if err != nil {
		return err
	}
	if uint64(size) > uint64(r.left()) {
		return errAt(sizeOff, "header event size %d exceeds the %d bytes left", size, r.left())
	}
	sub := &reader{b: r.b, off: r.off, end: r.off + int(size)}
	r.off = sub.end

	sigOff := sub.off
	sig, err := sub.take(16, "Spec ID signature")
	if err != nil {
		return err
	}
	if string(sig) != SpecIDSignature {
		if bytes.HasPrefix(sig, []byte("Spec ID Event00")) {
			return errAt(sigOff, "TCG 1.2 SHA-1 log (Spec ID Event00) is not supported: want a crypto-agile log (Spec ID Event03)")
		}
		return errAt(sigOff, "header signature %q, want %q", printable(sig, 16), "Spec ID Event03")
	}
	if s.PlatformClass, err = sub.u32("platform class"); err != nil {
		return err
	}
	if s.VersionMinor, err = sub.u8("spec version minor"); err != nil {
		return err
	}
	verOff := sub.off
	if s.VersionMajor, err = sub.u8("spec version major"); err != nil {
		return err
	}
	if s.VersionMajor != 2 {
		return errAt(verOff, "spec version major %d, want 2", s.VersionMajor)
	}
	if s.Errata, err = sub.u8("spec errata"); err != nil {
		return err
	}
	uOff := sub.off
	if s.UintnSize, err = sub.u8("uintn size"); err != nil {
		return err
	}
	if s.UintnSize != 1 && s.UintnSize != 2 {
		return errAt(uOff, "uintn size %d, want 1 (32-bit) or 2 (64-bit)", s.UintnSize)
	}
	nOff := sub.off
	n, err := sub.u32("number of algorithms")
	if err != nil {
		return err
	}
	if n == 0 || n > MaxAlgorithms {
		return errAt(nOff, "header lists %d digest algorithms, want 1..%d", n, MaxAlgorithms)
	}
	for i := uint32(0); i < n; i++ {
		aOff := sub.off
		id, err := sub.u16("algorithm id")
		if err != nil {
			return err
		}
		sz, err := sub.u16("digest size")
		if err != nil {
			return err
		}
		a := Alg(id)
		if sz == 0 || sz > MaxDigestSize {
			return errAt(aOff, "algorithm %s has digest size %d, want 1..%d", a, sz, MaxDigestSize)
		}
		if k := a.Size(); k != 0 && int(sz) != k {
			return errAt(aOff, "algorithm %s has digest size %d, want %d", a, sz, k)
		}
		if _, dup := s.DigestSize(a); dup {
			return errAt(aOff, "algorithm %s is listed twice", a)
		}
		s.Algorithms = append(s.Algorithms, AlgSize{Alg: a, Size: int(sz)})
	}
	vn, err := sub.u8("vendor info size")
	if err != nil {
		return err
	}
	if s.VendorInfo, err = sub.take(uint64(vn), "vendor info"); err != nil {
		return err
	}
	if sub.left() != 0 {
		return errAt(sub.off, "%d unexpected bytes after the Spec ID header's vendor info", sub.left())
	}
	return nil
}

func parseEvent(r *reader, s *SpecID) (Event, error) {
	e := Event{Offset: r.off}
	var err error
	if e.Index, err = r.u32("event index"); err != nil {
		return e, err
	}
	typ, err := r.u32("event type")
	if err != nil {
		return e, err
	}
	e.Type = EventType(typ)
	cOff := r.off
	count, err := r.u32("digest count")
	if err != nil {
		return e, err
	}
	if count == 0 || count > uint32(len(s.Algorithms)) {
		return e, errAt(cOff, "event at offset %d has %d digests, want 1..%d (the header's algorithms)", e.Offset, count, len(s.Algorithms))
	}
	e.Digests = make([]Digest, 0, count)
	for i := uint32(0); i < count; i++ {
		aOff := r.off
		id, err := r.u16("digest algorithm")
		if err != nil {
			return e, err
		}
		a := Alg(id)
		size, ok := s.DigestSize(a)
		if !ok {
			return e, errAt(aOff, "event at offset %d has a %s digest, an algorithm the header does not list", e.Offset, a)
		}
		if _, dup := e.Digest(a); dup {
			return e, errAt(aOff, "event at offset %d has two %s digests", e.Offset, a)
		}
		sum, err := r.take(uint64(size), a.String()+" digest")
		if err != nil {
			return e, err
		}
		e.Digests = append(e.Digests, Digest{Alg: a, Sum: sum})
	}
	sOff := r.off
	size, err := r.u32("event data size")
	if err != nil {
		return e, err
	}
	if uint64(size) > uint64(r.left()) {
		return e, errAt(sOff, "event at offset %d has data size %d but only %d bytes are left", e.Offset, size, r.left())
	}
	e.Data, _ = r.take(uint64(size), "event data")
	return e, nil
}

// Marshal encodes the header and the events (without padding): the
// inverse of Parse, byte for byte.
func (l *Log) Marshal() ([]byte, error) {
	s := &l.SpecID
	if len(s.Algorithms) == 0 || len(s.Algorithms) > MaxAlgorithms || len(s.VendorInfo) > math.MaxUint8 {
		return nil, fmt.Errorf("eventlog: header has %d algorithms and %d bytes of vendor info", len(s.Algorithms), len(s.VendorInfo))
	}
	var spec []byte
	spec = append(spec, SpecIDSignature...)
	spec = binary.LittleEndian.AppendUint32(spec, s.PlatformClass)
	spec = append(spec, s.VersionMinor, s.VersionMajor, s.Errata, s.UintnSize)
	spec = binary.LittleEndian.AppendUint32(spec, uint32(len(s.Algorithms)))
	for _, a := range s.Algorithms {
		if a.Size <= 0 || a.Size > MaxDigestSize {
			return nil, fmt.Errorf("eventlog: algorithm %s has digest size %d", a.Alg, a.Size)
		}
		spec = binary.LittleEndian.AppendUint16(spec, uint16(a.Alg))
		spec = binary.LittleEndian.AppendUint16(spec, uint16(a.Size))
	}
	spec = append(spec, uint8(len(s.VendorInfo)))
	spec = append(spec, s.VendorInfo...)

	out := binary.LittleEndian.AppendUint32(nil, s.HeaderIndex)
	out = binary.LittleEndian.AppendUint32(out, uint32(EvNoAction))
	out = append(out, make([]byte, legacyDigestSize)...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(spec)))
	out = append(out, spec...)
	for i := range l.Events {
		e := &l.Events[i]
		if len(e.Digests) == 0 {
			return nil, fmt.Errorf("eventlog: event %d has no digests", i)
		}
		if uint64(len(e.Data)) > math.MaxUint32 {
			return nil, fmt.Errorf("eventlog: event %d data is too large", i)
		}
		out = binary.LittleEndian.AppendUint32(out, e.Index)
		out = binary.LittleEndian.AppendUint32(out, uint32(e.Type))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.Digests)))
		for _, d := range e.Digests {
			if size, ok := s.DigestSize(d.Alg); !ok || size != len(d.Sum) {
				return nil, fmt.Errorf("eventlog: event %d has a %d-byte %s digest the header does not declare", i, len(d.Sum), d.Alg)
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(d.Alg))
			out = append(out, d.Sum...)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.Data)))
		out = append(out, e.Data...)
	}
	return out, nil
}
