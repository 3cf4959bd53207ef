package qemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chrysalis-cc/chrysalis/measure/shape"
)

// QGSTransport is how QEMU reaches the host's quote generation service
// (Intel's tdx-qgs): the tdx-guest object's quote-generation-socket is a
// QAPI SocketAddress, and QGS listens on exactly one of the two kinds.
type QGSTransport string

// QGS transports.
const (
	// QGSUnix is a unix socket on the host (upstream QEMU's documented
	// form; tdx-qgs serves it when /etc/qgs.conf has no port line).
	QGSUnix QGSTransport = "unix"
	// QGSVsock is vsock CID:port (COCOON's and Canonical's form; tdx-qgs
	// serves it when /etc/qgs.conf sets `port = N`).
	QGSVsock QGSTransport = "vsock"
)

// DefaultQGSSocket is the unix socket tdx-qgs listens on (compiled into
// QGS as QGS_UNIX_SOCKET_FILE).
const DefaultQGSSocket = "/var/run/tdx-qgs/qgs.socket"

// QGS locates the quote generation service QEMU connects to when the TD
// asks for a quote (TDG.VP.VMCALL<GetQuote>). It is not measured: changing
// it changes neither MRTD nor RTMR0-2.
type QGS struct {
	// Transport is QGSUnix or QGSVsock.
	Transport QGSTransport
	// Path is the unix socket (QGSUnix).
	Path string
	// CID and Port are the vsock address (QGSVsock); the host is CID 2.
	CID, Port uint32
}

// unixQGSSince is the first QEMU release whose profile defaults to the
// unix socket: upstream QEMU 10.1 is the first release with TDX, its
// attestation patch documents the unix socket, and tdx-qgs's installer
// drops the vsock port line when it finds QEMU >= 10.1.
var unixQGSSince = [2]int{10, 1}

// DefaultQGS is where a TD launched under the QEMU profile p reaches QGS:
// the unix socket DefaultQGSSocket for QEMU >= 10.1, vsock
// DefaultQGSCID:DefaultQGSPort for older QEMU (Canonical's 8.2 TDX stack).
func DefaultQGS(p shape.QEMUProfile) QGS {
	if versionAtLeast(p.QEMUVersion, unixQGSSince) {
		return QGS{Transport: QGSUnix, Path: DefaultQGSSocket}
	}
	return QGS{Transport: QGSVsock, CID: DefaultQGSCID, Port: DefaultQGSPort}
}

// QGSFor is the QGS a launch of shape s uses: override when it is not
// nil, else the default of the shape's QEMU profile.
func QGSFor(s *shape.VMShape, override *QGS) QGS {
	if override != nil {
		return *override
	}
	return DefaultQGS(s.QEMU)
}

// versionAtLeast reports whether the dotted version v (e.g. "10.1",
// "8.2.2") is at least major.minor; an unparsable version is not.
func versionAtLeast(v string, want [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > want[0] || maj == want[0] && mnr >= want[1]
}

// ParseQGS parses a QGS location as the --qgs flag takes it: "unix"
// (DefaultQGSSocket), "unix:PATH", "vsock" (DefaultQGSCID:DefaultQGSPort),
// "vsock:PORT" (on the host, CID 2) or "vsock:CID:PORT".
func ParseQGS(s string) (QGS, error) {
	kind, rest, hasRest := strings.Cut(s, ":")
	var q QGS
	switch QGSTransport(kind) {
	case QGSUnix:
		q = QGS{Transport: QGSUnix, Path: DefaultQGSSocket}
		if hasRest {
			q.Path = rest
		}
	case QGSVsock:
		q = QGS{Transport: QGSVsock, CID: DefaultQGSCID, Port: DefaultQGSPort}
		if hasRest {
			a, b, two := strings.Cut(rest, ":")
			portText := a
			if two {
				cid, err := strconv.ParseUint(a, 10, 32)
				if err != nil {
					return QGS{}, fmt.Errorf("quote generation service %q: vsock CID %q is not a number", s, a)
				}
				q.CID = uint32(cid)
				portText = b
			}
			port, err := strconv.ParseUint(portText, 10, 32)
			if err != nil {
				return QGS{}, fmt.Errorf("quote generation service %q: vsock port %q is not a number", s, portText)
			}
			q.Port = uint32(port)
		}
	default:
		return QGS{}, fmt.Errorf("quote generation service %q: want unix, unix:PATH, vsock, vsock:PORT or vsock:CID:PORT", s)
	}
	if err := q.Validate(); err != nil {
		return QGS{}, err
	}
	return q, nil
}

// String is the ParseQGS form: "unix:PATH" or "vsock:CID:PORT".
func (q QGS) String() string {
	if q.Transport == QGSVsock {
		return fmt.Sprintf("vsock:%d:%d", q.CID, q.Port)
	}
	return string(q.Transport) + ":" + q.Path
}

// Validate checks the location: an absolute unix socket path that fits
// sun_path, or a vsock CID and port that are not reserved wildcards.
func (q QGS) Validate() error {
	switch q.Transport {
	case QGSUnix:
		switch {
		case q.Path == "":
			return errors.New("quote generation service: no unix socket path")
		case !filepath.IsAbs(q.Path):
			return fmt.Errorf("quote generation service: unix socket path %q is not absolute", q.Path)
		case len(q.Path) > maxSocketPath:
			return fmt.Errorf("quote generation service: unix socket path %q is %d bytes; unix sockets allow %d", q.Path, len(q.Path), maxSocketPath)
		case !utf8.ValidString(q.Path):
			return fmt.Errorf("quote generation service: unix socket path %q is not valid UTF-8 (QEMU takes it in JSON)", q.Path)
		case strings.ContainsFunc(q.Path, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("quote generation service: unix socket path %q contains a control character", q.Path)
		}
		if q.CID != 0 || q.Port != 0 {
			return errors.New("quote generation service: a unix socket has no vsock CID or port")
		}
	case QGSVsock:
		if q.Path != "" {
			return errors.New("quote generation service: vsock has no socket path")
		}
		if q.CID == 0xFFFFFFFF {
			return errors.New("quote generation service: vsock CID 4294967295 (VMADDR_CID_ANY) is not an address")
		}
		if q.Port == 0 || q.Port == 0xFFFFFFFF {
			return fmt.Errorf("quote generation service: vsock port %d is out of range 1..4294967294", q.Port)
		}
	default:
		return fmt.Errorf("quote generation service: transport %q is neither %q nor %q", q.Transport, QGSUnix, QGSVsock)
	}
	return nil
}

// qgsSocket is the QAPI SocketAddress of the tdx-guest object; vsock's
// cid and port are strings in QAPI.
type qgsSocket struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
	CID  string `json:"cid,omitempty"`
	Port string `json:"port,omitempty"`
}

type tdxGuestObject struct {
	QOMType string    `json:"qom-type"`
	ID      string    `json:"id"`
	QGS     qgsSocket `json:"quote-generation-socket"`
}

// tdxObject is the -object argument (JSON) of the tdx-guest object with
// id for a validated q.
func tdxObject(id string, q QGS) (string, error) {
	sock := qgsSocket{Type: string(q.Transport)}
	if q.Transport == QGSUnix {
		sock.Path = q.Path
	} else {
		sock.CID, sock.Port = strconv.FormatUint(uint64(q.CID), 10), strconv.FormatUint(uint64(q.Port), 10)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tdxGuestObject{QOMType: "tdx-guest", ID: id, QGS: sock}); err != nil {
		return "", fmt.Errorf("qemu: tdx-guest object: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
