package journal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"

	"github.com/chrysalis-cc/chrysalis/measure/atomicfile"
)

// MaxRecord bounds one encoded record (a line).
const MaxRecord = 1 << 20

// Record is one journal line.
type Record struct {
	// Seq numbers records from 1 without gaps (a compacted file starts at
	// its snapshot's Seq).
	Seq uint64 `json:"seq"`
	// Kind names the record type ([a-z][a-z0-9-]*, at most 32 bytes).
	Kind string `json:"kind"`
	// Data is the record's payload (JSON).
	Data json.RawMessage `json:"data"`
	// Chain is hex SHA-256(previous Chain ‖ seq ‖ kind ‖ data); the first
	// record of a file chains from its own Prev.
	Chain string `json:"chain"`
	// Prev is the chain value this record continues (kept so a compacted
	// file still verifies from its first line).
	Prev string `json:"prev"`
}

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func chain(prev string, seq uint64, kind string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	fmt.Fprintf(h, "\x00%d\x00%s\x00", seq, kind)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex
	path string
	f    *os.File
	seq  uint64
	last string
	hook func(step string)
}

// SetHook installs a function Compact calls at its two crash-relevant
// points: "journal-compact-written" (the snapshot is in a temporary file,
// not yet renamed over the journal) and "journal-compact-renamed" (the
// rename is done, the journal not yet reopened). Tests kill the process
// there; nil removes it.
func (j *Journal) SetHook(h func(step string)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hook = h
}

func (j *Journal) step(s string) {
	if j.hook != nil {
		j.hook(s)
	}
}

// Open opens (creating if needed) the journal at path and returns its
// records. A last line without its newline, or one that does not decode,
// is a torn write from a crash: it is cut off and reported in torn.
func Open(path string) (j *Journal, recs []Record, torn int, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("journal %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	recs, good, torn, err := read(f, path)
	if err != nil {
		return nil, nil, 0, err
	}
	if torn > 0 {
		if err := f.Truncate(good); err != nil {
			return nil, nil, 0, fmt.Errorf("journal %s: cutting a torn record: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, nil, 0, err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return nil, nil, 0, err
	}
	j = &Journal{path: path, f: f}
	if n := len(recs); n > 0 {
		j.seq, j.last = recs[n-1].Seq, recs[n-1].Chain
	}
	return j, recs, torn, nil
}

// read decodes every complete record; good is the offset after the last
// good one, torn the byte count of a damaged final line.
func read(r io.Reader, path string) (recs []Record, good int64, torn int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var prev string
	for line := 1; ; line++ {
		b, rerr := br.ReadSlice('\n')
		for errors.Is(rerr, bufio.ErrBufferFull) {
			if len(b) > MaxRecord {
				return nil, 0, 0, fmt.Errorf("journal %s: line %d is longer than %d bytes", path, line, MaxRecord)
			}
			var more []byte
			more, rerr = br.ReadSlice('\n')
			b = append(append([]byte(nil), b...), more...)
		}
		if rerr == io.EOF {
			if len(b) > 0 {
				return recs, good, len(b), nil // no newline: torn
			}
			return recs, good, 0, nil
		}
		if rerr != nil {
			return nil, 0, 0, fmt.Errorf("journal %s: %w", path, rerr)
		}
		rec, derr := decode(b)
		if derr != nil {
			// Only the final line may be damaged.
			if _, perr := br.Peek(1); perr == io.EOF {
				return recs, good, len(b), nil
			}
			return nil, 0, 0, fmt.Errorf("journal %s: line %d: %v (not the last line: refusing to guess)", path, line, derr)
		}
		if len(recs) == 0 {
			prev = rec.Prev
		} else if rec.Prev != prev || rec.Seq != recs[len(recs)-1].Seq+1 {
			return nil, 0, 0, fmt.Errorf("journal %s: line %d: record %d does not continue record %d", path, line, rec.Seq, recs[len(recs)-1].Seq)
		}
		if want := chain(prev, rec.Seq, rec.Kind, rec.Data); rec.Chain != want {
			return nil, 0, 0, fmt.Errorf("journal %s: line %d: chain hash mismatch (record %d was altered)", path, line, rec.Seq)
		}
		prev = rec.Chain
		recs = append(recs, rec)
		good += int64(len(b))
	}
}

func decode(b []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, err
	}
	if dec.More() {
		return rec, errors.New("trailing data")
	}
	if !kindRE.MatchString(rec.Kind) || rec.Seq == 0 || len(rec.Data) == 0 {
		return rec, fmt.Errorf("bad record header (seq %d, kind %q)", rec.Seq, rec.Kind)
	}
	return rec, nil
}

func encode(rec Record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > MaxRecord {
		return nil, fmt.Errorf("journal: a %s record of %d bytes exceeds %d", rec.Kind, len(b), MaxRecord)
	}
	return append(b, '\n'), nil
}

// prepare builds and encodes the next record; the caller holds mu.
// Records after the first continue the chain; Prev is only meaningful on
// a file's first line, but keeping it everywhere costs little and lets
// any line be checked alone.
func (j *Journal) prepare(kind string, v any) (Record, []byte, error) {
	if j.f == nil {
		return Record{}, nil, fmt.Errorf("journal %s: closed or failed", j.path)
	}
	rec, err := j.next(kind, v)
	if err != nil {
		return Record{}, nil, err
	}
	b, err := encode(rec)
	if err != nil {
		return Record{}, nil, err
	}
	return rec, b, nil
}

func (j *Journal) next(kind string, v any) (Record, error) {
	if !kindRE.MatchString(kind) {
		return Record{}, fmt.Errorf("journal: bad record kind %q", kind)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Record{}, fmt.Errorf("journal: %s record: %w", kind, err)
	}
	seq := j.seq + 1
	return Record{Seq: seq, Kind: kind, Data: data, Prev: j.last, Chain: chain(j.last, seq, kind, data)}, nil
}

// Append writes one record and fsyncs it before returning. After an error
// the journal refuses further appends (the file may hold a torn line that
// only Open can cut).
func (j *Journal) Append(kind string, v any) (Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, b, err := j.prepare(kind, v)
	if err != nil {
		return Record{}, err
	}
	if _, err := j.f.Write(b); err != nil {
		j.fail()
		return Record{}, fmt.Errorf("journal %s: append: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		j.fail()
		return Record{}, fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	j.seq, j.last = rec.Seq, rec.Chain
	return rec, nil
}

func (j *Journal) fail() {
	j.f.Close()
	j.f = nil
}

// Compact replaces the file by a single record of kind holding v (a
// snapshot of the state every earlier record produced), through a
// temporary file and a rename: a crash leaves either the old file or the
// new one.
func (j *Journal) Compact(kind string, v any) (Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, b, err := j.prepare(kind, v)
	if err != nil {
		return Record{}, err
	}
	err = atomicfile.Create(j.path, 0o600, false, func(f *os.File) error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		j.step("journal-compact-written")
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("journal %s: compact: %w", j.path, err)
	}
	j.step("journal-compact-renamed")
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		j.fail()
		return Record{}, fmt.Errorf("journal %s: reopen after compaction: %w", j.path, err)
	}
	j.f.Close()
	j.f = f
	j.seq, j.last = rec.Seq, rec.Chain
	return rec, nil
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// ReadFile reads the records of the journal at path without opening it
// for writing: a reader beside a running writer never cuts its tail. A
// torn final line is skipped and counted, as Open would.
func ReadFile(path string) (recs []Record, torn int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("journal %s: %w", path, err)
	}
	defer f.Close()
	recs, _, torn, err = read(f, path)
	return recs, torn, err
}
