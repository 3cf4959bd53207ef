package qemu

import (
	"encoding/json"
	"testing"
)

// FuzzParseQGS: any --qgs value is an error or a valid location that
// prints back to itself and yields a tdx-guest object QEMU can parse as
// JSON, with the socket address it names.
func FuzzParseQGS(f *testing.F) {
	for _, s := range []string{"unix", "unix:/var/run/tdx-qgs/qgs.socket", "vsock", "vsock:4051", "vsock:2:4050", "unix:/a\"b\\c", "vsock::", "tcp:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQGS(s)
		if err != nil {
			return
		}
		back, err := ParseQGS(q.String())
		if err != nil || back != q {
			t.Fatalf("%q parsed to %+v, whose String %q parses to %+v, %v", s, q, q.String(), back, err)
		}
		obj, err := tdxObject("tdx", q)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			QOMType string            `json:"qom-type"`
			QGS     map[string]string `json:"quote-generation-socket"`
		}
		if err := json.Unmarshal([]byte(obj), &o); err != nil {
			t.Fatalf("object %s: %v", obj, err)
		}
		if o.QOMType != "tdx-guest" || o.QGS["type"] != string(q.Transport) || (q.Transport == QGSUnix && o.QGS["path"] != q.Path) {
			t.Fatalf("object %s does not say %+v", obj, q)
		}
	})
}
