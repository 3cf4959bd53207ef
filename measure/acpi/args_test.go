package acpi

import (
	"reflect"
	"strings"
	"testing"
)

// devArgs and tdxArgs mirror host/qemu's dev and TDX command lines for a
// shape with one NIC and two disks (measure does not import host; ci/swtpm
// checks the real ones).
var devArgs = []string{
	"-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", "1", "-m", "1024M",
	"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
	"-bios", "/r/OVMF.fd", "-kernel", "/r/vmlinuz", "-initrd", "/r/initrd", "-append", "console=ttyS0 -- x",
	"-chardev", "file,id=console,path=/s/console.log", "-serial", "chardev:console",
	"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:8443-:8443", "-device", "virtio-net-pci,netdev=net0,romfile=",
	"-drive", "file=/d/a,,b.img,if=none,id=config,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=config,serial=chrysalis-config",
	"-drive", "file=/d/p.img,if=none,id=persistent,format=raw", "-device", "virtio-blk-pci,drive=persistent,serial=chrysalis-persistent",
	"-device", "virtio-serial-pci",
	"-chardev", "socket,id=status,path=/s/status.sock,server=on,wait=off", "-device", "virtserialport,chardev=status,name=chrysalis.status",
	"-chardev", "socket,id=qmp,path=/s/qmp.sock,server=on,wait=off", "-mon", "chardev=qmp,mode=control",
}

var tdxArgs = []string{
	"-accel", "kvm", "-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx,memory-backend=mem0",
	"-cpu", "host", "-smp", "4", "-m", "8192M", "-object", "memory-backend-ram,id=mem0,size=8192M",
	"-object", `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"}}`,
	"-nographic", "-nodefaults", "-bios", "/r/OVMF.fd",
	"-device", "virtio-serial-pci", "-device", "vhost-vsock-pci,guest-cid=6",
}

func TestQtestArgsDev(t *testing.T) {
	out, notes, err := QtestArgs(devArgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-machine", "q35", "-cpu", "max", "-smp", "1", "-m", "1024M",
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-bios", "/r/OVMF.fd", "-kernel", "/r/vmlinuz", "-initrd", "/r/initrd", "-append", "console=ttyS0 -- x",
		"-chardev", "null,id=console", "-serial", "chardev:console",
		"-netdev", "hubport,hubid=0,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-drive", "driver=null-co,if=none,id=config,readonly=on", "-device", "virtio-blk-pci,drive=config,serial=chrysalis-config",
		"-drive", "driver=null-co,if=none,id=persistent", "-device", "virtio-blk-pci,drive=persistent,serial=chrysalis-persistent",
		"-device", "virtio-serial-pci",
		"-chardev", "null,id=status", "-device", "virtserialport,chardev=status,name=chrysalis.status",
		"-chardev", "null,id=qmp", "-mon", "chardev=qmp,mode=control",
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got\n%q\nwant\n%q", out, want)
	}
	if len(notes) != 8 {
		for _, n := range notes {
			t.Log(n)
		}
		t.Fatalf("%d notes", len(notes))
	}
	// Every -device is kept verbatim and in order: the device list is the
	// launch's.
	var devs, got []string
	for i := 0; i+1 < len(devArgs); i++ {
		if devArgs[i] == "-device" {
			devs = append(devs, devArgs[i+1])
		}
	}
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "-device" {
			got = append(got, out[i+1])
		}
	}
	if !reflect.DeepEqual(devs, got) {
		t.Fatalf("devices changed: %q -> %q", devs, got)
	}
	if cpu, err := InferCPU(devArgs); err != nil || cpu != CPUTCGMax {
		t.Fatalf("InferCPU(dev) = %+v %v", cpu, err)
	}
}

func TestQtestArgsTDX(t *testing.T) {
	out, notes, err := QtestArgs(tdxArgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-machine", "q35,memory-backend=mem0,smm=off,pic=off",
		"-smp", "4", "-m", "8192M", "-object", "memory-backend-ram,id=mem0,size=8192M,reserve=off",
		"-nodefaults", "-bios", "/r/OVMF.fd",
		"-device", "virtio-serial-pci", "-device", "virtio-rng-pci,disable-legacy=on",
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got\n%q\nwant\n%q", out, want)
	}
	var text []string
	for _, n := range notes {
		text = append(text, n.String())
	}
	all := strings.Join(text, "\n")
	for _, s := range []string{"removed -accel kvm", "removed -machine kernel-irqchip=split", "removed -cpu host", "tdx-guest",
		"-device vhost-vsock-pci,guest-cid=6 -> virtio-rng-pci,disable-legacy=on", "sets pic=off"} {
		if !strings.Contains(all, s) {
			t.Errorf("notes lack %q:\n%s", s, all)
		}
	}
	if cpu, err := InferCPU(tdxArgs); err != nil || cpu != CPUTDX {
		t.Fatalf("InferCPU(tdx) = %+v %v", cpu, err)
	}
	// An explicit smm= or pic= is kept.
	out, _, err = QtestArgs([]string{"-machine", "q35,confidential-guest-support=tdx,pic=on"})
	if err != nil || out[1] != "q35,pic=on,smm=off" {
		t.Fatalf("explicit pic: %q %v", out, err)
	}
}

func TestQtestArgsMisc(t *testing.T) {
	out, _, err := QtestArgs([]string{
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-chardev", "socket,id=chrtpm,path=/t/s.sock",
		"-device", "tpm-crb,tpmdev=tpm0", "-qmp", "unix:/x", "-pidfile", "/p", "-S", "-enable-kvm",
		"-drive", "if=pflash,format=raw,unit=0,file=/f/code.fd", "-device", "driver=vhost-vsock-pci,addr=0x5,guest-cid=9",
	})
	want := []string{
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-chardev", "socket,id=chrtpm,path=/t/s.sock",
		"-device", "tpm-crb,tpmdev=tpm0",
		"-drive", "if=pflash,format=raw,unit=0,file=/f/code.fd", "-device", "virtio-rng-pci,disable-legacy=on,addr=0x5",
	}
	if err != nil || !reflect.DeepEqual(out, want) {
		t.Fatalf("got %q %v\nwant %q", out, err, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"q35"}, `argument 0 ("q35") is not an option`},
		{[]string{"-m"}, "option -m at argument 0 has no value"},
		{[]string{"-chardev", "null"}, "no id= property"},
		{[]string{"-netdev", "user,hostfwd=x"}, "no id= property"},
		{[]string{"-object", "{bad json"}, "JSON object"},
		{[]string{"-object", `{"id":"x"}`}, `no "qom-type"`},
		{[]string{"-object", "id=x,qom-type=y"}, "is not the object type"},
		{[]string{"-drive", "if=none,id=x"}, "no file= property"},
		{[]string{"-object", "tdx-guest,id=tdx"}, "a tdx-guest launch without -machine"},
	} {
		if _, _, err := QtestArgs(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := InferCPU([]string{"-accel", "kvm", "-cpu", "host"}); err == nil || !strings.Contains(err.Error(), "set Options.CPU") {
		t.Errorf("InferCPU(kvm host): %v", err)
	}
	if parts, esc := splitProps("a,,b,c"); !reflect.DeepEqual(parts, []string{"a,b", "c"}) || !esc {
		t.Errorf("splitProps: %q %v", parts, esc)
	}
}
