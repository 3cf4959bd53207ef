package acpi

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// qtest is a client of QEMU's qtest protocol (system/qtest.c): one command
// per line, answered by "OK [value]" or "FAIL reason". Lines starting with
// "IRQ" are asynchronous interrupt notices (only sent after an
// irq_intercept command, which this client never issues) and are skipped.
type qtest struct {
	w io.Writer
	r *bufio.Reader
}

func newQtest(rw io.ReadWriter) *qtest {
	return &qtest{w: rw, r: bufio.NewReaderSize(rw, 64<<10)}
}

// maxLine bounds one response line: a base64 read of dmaChunk bytes plus
// the "OK " prefix and some slack.
const maxLine = dmaChunk/3*4 + 1024

// cmd sends one command and returns the text after "OK" (trimmed).
func (q *qtest) cmd(format string, args ...any) (string, error) {
	line := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(q.w, line+"\n"); err != nil {
		return "", fmt.Errorf("qtest %q: %w", line, err)
	}
	for {
		resp, err := q.readLine()
		if err != nil {
			return "", fmt.Errorf("qtest %q: %w", line, err)
		}
		if strings.HasPrefix(resp, "IRQ") {
			continue
		}
		switch {
		case resp == "OK":
			return "", nil
		case strings.HasPrefix(resp, "OK "):
			return strings.TrimSpace(resp[3:]), nil
		case strings.HasPrefix(resp, "FAIL"):
			return "", fmt.Errorf("qtest %q: QEMU answered %q", line, resp)
		default:
			return "", fmt.Errorf("qtest %q: unexpected answer %.80q", line, resp)
		}
	}
}

func (q *qtest) readLine() (string, error) {
	var sb strings.Builder
	for {
		chunk, err := q.r.ReadSlice('\n')
		sb.Write(chunk)
		if sb.Len() > maxLine {
			return "", fmt.Errorf("answer longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return strings.TrimRight(sb.String(), "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return "", errors.New("QEMU closed the qtest connection")
		default:
			return "", err
		}
	}
}

func (q *qtest) out(width string, port uint16, v uint32) error {
	_, err := q.cmd("out%s %#x %#x", width, port, v)
	return err
}

func (q *qtest) in(width string, port uint16) (uint32, error) {
	s, err := q.cmd("in%s %#x", width, port)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("qtest in%s %#x: answer %q is not a number", width, port, s)
	}
	return uint32(v), nil
}

func (q *qtest) read(addr uint64, n int) ([]byte, error) {
	s, err := q.cmd("b64read %#x %#x", addr, n)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("qtest b64read %#x %#x: %w", addr, n, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("qtest b64read %#x %#x: got %d bytes", addr, n, len(b))
	}
	return b, nil
}

func (q *qtest) write(addr uint64, b []byte) error {
	_, err := q.cmd("b64write %#x %#x %s", addr, len(b), base64.StdEncoding.EncodeToString(b))
	return err
}

// PCI configuration mechanism #1.
const (
	pciConfigAddr = 0xcf8
	pciConfigData = 0xcfc
)

func pciAddr(dev, fn, off uint32) uint32 {
	return 0x80000000 | dev<<11 | fn<<8 | off&0xfc
}

func (q *qtest) pciRead32(dev, fn, off uint32) (uint32, error) {
	if err := q.out("l", pciConfigAddr, pciAddr(dev, fn, off)); err != nil {
		return 0, err
	}
	return q.in("l", pciConfigData)
}

func (q *qtest) pciWrite32(dev, fn, off, v uint32) error {
	if err := q.out("l", pciConfigAddr, pciAddr(dev, fn, off)); err != nil {
		return err
	}
	return q.out("l", pciConfigData, v)
}

// pciRead32b and pciWrite32b address a function on any bus.
func (q *qtest) pciRead32b(bus, dev, fn int, off uint32) (uint32, error) {
	if err := q.out("l", pciConfigAddr, pciAddr(uint32(dev), uint32(fn), off)|uint32(bus&0xff)<<16); err != nil {
		return 0, err
	}
	return q.in("l", pciConfigData)
}

func (q *qtest) pciWrite32b(bus, dev, fn int, off, v uint32) error {
	if err := q.out("l", pciConfigAddr, pciAddr(uint32(dev), uint32(fn), off)|uint32(bus&0xff)<<16); err != nil {
		return err
	}
	return q.out("l", pciConfigData, v)
}

func (q *qtest) pciWrite8(dev, fn, off uint32, v uint8) error {
	if err := q.out("l", pciConfigAddr, pciAddr(dev, fn, off)); err != nil {
		return err
	}
	return q.out("b", pciConfigData+uint16(off&3), uint32(v))
}

// fw_cfg I/O interface on x86.
const (
	fwCfgSelector = 0x510
	fwCfgData     = 0x511
	fwCfgDMA      = 0x514

	dmaCtlError  = 0x01
	dmaCtlRead   = 0x02
	dmaCtlSelect = 0x08

	// dmaDescAddr and dmaBufAddr are the guest-physical addresses of the
	// FWCfgDmaAccess descriptor and the data buffer: low RAM no firmware
	// has touched (the vCPUs never run).
	dmaDescAddr = 0x10000
	dmaBufAddr  = 0x100000
	// dmaChunk is the largest single DMA read.
	dmaChunk = 1 << 20
)

// fwCfgReadIO reads n bytes of key through the data port, a byte at a
// time (used for the signature and feature bitmap only).
func (q *qtest) fwCfgReadIO(key uint16, n int) ([]byte, error) {
	if err := q.out("w", fwCfgSelector, uint32(key)); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	for i := range b {
		v, err := q.in("b", fwCfgData)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

// fwCfgReadDMA selects key and reads n bytes from its start through the
// DMA interface. The 64-bit descriptor address is written to the
// big-endian DMA register as two 32-bit halves (the low half starts the
// transfer); qtest's outl stores the value little-endian, so each half is
// byte-swapped for the device to see it in its order.
func (q *qtest) fwCfgReadDMA(key uint16, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for first := true; first || len(out) < n; first = false {
		chunk := min(n-len(out), dmaChunk)
		ctl := uint32(dmaCtlRead)
		if first {
			ctl |= uint32(key)<<16 | dmaCtlSelect
		}
		var desc [16]byte
		binary.BigEndian.PutUint32(desc[0:], ctl)
		binary.BigEndian.PutUint32(desc[4:], uint32(chunk))
		binary.BigEndian.PutUint64(desc[8:], dmaBufAddr)
		if err := q.write(dmaDescAddr, desc[:]); err != nil {
			return nil, err
		}
		if err := q.out("l", fwCfgDMA, bits.ReverseBytes32(uint32(dmaDescAddr>>32))); err != nil {
			return nil, err
		}
		if err := q.out("l", fwCfgDMA+4, bits.ReverseBytes32(uint32(dmaDescAddr&0xffffffff))); err != nil {
			return nil, err
		}
		st, err := q.read(dmaDescAddr, 4)
		if err != nil {
			return nil, err
		}
		if c := binary.BigEndian.Uint32(st); c != 0 {
			return nil, fmt.Errorf("fw_cfg DMA read of key %#x at offset %d: control word %#x after the transfer (error bit %d)", key, len(out), c, c&dmaCtlError)
		}
		if chunk == 0 {
			break
		}
		b, err := q.read(dmaBufAddr, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
