package launch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/chrysalis-cc/chrysalis/host/qemu"
	"github.com/chrysalis-cc/chrysalis/measure/guest"
)

// Instance is one of several guests on a host (qemu.MaxInstances at
// most): its own state directory (config disk, console log, sockets,
// lock), API port and vsock CID, all derived from the index so two
// instances never share any of them.
type Instance struct {
	Index    int
	StateDir string
	Port     int
	GuestCID uint32
}

// InstanceDir is instance i's state directory under base.
func InstanceDir(base string, i int) string {
	return filepath.Join(base, fmt.Sprintf("instance-%d", i))
}

// NewInstance derives instance i from the base state directory, base API
// port (instance i gets basePort + qemu.InstancePortStride·i) and base
// guest CID (baseCID + i).
func NewInstance(baseState string, basePort int, baseCID uint32, i int) (Instance, error) {
	port, err := qemu.InstancePort(basePort, i)
	if err != nil {
		return Instance{}, err
	}
	cid, err := qemu.InstanceCID(baseCID, i)
	if err != nil {
		return Instance{}, err
	}
	if baseState == "" {
		return Instance{}, errors.New("no base state directory given")
	}
	return Instance{Index: i, StateDir: InstanceDir(baseState, i), Port: port, GuestCID: cid}, nil
}

// Path is the file name inside the instance's state directory.
func (in Instance) Path(name string) string { return filepath.Join(in.StateDir, name) }

var errLineTooLong = errors.New("line too long")

// readLine reads one '\n'-terminated line of at most max bytes; a longer
// line is consumed and reported as errLineTooLong.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	long := false
	for {
		frag, err := r.ReadSlice('\n')
		if !long {
			if len(line)+len(frag) > max+1 {
				long, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		switch {
		case err == nil:
			if long {
				return nil, errLineTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if len(line) > 0 && !long && errors.Is(err, io.EOF) {
				return line, nil
			}
			return nil, err
		}
	}
}

// serveControl listens on FileControlSock in the state directory. Each
// client sends one command line (guest.CmdStatus or guest.CmdLogs; the
// guest's power-off stays with the launcher), the launcher forwards it
// on the status channel and writes back the guest's reply line, or an
// error reply of its own when the guest does not answer.
func (vm *VM) serveControl() error {
	path := filepath.Join(vm.state, FileControlSock)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	vm.control = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go vm.handleControl(c)
		}
	}()
	return nil
}

func (vm *VM) handleControl(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(QueryTimeout + 5*time.Second))
	line, err := readLine(bufio.NewReaderSize(c, 4096), guest.MaxCommandSize)
	var r *guest.Reply
	if err != nil {
		r = guest.ErrorReply(fmt.Errorf("control socket: reading the command: %v", err))
	} else if cmd, err := guest.ParseCommand(bytes.TrimSpace(line)); err != nil {
		r = guest.ErrorReply(err)
	} else if cmd.Cmd == guest.CmdPowerOff {
		r = guest.ErrorReply(errors.New("control socket: poweroff is not forwarded; stop the launcher (Ctrl-C or SIGTERM) instead"))
	} else if r, err = vm.forward(cmd); err != nil {
		r = guest.ErrorReply(err)
	}
	b, err := guest.EncodeReply(r)
	if err != nil {
		b, _ = guest.EncodeReply(guest.ErrorReply(err))
	}
	c.Write(b)
}

// forward sends one command to the guest and waits for its reply.
func (vm *VM) forward(cmd guest.Command) (*guest.Reply, error) {
	vm.queryMu.Lock()
	defer vm.queryMu.Unlock()
	// Drop a late answer to an earlier command that timed out.
	select {
	case <-vm.replies:
	default:
	}
	b, _ := json.Marshal(cmd)
	vm.mu.Lock()
	conn := vm.conn
	vm.mu.Unlock()
	if conn == nil {
		return nil, errors.New("no status channel to the guest")
	}
	vm.mu.Lock()
	conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := conn.Write(append(b, '\n'))
	vm.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sending %q to the guest: %w", cmd.Cmd, err)
	}
	t := time.NewTimer(QueryTimeout)
	defer t.Stop()
	select {
	case r := <-vm.replies:
		return r, nil
	case <-vm.done:
		return nil, errors.New("the VM exited before the guest answered")
	case <-t.C:
		return nil, fmt.Errorf("the guest did not answer %q within %s", cmd.Cmd, QueryTimeout)
	}
}

// Query asks the launcher running in stateDir to forward cmd to its
// guest and returns the guest's reply. An error reply is returned as an
// error.
func Query(ctx context.Context, stateDir string, cmd guest.Command) (*guest.Reply, error) {
	path := filepath.Join(stateDir, FileControlSock)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no launcher is running in %s (no %s): start one with `chrysalis launch --state %s`", stateDir, FileControlSock, stateDir)
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	dl := time.Now().Add(QueryTimeout + 5*time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetDeadline(dl)
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	line, err := readLine(bufio.NewReaderSize(c, 64<<10), guest.MaxMessageSize)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: reading the reply: %w", path, err)
	}
	r, err := guest.ParseReply(bytes.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if r.Reply == guest.ReplyError {
		return nil, fmt.Errorf("%s: %s", cmd.Cmd, r.Error)
	}
	return r, nil
}
