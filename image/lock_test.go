package image

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func goodLock(t *testing.T) *Lock {
	t.Helper()
	l, err := ReadLock(filepath.Join("testdata", "lock", "good.lock"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRepositoryLockIsValid(t *testing.T) {
	l, err := ReadLock("inputs.lock")
	if err != nil {
		t.Fatal(err)
	}
	if l.Go == "" || len(l.Inputs) != len(Roles) {
		t.Fatalf("lock = %+v", l)
	}
}

func TestLockFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string // substring of the error; "" = valid
	}{
		{"good.lock", ""},
		{"unknown-top-field.lock", `unknown field "extra"`},
		{"unknown-input-field.lock", `unknown field "url"`},
		{"duplicate-key.lock", `duplicate key "sha256"`},
		{"trailing-data.lock", "trailing data"},
		{"not-json.lock", "inputs lock"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := ReadLock(filepath.Join("testdata", "lock", tc.file))
			checkErr(t, err, tc.want)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}

func TestLockValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(l *Lock)
		want string
	}{
		{"ok", func(l *Lock) {}, ""},
		{"format", func(l *Lock) { l.Format = 2 }, "format 2 is not supported"},
		{"go version", func(l *Lock) { l.Go = "1.26.8" }, `go "1.26.8" is not a Go toolchain version`},
		{"unknown role", func(l *Lock) { l.Inputs[3].Role = "bootloader" }, `input 4 (ovmf): role "bootloader" is unknown`},
		{"missing role field", func(l *Lock) { l.Inputs[3].Role = "" }, "input 4 (ovmf): role is missing"},
		{"duplicate role", func(l *Lock) { l.Inputs[3].Role = RoleKernel }, `input 4 (ovmf): role "kernel" is already used by input 1`},
		{"role absent", func(l *Lock) { l.Inputs = l.Inputs[:3] }, `no input has role "firmware"`},
		{"bad package", func(l *Lock) { l.Inputs[3].Package = "OVMF!" }, `package "OVMF!" is not a Debian package name`},
		{"bad version", func(l *Lock) { l.Inputs[3].Version = "latest version" }, `input 4 (ovmf): version "latest version"`},
		{"bad arch", func(l *Lock) { l.Inputs[3].Arch = "" }, `arch "" is not`},
		{"zero size", func(l *Lock) { l.Inputs[0].Size = 0 }, "input 1 (linux-binary-7.3.4+deb13-cloud-amd64): size 0 must be positive"},
		{"negative size", func(l *Lock) { l.Inputs[0].Size = -5 }, "size -5 must be positive"},
		{"sha256 upper", func(l *Lock) { l.Inputs[1].SHA256 = strings.ToUpper(l.Inputs[1].SHA256) }, "input 2 (linux-modules-7.3.4+deb13-cloud-amd64): sha256"},
		{"sha256 short", func(l *Lock) { l.Inputs[1].SHA256 = "abcd" }, `sha256 "abcd" is not 64 lowercase hex digits`},
		{"filename other package", func(l *Lock) {
			l.Inputs[3].Filename = "pool/main/e/edk2/ovmf-ia32_2025.02-8+deb13u1_all.deb"
		}, "does not match package, version and arch (want .../ovmf_2025.02-8+deb13u1_all.deb)"},
		{"filename other version", func(l *Lock) { l.Inputs[3].Version = "2025.02-9" }, "want .../ovmf_2025.02-9_all.deb"},
		{"filename traversal", func(l *Lock) { l.Inputs[3].Filename = "pool/../../etc/ovmf_2025.02-8+deb13u1_all.deb" }, "not a clean relative pool/ path"},
		{"filename absolute", func(l *Lock) { l.Inputs[3].Filename = "/pool/main/e/edk2/ovmf_2025.02-8+deb13u1_all.deb" }, "not a clean relative pool/ path"},
		{"filename url", func(l *Lock) { l.Inputs[3].Filename = "pool/x?y=ovmf_2025.02-8+deb13u1_all.deb" }, "characters not allowed"},
		{"epoch", func(l *Lock) {
			l.Inputs[3].Version = "1:2025.02-8+deb13u1"
		}, ""},
		{"modules from another kernel", func(l *Lock) {
			in := &l.Inputs[1]
			in.Version = "7.3.5-1~bpo13+1"
			in.Filename = "pool/main/l/linux/" + debFilename(in.Package, in.Version, in.Arch)
		}, "version 7.3.5-1~bpo13+1/amd64 differs from the kernel's"},
		{"bad suite", func(l *Lock) { l.Inputs[0].Suite = "trixie backports" }, `suite "trixie backports"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := goodLock(t)
			tc.edit(l)
			checkErr(t, l.Validate(), tc.want)
			// The same through the JSON path.
			data, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseLock(data)
			checkErr(t, err, tc.want)
		})
	}
}

func TestReadLockMissing(t *testing.T) {
	_, err := ReadLock(filepath.Join(t.TempDir(), "nope.lock"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

func TestDebFilename(t *testing.T) {
	for _, tc := range []struct{ pkg, ver, arch, want string }{
		{"ovmf", "2025.02-8+deb13u1", "all", "ovmf_2025.02-8+deb13u1_all.deb"},
		{"qemu-system-x86", "1:10.0.13+ds-1", "amd64", "qemu-system-x86_10.0.13+ds-1_amd64.deb"},
	} {
		if got := debFilename(tc.pkg, tc.ver, tc.arch); got != tc.want {
			t.Errorf("debFilename(%s, %s, %s) = %s, want %s", tc.pkg, tc.ver, tc.arch, got, tc.want)
		}
	}
}
