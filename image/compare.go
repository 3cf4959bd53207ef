package image

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FileState is one side of a compared release file.
type FileState struct {
	// Present says the file exists (as a regular file).
	Present bool `json:"present"`
	// Size and SHA256 describe its bytes when Present.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// FieldDiff is one differing release.json value. Path is a JSON path
// ("inputs[2].sha256"); A and B are the compact JSON values, "" where the
// field is absent on that side.
type FieldDiff struct {
	Path string `json:"path"`
	A    string `json:"a"`
	B    string `json:"b"`
}

// FileComparison is the result of comparing one file of two releases.
type FileComparison struct {
	// Name is the file name inside the release directory.
	Name string    `json:"name"`
	A    FileState `json:"a"`
	B    FileState `json:"b"`
	// Same says both are present and byte-identical.
	Same bool `json:"same"`
	// Offset is the first byte that differs (for files of different
	// sizes where one is a prefix of the other: the shorter one's size);
	// -1 when Same or a side is missing.
	Offset int64 `json:"offset"`
	// ContextA and ContextB are hex of the bytes around Offset on each
	// side, starting at ContextStart.
	ContextStart int64  `json:"context_start,omitempty"`
	ContextA     string `json:"context_a,omitempty"`
	ContextB     string `json:"context_b,omitempty"`
	// Fields are release.json's differing fields (only for release.json,
	// when both sides parse as JSON).
	Fields []FieldDiff `json:"fields,omitempty"`
}

// compareContext is how many bytes either side of the first difference
// FileComparison shows.
const compareContext = 8

// CompareReleases compares the release directories a and b file by file:
// every file either directory holds (release files first in
// ReleaseFiles order, then SHA256SUMS, then any other file, by name),
// byte for byte. It does not check SHA256SUMS (LoadRelease does): it
// reports what differs, also between damaged releases. The error is for
// a directory that cannot be read or holds something other than regular
// files.
func CompareReleases(a, b string) ([]FileComparison, error) {
	names := append(append([]string(nil), ReleaseFiles...), FileSHA256SUMS)
	extra := map[string]bool{}
	for _, dir := range []string{a, b} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("compare releases: %w", err)
		}
		for _, e := range ents {
			if !contains(names, e.Name()) {
				extra[e.Name()] = true
			}
		}
	}
	var rest []string
	for n := range extra {
		rest = append(rest, n)
	}
	sort.Strings(rest)
	names = append(names, rest...)

	var out []FileComparison
	for _, n := range names {
		c, err := compareFile(a, b, n)
		if err != nil {
			return nil, fmt.Errorf("compare releases: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// readSide reads file name of release dir; a missing file is not an
// error.
func readSide(dir, name string) (FileState, []byte, error) {
	sum, size, data, err := hashFile(filepath.Join(dir, name), true)
	if errors.Is(err, fs.ErrNotExist) {
		return FileState{}, nil, nil
	}
	if err != nil {
		return FileState{}, nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return FileState{Present: true, Size: size, SHA256: sum}, data, nil
}

func compareFile(a, b, name string) (FileComparison, error) {
	c := FileComparison{Name: name, Offset: -1}
	var da, db []byte
	var err error
	if c.A, da, err = readSide(a, name); err != nil {
		return c, err
	}
	if c.B, db, err = readSide(b, name); err != nil {
		return c, err
	}
	if !c.A.Present || !c.B.Present {
		return c, nil
	}
	if bytes.Equal(da, db) {
		c.Same = true
		return c, nil
	}
	off := firstDifference(da, db)
	c.Offset = int64(off)
	start := max(off-compareContext, 0)
	c.ContextStart = int64(start)
	c.ContextA = hex.EncodeToString(da[start:min(off+compareContext, len(da))])
	c.ContextB = hex.EncodeToString(db[start:min(off+compareContext, len(db))])
	if name == FileReleaseJSON {
		c.Fields = JSONFieldDiffs(da, db)
	}
	return c, nil
}

// firstDifference returns the first index where a and b differ (the
// shorter length when one is a prefix of the other).
func firstDifference(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// JSONFieldDiffs lists the leaf values that differ between the JSON
// documents a and b, by path, in document order (object keys sorted).
// A document that does not parse is reported as one difference at the
// root ("$") with the parse error; identical bytes give no difference.
func JSONFieldDiffs(a, b []byte) []FieldDiff {
	if bytes.Equal(a, b) {
		return nil
	}
	var va, vb any
	ea := json.Unmarshal(a, &va)
	eb := json.Unmarshal(b, &vb)
	if ea != nil || eb != nil {
		show := func(doc []byte, v any, err error) string {
			if err != nil {
				return fmt.Sprintf("invalid JSON (%d bytes, sha256 %s): %v", len(doc), sha256Hex(doc), err)
			}
			return compactJSON(v)
		}
		return []FieldDiff{{Path: "$", A: show(a, va, ea), B: show(b, vb, eb)}}
	}
	var out []FieldDiff
	walkJSONDiff("", va, vb, true, true, &out)
	return out
}

func walkJSONDiff(path string, a, b any, hasA, hasB bool, out *[]FieldDiff) {
	if hasA && hasB {
		switch x := a.(type) {
		case map[string]any:
			if y, ok := b.(map[string]any); ok {
				keys := map[string]bool{}
				for k := range x {
					keys[k] = true
				}
				for k := range y {
					keys[k] = true
				}
				sorted := make([]string, 0, len(keys))
				for k := range keys {
					sorted = append(sorted, k)
				}
				sort.Strings(sorted)
				for _, k := range sorted {
					va, okA := x[k]
					vb, okB := y[k]
					walkJSONDiff(joinPath(path, k), va, vb, okA, okB, out)
				}
				return
			}
		case []any:
			if y, ok := b.([]any); ok {
				for i := 0; i < max(len(x), len(y)); i++ {
					var va, vb any
					if i < len(x) {
						va = x[i]
					}
					if i < len(y) {
						vb = y[i]
					}
					walkJSONDiff(path+"["+strconv.Itoa(i)+"]", va, vb, i < len(x), i < len(y), out)
				}
				return
			}
		}
		if ca, cb := compactJSON(a), compactJSON(b); ca != cb {
			*out = append(*out, FieldDiff{Path: orDollar(path), A: ca, B: cb})
		}
		return
	}
	d := FieldDiff{Path: orDollar(path)}
	if hasA {
		d.A = compactJSON(a)
	}
	if hasB {
		d.B = compactJSON(b)
	}
	*out = append(*out, d)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orDollar(p string) string {
	if p == "" {
		return "$"
	}
	return p
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}
