package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of struct dm_ioctl (include/uapi/linux/dm-ioctl.h).
const (
	dmIoctlSize   = 312 // sizeof(struct dm_ioctl)
	dmNameLen     = 128 // DM_NAME_LEN, NUL included
	dmUUIDLen     = 129 // DM_UUID_LEN, NUL included
	offVersion    = 0
	offDataSize   = 12
	offDataStart  = 16
	offTargetCnt  = 20
	offOpenCount  = 24
	offFlags      = 28
	offEventNr    = 32
	offDev        = 40
	offName       = 48
	offUUID       = offName + dmNameLen // 176
	targetSpecLen = 40                  // sizeof(struct dm_target_spec)
	targetTypeLen = 16                  // DM_MAX_TYPE_NAME

	dmVersionMajor = 4
	dmVersionMinor = 0
	dmVersionPatch = 0

	dmReadonlyFlag   = 1 << 0 // DM_READONLY_FLAG
	dmBufferFullFlag = 1 << 8 // DM_BUFFER_FULL_FLAG

	// statusBufSize is the data area offered to DM_TABLE_STATUS and
	// DM_VERSION; it doubles while the kernel reports DM_BUFFER_FULL_FLAG.
	statusBufSize = 16 << 10
	maxBufSize    = 1 << 20
)

// Device-mapper ioctl request numbers, _IOWR(0xfd, nr, struct dm_ioctl),
// taken from x/sys/unix so that they are right for every architecture.
const (
	cmdVersion     = unix.DM_VERSION
	cmdDevCreate   = unix.DM_DEV_CREATE
	cmdDevRemove   = unix.DM_DEV_REMOVE
	cmdDevSuspend  = unix.DM_DEV_SUSPEND
	cmdTableLoad   = unix.DM_TABLE_LOAD
	cmdTableStatus = unix.DM_TABLE_STATUS
)

// control issues device-mapper ioctls: cmd with the request buffer buf,
// which the kernel overwrites with its reply.
type control interface {
	ioctl(cmd uint, buf []byte) error
	Close() error
}

// target is one line of a device-mapper table.
type target struct {
	start, length uint64 // sectors
	typ           string
	params        string
}

// header is the part of struct dm_ioctl a request sets.
type header struct {
	name, uuid  string
	flags       uint32
	targetCount uint32
	dev         uint64
}

// encodeRequest builds a struct dm_ioctl followed by data: data_start is
// sizeof(struct dm_ioctl) and data_size the whole buffer, at least
// dmIoctlSize+extra so that the kernel has room for its reply.
func encodeRequest(h header, data []byte, extra int) ([]byte, error) {
	if len(h.name) >= dmNameLen {
		return nil, fmt.Errorf("verity: device-mapper name is %d bytes; at most %d", len(h.name), dmNameLen-1)
	}
	if len(h.uuid) >= dmUUIDLen {
		return nil, fmt.Errorf("verity: device-mapper uuid is %d bytes; at most %d", len(h.uuid), dmUUIDLen-1)
	}
	if strings0(h.name) || strings0(h.uuid) {
		return nil, errors.New("verity: device-mapper name or uuid contains NUL")
	}
	size := dmIoctlSize + len(data)
	if size < dmIoctlSize+extra {
		size = dmIoctlSize + extra
	}
	b := make([]byte, size)
	le := binary.NativeEndian
	le.PutUint32(b[offVersion:], dmVersionMajor)
	le.PutUint32(b[offVersion+4:], dmVersionMinor)
	le.PutUint32(b[offVersion+8:], dmVersionPatch)
	le.PutUint32(b[offDataSize:], uint32(size))
	le.PutUint32(b[offDataStart:], dmIoctlSize)
	le.PutUint32(b[offTargetCnt:], h.targetCount)
	le.PutUint32(b[offFlags:], h.flags)
	le.PutUint64(b[offDev:], h.dev)
	copy(b[offName:offName+dmNameLen-1], h.name)
	copy(b[offUUID:offUUID+dmUUIDLen-1], h.uuid)
	copy(b[dmIoctlSize:], data)
	return b, nil
}

func strings0(s string) bool { return bytes.IndexByte([]byte(s), 0) >= 0 }

// align8 rounds n up to a multiple of 8.
func align8(n int) int { return (n + 7) &^ 7 }

// encodeTargets lays out struct dm_target_spec records, each followed by
// its NUL-terminated parameter string and padded to 8 bytes; next is the
// distance from the start of one spec to the start of the following one
// (DM_TABLE_LOAD semantics).
func encodeTargets(ts []target) ([]byte, error) {
	var out []byte
	for _, t := range ts {
		if len(t.typ) == 0 || len(t.typ) >= targetTypeLen || strings0(t.typ) {
			return nil, fmt.Errorf("verity: target type %q: want 1..15 bytes without NUL", t.typ)
		}
		if strings0(t.params) {
			return nil, errors.New("verity: target parameters contain NUL")
		}
		n := align8(targetSpecLen + len(t.params) + 1)
		b := make([]byte, n)
		le := binary.NativeEndian
		le.PutUint64(b[0:], t.start)
		le.PutUint64(b[8:], t.length)
		// status (int32 at 16) is output only.
		le.PutUint32(b[20:], uint32(n))
		copy(b[24:24+targetTypeLen], t.typ)
		copy(b[targetSpecLen:], t.params)
		out = append(out, b...)
	}
	return out, nil
}

// reply is the decoded part of a kernel reply.
type reply struct {
	version     [3]uint32
	dataSize    uint32
	dataStart   uint32
	targetCount uint32
	openCount   int32
	flags       uint32
	eventNr     uint32
	dev         uint64
	name        string
	uuid        string
	buf         []byte
}

func decodeReply(b []byte) (*reply, error) {
	if len(b) < dmIoctlSize {
		return nil, fmt.Errorf("verity: device-mapper reply is %d bytes", len(b))
	}
	le := binary.NativeEndian
	r := &reply{
		dataSize:    le.Uint32(b[offDataSize:]),
		dataStart:   le.Uint32(b[offDataStart:]),
		targetCount: le.Uint32(b[offTargetCnt:]),
		openCount:   int32(le.Uint32(b[offOpenCount:])),
		flags:       le.Uint32(b[offFlags:]),
		eventNr:     le.Uint32(b[offEventNr:]),
		dev:         le.Uint64(b[offDev:]),
		name:        cstr(b[offName : offName+dmNameLen]),
		uuid:        cstr(b[offUUID : offUUID+dmUUIDLen]),
		buf:         b,
	}
	for i := range r.version {
		r.version[i] = le.Uint32(b[offVersion+4*i:])
	}
	return r, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// firstTarget decodes the first dm_target_spec of a DM_TABLE_STATUS reply
// and its NUL-terminated string.
func (r *reply) firstTarget() (target, error) {
	if r.targetCount == 0 {
		return target{}, errors.New("verity: device has no active table")
	}
	start, end := int(r.dataStart), int(r.dataSize)
	if end > len(r.buf) {
		end = len(r.buf)
	}
	if start < dmIoctlSize || start+targetSpecLen > end {
		return target{}, fmt.Errorf("verity: malformed status reply (data %d..%d)", start, end)
	}
	b := r.buf[start:end]
	le := binary.NativeEndian
	rest := b[targetSpecLen:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return target{}, errors.New("verity: status string is not NUL-terminated")
	}
	return target{
		start:  le.Uint64(b[0:]),
		length: le.Uint64(b[8:]),
		typ:    cstr(b[24 : 24+targetTypeLen]),
		params: string(rest[:i]),
	}, nil
}

// call sends one request, growing the reply area while the kernel says
// DM_BUFFER_FULL_FLAG, and checks the interface version it answers with.
func call(c control, cmd uint, h header, data []byte, extra int) (*reply, error) {
	for {
		b, err := encodeRequest(h, data, extra)
		if err != nil {
			return nil, err
		}
		if err := c.ioctl(cmd, b); err != nil {
			return nil, err
		}
		r, err := decodeReply(b)
		if err != nil {
			return nil, err
		}
		if r.version[0] != dmVersionMajor {
			return nil, fmt.Errorf("verity: device-mapper interface version %d.%d.%d; want %d.x", r.version[0], r.version[1], r.version[2], dmVersionMajor)
		}
		if r.flags&dmBufferFullFlag == 0 {
			return r, nil
		}
		if extra >= maxBufSize {
			return nil, errors.New("verity: device-mapper reply does not fit in 1 MiB")
		}
		extra = max(2*extra, statusBufSize)
	}
}

// devControl is /dev/mapper/control.
type devControl struct{ f *os.File }

const controlPath = "/dev/mapper/control"

// openControl opens /dev/mapper/control, creating the node (misc device
// 10:236, or what /sys/class/misc/device-mapper/dev says) when devtmpfs
// has not.
func openControl() (control, error) {
	f, err := os.OpenFile(controlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		major, minor := uint32(10), uint32(236)
		if b, err := os.ReadFile("/sys/class/misc/device-mapper/dev"); err == nil {
			var ma, mi uint32
			if _, err := fmt.Sscanf(string(bytes.TrimSpace(b)), "%d:%d", &ma, &mi); err == nil {
				major, minor = ma, mi
			}
		}
		if err := os.MkdirAll("/dev/mapper", 0o755); err != nil {
			return nil, fmt.Errorf("verity: %w", err)
		}
		if err := unix.Mknod(controlPath, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("verity: creating %s (%d:%d): %w", controlPath, major, minor, err)
		}
		f, err = os.OpenFile(controlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("verity: opening device-mapper control: %w", err)
	}
	return &devControl{f: f}, nil
}

func (d *devControl) ioctl(cmd uint, buf []byte) error {
	if len(buf) < dmIoctlSize {
		return errors.New("verity: short ioctl buffer")
	}
	sc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(cmd), uintptr(unsafe.Pointer(&buf[0])))
	}); err != nil {
		return err
	}
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}

func (d *devControl) Close() error { return d.f.Close() }
