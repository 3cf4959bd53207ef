package acpi

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// fakeQEMU answers qtest lines with canned responses.
func fakeQEMU(t *testing.T, answer func(line string) string) *qtest {
	t.Helper()
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	go func() {
		r := bufio.NewReader(s)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			resp := answer(strings.TrimSuffix(line, "\n"))
			if resp == "" {
				s.Close()
				return
			}
			if _, err := s.Write([]byte(resp)); err != nil {
				return
			}
		}
	}()
	return newQtest(c)
}

func TestQtestProtocol(t *testing.T) {
	q := fakeQEMU(t, func(line string) string {
		switch {
		case line == "inb 0x511":
			return "IRQ raise 4\nOK 0x0051\n"
		case strings.HasPrefix(line, "outw"):
			return "OK\n"
		case line == "inl 0xcfc":
			return "OK zz\n"
		case strings.HasPrefix(line, "b64read 0x10000 0x4"):
			return "OK AAECAw==\n"
		case strings.HasPrefix(line, "b64read 0x10 0x2"):
			return "OK AAECAw==\n"
		case line == "crash":
			return ""
		}
		return "FAIL Unknown command '" + line + "'\n"
	})
	if v, err := q.in("b", 0x511); err != nil || v != 0x51 {
		t.Fatalf("inb: %#x %v", v, err)
	}
	if err := q.out("w", 0x510, 0); err != nil {
		t.Fatal(err)
	}
	if b, err := q.read(0x10000, 4); err != nil || string(b) != "\x00\x01\x02\x03" {
		t.Fatalf("read: %q %v", b, err)
	}
	for _, tc := range []struct {
		do   func() error
		want string
	}{
		{func() error { _, err := q.in("l", 0xcfc); return err }, `answer "zz" is not a number`},
		{func() error { _, err := q.read(0x10, 2); return err }, "got 4 bytes"},
		{func() error { _, err := q.cmd("bogus"); return err }, `QEMU answered "FAIL Unknown command 'bogus'"`},
		{func() error { _, err := q.cmd("crash"); return err }, "QEMU closed the qtest connection"},
	} {
		if err := tc.do(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestQtestDMAError(t *testing.T) {
	q := fakeQEMU(t, func(line string) string {
		if strings.HasPrefix(line, "b64read 0x10000 0x4") {
			return "OK AAAAAQ==\n" // control word 1: error
		}
		return "OK\n"
	})
	if _, err := q.fwCfgReadDMA(0x20, 16); err == nil || !strings.Contains(err.Error(), "fw_cfg DMA read of key 0x20 at offset 0: control word 0x1") {
		t.Fatalf("DMA error: %v", err)
	}
}
