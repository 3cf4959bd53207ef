package verity

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	mverity "github.com/chrysalis-cc/chrysalis/models/verity"
	"golang.org/x/sys/unix"
)

// UUIDPrefix starts the device-mapper UUID of every device Open creates.
const UUIDPrefix = "CHRYSALIS-VERITY-"

// OnCorruption is what dm-verity does when a block fails verification;
// see the package documentation for the trade-offs.
type OnCorruption int

const (
	// ErrorOnCorruption fails the read with EIO (the kernel default).
	ErrorOnCorruption OnCorruption = iota
	// RestartOnCorruption reboots the guest ("restart_on_corruption").
	RestartOnCorruption
	// PanicOnCorruption panics the kernel ("panic_on_corruption",
	// Linux ≥ 5.9).
	PanicOnCorruption
)

func (o OnCorruption) String() string {
	switch o {
	case ErrorOnCorruption:
		return "error"
	case RestartOnCorruption:
		return "restart_on_corruption"
	case PanicOnCorruption:
		return "panic_on_corruption"
	}
	return fmt.Sprintf("OnCorruption(%d)", int(o))
}

// Options tune Open.
type Options struct {
	OnCorruption OnCorruption
}

// Device is an active dm-verity device.
type Device struct {
	Name  string // device-mapper name
	UUID  string // device-mapper UUID, UUIDPrefix + Name
	Path  string // /dev/dm-N
	Dev   uint64 // its dev_t (unix.Mkdev encoding)
	Table string // the verity target's parameter string
	// Sectors is the length of the device in 512-byte sectors.
	Sectors    uint64
	Superblock *mverity.Superblock

	ctl control
}

// Status is the verity target's status.
type Status struct {
	// Corrupted is true once dm-verity has seen a block that does not
	// match the tree (status "C"); false means none so far ("V").
	Corrupted bool
	// Raw is the whole status string the kernel reported.
	Raw string
}

// system is the part of the operating system Open uses besides the
// superblock read; tests replace it.
type system struct {
	openControl func() (control, error)
	// blockDev returns the dev_t of the block device node at path.
	blockDev func(path string) (uint64, error)
	// ensureNode makes sure path is a block device node for dev.
	ensureNode func(path string, dev uint64) error
}

var osSystem = system{
	openControl: openControl,
	blockDev:    statBlockDev,
	ensureNode:  ensureBlockNode,
}

func statBlockDev(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("verity: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("verity: %s is not a block device", path)
	}
	return uint64(st.Rdev), nil
}

func ensureBlockNode(path string, dev uint64) error {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFBLK || uint64(st.Rdev) != dev {
			return fmt.Errorf("verity: %s exists but is not block device %d:%d", path, unix.Major(dev), unix.Minor(dev))
		}
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("verity: %s: %w", path, err)
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("verity: creating %s: %w", path, err)
	}
	return nil
}

// digestSize is the digest length of the algorithms models/verity
// supports.
func digestSize(alg string) (int, error) {
	switch alg {
	case "sha256":
		return 32, nil
	case "sha512":
		return 64, nil
	case "sha1":
		return 20, nil
	}
	return 0, fmt.Errorf("verity: unsupported hash algorithm %q (want sha256, sha512 or sha1)", alg)
}

// checkName accepts 1..127 bytes of [A-Za-z0-9._-], not "." or "..",
// short enough for UUIDPrefix+name to fit DM_UUID_LEN.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("verity: invalid device name %q", name)
	}
	if len(name) >= dmNameLen || len(UUIDPrefix)+len(name) >= dmUUIDLen {
		return fmt.Errorf("verity: device name %q is %d bytes; at most %d", name, len(name), dmUUIDLen-1-len(UUIDPrefix))
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("verity: device name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// tableParams builds the verity target's parameter string; dataDev and
// hashDev are dev_t values. It returns the target length in sectors too.
func tableParams(sb *mverity.Superblock, dataDev, hashDev uint64, rootHash []byte, opts Options) (string, uint64, error) {
	n, err := digestSize(sb.Algorithm)
	if err != nil {
		return "", 0, err
	}
	if len(rootHash) != n {
		return "", 0, fmt.Errorf("verity: root hash is %d bytes; %s needs %d", len(rootHash), sb.Algorithm, n)
	}
	if sb.DataBlocks == 0 || sb.DataBlocks > math.MaxInt64/uint64(sb.DataBlockSize) {
		return "", 0, fmt.Errorf("verity: data block count %d out of range", sb.DataBlocks)
	}
	if sb.HashType > 1 {
		return "", 0, fmt.Errorf("verity: hash type %d", sb.HashType)
	}
	salt := "-"
	if len(sb.Salt) > 0 {
		salt = fmt.Sprintf("%x", sb.Salt)
	}
	sectors := sb.DataBlocks * uint64(sb.DataBlockSize) / 512
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d:%d %d:%d %d %d %d %d %s %x %s",
		sb.HashType,
		unix.Major(dataDev), unix.Minor(dataDev),
		unix.Major(hashDev), unix.Minor(hashDev),
		sb.DataBlockSize, sb.HashBlockSize, sb.DataBlocks,
		1, // hash_start_block: the superblock occupies hash block 0
		sb.Algorithm, rootHash, salt)
	switch opts.OnCorruption {
	case ErrorOnCorruption:
	case RestartOnCorruption, PanicOnCorruption:
		fmt.Fprintf(&b, " 1 %s", opts.OnCorruption)
	default:
		return "", 0, fmt.Errorf("verity: unknown corruption mode %d", int(opts.OnCorruption))
	}
	return b.String(), sectors, nil
}

// TableLine returns the whole dm table line ("0 <sectors> verity ...")
// of a device.
func (d *Device) TableLine() string {
	return fmt.Sprintf("0 %d verity %s", d.Sectors, d.Table)
}

// fileSize returns the size of a file or block device.
func fileSize(f *os.File) (int64, error) {
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("verity: size of %s: %w", f.Name(), err)
	}
	return n, nil
}

// readSuperblock parses the superblock at the start of hashDev and
// checks the sizes of both devices against it.
func readSuperblock(dataDev, hashDev string) (*mverity.Superblock, error) {
	hf, err := os.Open(hashDev)
	if err != nil {
		return nil, fmt.Errorf("verity: hash device: %w", err)
	}
	defer hf.Close()
	b := make([]byte, 512)
	if _, err := io.ReadFull(hf, b); err != nil {
		return nil, fmt.Errorf("verity: reading superblock from %s: %w", hashDev, err)
	}
	sb, err := mverity.ParseSuperblock(b)
	if err != nil {
		return nil, fmt.Errorf("%w (hash device %s)", err, hashDev)
	}
	if _, err := digestSize(sb.Algorithm); err != nil {
		return nil, err
	}
	if sb.DataBlocks > math.MaxInt64/uint64(sb.DataBlockSize) {
		return nil, fmt.Errorf("verity: data block count %d out of range", sb.DataBlocks)
	}
	need := int64(sb.DataBlocks) * int64(sb.DataBlockSize)
	lay, err := mverity.Layout(need, sb.Params())
	if err != nil {
		return nil, fmt.Errorf("verity: superblock of %s: %w", hashDev, err)
	}
	hsize, err := fileSize(hf)
	if err != nil {
		return nil, err
	}
	if hsize < lay.HashDeviceSize {
		return nil, fmt.Errorf("verity: hash device %s is %d bytes; the superblock's tree needs %d", hashDev, hsize, lay.HashDeviceSize)
	}
	df, err := os.Open(dataDev)
	if err != nil {
		return nil, fmt.Errorf("verity: data device: %w", err)
	}
	defer df.Close()
	dsize, err := fileSize(df)
	if err != nil {
		return nil, err
	}
	if dsize < need {
		return nil, fmt.Errorf("verity: data device %s is %d bytes; the superblock covers %d blocks of %d (%d bytes)", dataDev, dsize, sb.DataBlocks, sb.DataBlockSize, need)
	}
	return sb, nil
}

// Open activates a read-only dm-verity device called name over the data
// device dataDev, with the hash tree (veritysetup layout, superblock in
// block 0) on hashDev, trusting rootHash. Both devices must be block
// device nodes.
func Open(name string, dataDev, hashDev string, rootHash []byte, opts Options) (*Device, error) {
	return open(osSystem, name, dataDev, hashDev, rootHash, opts)
}

func open(sys system, name, dataDev, hashDev string, rootHash []byte, opts Options) (*Device, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	sb, err := readSuperblock(dataDev, hashDev)
	if err != nil {
		return nil, err
	}
	ddev, err := sys.blockDev(dataDev)
	if err != nil {
		return nil, err
	}
	hdev, err := sys.blockDev(hashDev)
	if err != nil {
		return nil, err
	}
	params, sectors, err := tableParams(sb, ddev, hdev, rootHash, opts)
	if err != nil {
		return nil, err
	}
	spec, err := encodeTargets([]target{{start: 0, length: sectors, typ: "verity", params: params}})
	if err != nil {
		return nil, err
	}
	d := &Device{Name: name, UUID: UUIDPrefix + name, Table: params, Sectors: sectors, Superblock: sb}

	ctl, err := sys.openControl()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			ctl.Close()
		}
	}()
	if _, err := call(ctl, cmdVersion, header{}, nil, 0); err != nil {
		return nil, fmt.Errorf("verity: DM_VERSION: %w", err)
	}
	r, err := call(ctl, cmdDevCreate, header{name: name, uuid: d.UUID, flags: dmReadonlyFlag}, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("verity: DM_DEV_CREATE %s: %w", name, err)
	}
	d.Dev = r.dev
	defer func() {
		if !ok {
			// Best effort: the error that got us here matters more.
			_, _ = call(ctl, cmdDevRemove, header{name: name}, nil, 0)
		}
	}()
	if _, err := call(ctl, cmdTableLoad, header{name: name, flags: dmReadonlyFlag, targetCount: 1}, spec, 0); err != nil {
		return nil, fmt.Errorf("verity: DM_TABLE_LOAD %s (%s): %w", name, d.TableLine(), err)
	}
	r, err = call(ctl, cmdDevSuspend, header{name: name}, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("verity: resuming %s: %w", name, err)
	}
	if r.dev != 0 {
		d.Dev = r.dev
	}
	if r.flags&dmReadonlyFlag == 0 {
		return nil, fmt.Errorf("verity: kernel did not make %s read-only", name)
	}
	d.Path = fmt.Sprintf("/dev/dm-%d", unix.Minor(d.Dev))
	if err := sys.ensureNode(d.Path, d.Dev); err != nil {
		return nil, err
	}
	d.ctl = ctl
	ok = true
	return d, nil
}

// Status reports the verity target's status (DM_TABLE_STATUS).
func (d *Device) Status() (Status, error) {
	if d.ctl == nil {
		return Status{}, errors.New("verity: device is closed")
	}
	r, err := call(d.ctl, cmdTableStatus, header{name: d.Name}, nil, statusBufSize)
	if err != nil {
		return Status{}, fmt.Errorf("verity: DM_TABLE_STATUS %s: %w", d.Name, err)
	}
	t, err := r.firstTarget()
	if err != nil {
		return Status{}, err
	}
	if t.typ != "verity" {
		return Status{}, fmt.Errorf("verity: %s has a %q target, not verity", d.Name, t.typ)
	}
	f := strings.Fields(t.params)
	if len(f) == 0 {
		return Status{}, fmt.Errorf("verity: %s: empty status", d.Name)
	}
	switch f[0] {
	case "V":
		return Status{Raw: t.params}, nil
	case "C":
		return Status{Corrupted: true, Raw: t.params}, nil
	}
	return Status{}, fmt.Errorf("verity: %s: unknown status %q", d.Name, t.params)
}

// Close removes the device (DM_DEV_REMOVE). It fails with EBUSY while the
// device is open or mounted; Close can then be called again.
func (d *Device) Close() error {
	if d.ctl == nil {
		return nil
	}
	if _, err := call(d.ctl, cmdDevRemove, header{name: d.Name}, nil, 0); err != nil {
		return fmt.Errorf("verity: DM_DEV_REMOVE %s: %w", d.Name, err)
	}
	err := d.ctl.Close()
	d.ctl = nil
	return err
}
