package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// genScan is what verifying one generation's bytes found.
type genScan struct {
	info       GenInfo
	torn       int64  // bytes after the last whole record (only when a torn tail is allowed)
	tornReason string // why those bytes are not records
}

// nextLSN returns the LSN that follows the last record of g, or g.BaseLSN
// when g has no records.
func nextLSN(g *GenInfo) LSN {
	if g.LastLSN == 0 {
		return g.BaseLSN
	}
	return g.LastLSN + 1
}

// scanGeneration verifies buf, the bytes of the generation file at path whose
// name says generation nameGen. It checks the header, the generation number
// against nameGen, the signature against sig (unless sig is zero), and every
// record: length, CRC, type and LSN continuity from the header's first LSN.
// When allowTorn is true, bytes after the last whole record that are a torn
// tail (see doc.go) are reported in torn instead of failing. For every record
// with LSN >= from, fn (if not nil) is called; its Payload aliases buf.
func scanGeneration(ctx context.Context, path string, nameGen uint32, buf []byte, sig Signature, allowTorn bool, from LSN, fn func(Record) error) (genScan, error) {
	h, herr := decodeHeader(buf)
	if herr != nil {
		return genScan{}, corrupt(path, nameGen, herr.off, herr.err, "%s", herr.reason)
	}
	if h.Gen != nameGen {
		return genScan{}, corrupt(path, nameGen, 28, ErrCorrupt, "header says generation %d", h.Gen)
	}
	if sig != (Signature{}) && h.Signature != sig {
		return genScan{}, corrupt(path, nameGen, 12, ErrSignature, "signature %x, want %x", h.Signature[:], sig[:])
	}
	res := genScan{info: GenInfo{
		Gen:       h.Gen,
		Path:      path,
		Created:   h.Created,
		Sealed:    true,
		Signature: h.Signature,
		BaseLSN:   h.FirstLSN,
	}}
	off := HeaderSize
	expect := h.FirstLSN
	for off < len(buf) {
		rec, n, st := decodeRecord(buf[off:])
		if st == recOK {
			if rec.LSN != expect {
				return genScan{}, corrupt(path, nameGen, int64(off), ErrCorrupt, "record LSN %d, want %d", rec.LSN, expect)
			}
			if res.info.FirstLSN == 0 {
				res.info.FirstLSN = rec.LSN
			}
			res.info.LastLSN = rec.LSN
			if fn != nil && rec.LSN >= from {
				if expect%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return genScan{}, err
					}
				}
				r := Record{LSN: rec.LSN, Type: rec.Type, Time: time.Unix(0, rec.TimeNS), Payload: rec.Payload, Gen: h.Gen}
				if err := fn(r); err != nil {
					return genScan{}, err
				}
			}
			expect++
			off += n
			continue
		}
		rest := buf[off:]
		var reason string
		torn := false
		switch st {
		case recShort:
			reason, torn = "partial record", true
			switch {
			case allZero(rest):
				reason = "zeroed tail"
			case len(rest) >= RecordHeaderSize-8 && (rest[8] == 0 || binary.LittleEndian.Uint64(rest[9:17]) != expect):
				// A torn write leaves a prefix of a real record, whose type
				// and LSN are right; these are not.
				reason, torn = fmt.Sprintf("record length %d runs past the end of the file and the record is not LSN %d",
					binary.LittleEndian.Uint32(rest), expect), false
			default:
				// A torn write is the last thing in the file; a whole record
				// after it means the length field is damaged.
				if at := findRecord(rest, expect+1); at >= 0 {
					reason, torn = fmt.Sprintf("record length %d runs past the end of the file, but record LSN %d follows at offset %d",
						binary.LittleEndian.Uint32(rest), expect+1, off+at), false
				}
			}
		case recBadLength:
			reason = "bad record length"
			if allZero(rest) {
				reason, torn = "zeroed tail", true
			}
		case recBadCRC:
			reason = "record checksum mismatch"
			if allZero(rest) {
				reason, torn = "zeroed tail", true
			} else if allZero(rest[n:]) {
				reason, torn = "last record checksum mismatch", true
			}
		case recBadType:
			reason = "record type 0"
		}
		if !torn || !allowTorn {
			if torn {
				reason += " in a sealed generation"
			}
			return genScan{}, corrupt(path, nameGen, int64(off), ErrCorrupt, "%s", reason)
		}
		res.torn = int64(len(rest))
		res.tornReason = reason
		break
	}
	end := len(buf) - int(res.torn)
	res.info.Size = int64(end)
	res.info.Checksum = crc32.Checksum(buf[HeaderSize:end], castagnoli)
	res.info.prevCreated = h.PrevCreated
	res.info.prevChecksum = h.PrevChecksum
	return res, nil
}

// checkChain verifies that g (just scanned) continues prev: consecutive
// generation numbers, the same signature, the header's predecessor creation
// time and final checksum, a creation time after prev's, and LSN continuity.
func checkChain(g *GenInfo, prev *GenInfo) error {
	if prev == nil {
		return nil
	}
	switch {
	case g.Gen != prev.Gen+1:
		return corrupt(g.Path, g.Gen, 28, ErrChain, "follows generation %d", prev.Gen)
	case g.Signature != prev.Signature:
		return corrupt(g.Path, g.Gen, 12, ErrSignature, "signature %x, generation %d has %x", g.Signature[:], prev.Gen, prev.Signature[:])
	case unixNano(g.prevCreated) != unixNano(prev.Created):
		return corrupt(g.Path, g.Gen, 40, ErrChain, "predecessor creation time %d, generation %d was created at %d",
			unixNano(g.prevCreated), prev.Gen, unixNano(prev.Created))
	case unixNano(g.Created) <= unixNano(prev.Created):
		return corrupt(g.Path, g.Gen, 32, ErrChain, "created at %d, not after generation %d (%d)",
			unixNano(g.Created), prev.Gen, unixNano(prev.Created))
	case g.prevChecksum != prev.Checksum:
		return corrupt(g.Path, g.Gen, 48, ErrChain, "predecessor final checksum %08x, generation %d (%s) has %08x",
			g.prevChecksum, prev.Gen, prev.Path, prev.Checksum)
	case g.BaseLSN != nextLSN(prev):
		return corrupt(g.Path, g.Gen, 52, ErrChain, "first LSN %d, generation %d ends before LSN %d", g.BaseLSN, prev.Gen, nextLSN(prev))
	}
	return nil
}

// ReadHeader reads and decodes the header of the generation file at path,
// with the checks DecodeHeader makes; a failure is a *CorruptError naming
// path. It does not compare the header with the file name or verify
// records.
func ReadHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("read log header %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, HeaderSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && n != HeaderSize {
		b = b[:n]
	}
	return headerOf(path, b)
}

// DecodeHeader decodes a generation header held in memory: the first
// HeaderSize bytes of b (later bytes are ignored). It checks what doc.go
// lists for a header: magic, version (another version matches ErrVersion),
// header CRC, and the generation, creation time, first LSN and predecessor
// fields. A failure is a *CorruptError with an empty Path and Gen 0 whose
// Offset is the offending field's.
func DecodeHeader(b []byte) (Header, error) { return headerOf("", b) }

// headerOf decodes the header in b, naming path in a failure.
func headerOf(path string, b []byte) (Header, error) {
	h, herr := decodeHeader(b)
	if herr != nil {
		return Header{}, corrupt(path, 0, herr.off, herr.err, "%s", herr.reason)
	}
	return h, nil
}

// VerifyGeneration verifies the sealed generation file at path: it reads
// the file whole and verifies its bytes as VerifyGenerationBytes does.
func VerifyGeneration(path string, prev *GenInfo) (GenInfo, error) {
	gen, err := genOfPath(path)
	if err != nil {
		return GenInfo{}, err
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return GenInfo{}, fmt.Errorf("verify log generation %d: %w", gen, err)
	}
	return verifySealed(path, gen, buf, prev)
}

// VerifyGenerationBytes verifies b, the bytes of the sealed generation file
// named by path, without reading the file: a caller that serves or copies a
// generation verifies exactly the bytes it holds. path is never opened; its
// file name gives the generation number (it must be <base><8 hex
// digits>.log, and the header must carry the same number) and it names the
// generation in errors and in the returned GenInfo. The checks are the
// header, every record's length, CRC, type and LSN, and, when prev is not
// nil, the chain to prev: consecutive generation numbers, the same
// signature (a *CorruptError matching ErrSignature), the predecessor's
// creation time and final checksum in the header, a later creation time and
// LSN continuity (ErrChain). b is treated as sealed: any bytes after the
// last whole record are corruption, reported with their offset in b. The
// returned GenInfo can be passed as prev for the next generation; it does
// not retain b.
func VerifyGenerationBytes(path string, b []byte, prev *GenInfo) (GenInfo, error) {
	gen, err := genOfPath(path)
	if err != nil {
		return GenInfo{}, err
	}
	return verifySealed(path, gen, b, prev)
}

// genOfPath returns the generation number in the file name of path.
func genOfPath(path string) (uint32, error) {
	gen, ok := ParseFileName(baseOf(path), filepath.Base(path))
	if !ok {
		return 0, fmt.Errorf("verify log generation %s: name is not <base><8 hex digits>.log: %w", path, ErrCorrupt)
	}
	return gen, nil
}

// verifySealed verifies buf as the sealed generation gen at path and its
// chain to prev. It is the one mechanism behind VerifyGeneration and
// VerifyGenerationBytes.
func verifySealed(path string, gen uint32, buf []byte, prev *GenInfo) (GenInfo, error) {
	var sig Signature
	if prev != nil {
		sig = prev.Signature
	}
	res, err := scanGeneration(context.Background(), path, gen, buf, sig, false, 0, nil)
	if err != nil {
		return GenInfo{}, err
	}
	if err := checkChain(&res.info, prev); err != nil {
		return GenInfo{}, err
	}
	return res.info, nil
}

// baseOf returns the base of a generation file name: the name without its
// 8 hex digits and ".log".
func baseOf(path string) string {
	name := filepath.Base(path)
	if len(name) < 12 {
		return ""
	}
	return name[:len(name)-12]
}

// dirEntry is one generation file found in a directory.
type dirEntry struct {
	gen  uint32
	path string
}

// listGenerations returns the generation files of base in dir, ascending,
// and the names of stray temporary files left by an interrupted generation
// creation. Two files for one generation (differing in letter case) are
// corruption.
func listGenerations(dir, base string) (gens []dirEntry, tmps []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list log directory %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if tmp, ok := trimTmp(name); ok {
			if _, ok := ParseFileName(base, tmp); ok {
				tmps = append(tmps, filepath.Join(dir, name))
			}
			continue
		}
		gen, ok := ParseFileName(base, name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		gens = append(gens, dirEntry{gen: gen, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(gens, func(a, b dirEntry) int {
		switch {
		case a.gen < b.gen:
			return -1
		case a.gen > b.gen:
			return 1
		}
		return 0
	})
	for i := 1; i < len(gens); i++ {
		if gens[i].gen == gens[i-1].gen {
			return nil, nil, corrupt(gens[i].path, gens[i].gen, 0, ErrCorrupt, "second file for the generation (also %s)", gens[i-1].path)
		}
		if gens[i].gen != gens[i-1].gen+1 {
			missing := gens[i-1].gen + 1
			return nil, nil, corrupt(filepath.Join(dir, FileName(base, missing)), missing, 0, ErrMissingGeneration,
				"no file between generations %d and %d", gens[i-1].gen, gens[i].gen)
		}
	}
	if len(gens) > 0 && gens[0].gen == 0 {
		return nil, nil, corrupt(gens[0].path, 0, 0, ErrCorrupt, "generation number 0")
	}
	return gens, tmps, nil
}

func trimTmp(name string) (string, bool) {
	const suffix = ".tmp"
	if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
		return name[:len(name)-len(suffix)], true
	}
	return "", false
}

// walkOptions says how walkDir treats a directory of generations.
type walkOptions struct {
	dir, base string
	sig       Signature // zero: take the first generation's
	repair    bool      // cut a torn tail and remove a torn newest file (Open); otherwise ignore them (read-only)
	minLast   LSN       // with repair: a cut may not leave the log ending before this LSN (Options.MinLastLSN)
	logger    *slog.Logger
	from      LSN
	fn        func(Record) error
}

// walkResult is what walkDir found.
type walkResult struct {
	gens []GenInfo // verified generations, ascending; the last has Sealed == false
	// recreate is the generation number of a newest file that was a torn
	// creation (empty or short header) and was removed; 0 if none.
	recreate uint32
}

// walkDir verifies every generation in a directory in order, calling fn for
// records with LSN >= from. Only the newest generation may have a torn tail,
// or be a torn creation when an older generation precedes it.
func walkDir(ctx context.Context, w walkOptions) (walkResult, error) {
	ents, tmps, err := listGenerations(w.dir, w.base)
	if err != nil {
		return walkResult{}, err
	}
	if len(ents) == 0 {
		return walkResult{}, fmt.Errorf("read log directory %s: no generations with base %q: %w", w.dir, w.base, fs.ErrNotExist)
	}
	var res walkResult
	if w.repair {
		for _, t := range tmps {
			if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return walkResult{}, fmt.Errorf("remove stray %s: %w", t, err)
			}
			w.logger.Warn("removed stray temporary log file", "path", t)
		}
	}
	sig := w.sig
	var prev *GenInfo
	for i, e := range ents {
		if err := ctx.Err(); err != nil {
			return walkResult{}, err
		}
		newest := i == len(ents)-1
		buf, err := os.ReadFile(e.path)
		if err != nil {
			return walkResult{}, fmt.Errorf("read log generation %d: %w", e.gen, err)
		}
		if newest && prev != nil && (len(buf) < HeaderSize || allZero(buf)) {
			// A crash between creating a generation file and making its
			// header durable; the previous generation verified intact.
			if w.repair {
				if err := os.Remove(e.path); err != nil {
					return walkResult{}, fmt.Errorf("remove torn log generation %d: %w", e.gen, err)
				}
				if err := fsutil.SyncDir(w.dir); err != nil {
					return walkResult{}, err
				}
				w.logger.Warn("removed torn newest log generation", "path", e.path, "gen", e.gen, "size", len(buf))
				res.recreate = e.gen
			}
			break
		}
		from, fn := w.from, w.fn
		if i == 0 && from != 0 && fn != nil {
			// Records below the oldest generation cannot be read.
			if h, herr := decodeHeader(buf); herr == nil && from < h.FirstLSN {
				return walkResult{}, corrupt(e.path, e.gen, 0, ErrMissingGeneration,
					"records from LSN %d asked for, oldest generation starts at LSN %d", from, h.FirstLSN)
			}
		}
		sc, err := scanGeneration(ctx, e.path, e.gen, buf, sig, newest, from, fn)
		if err != nil {
			return walkResult{}, err
		}
		if err := checkChain(&sc.info, prev); err != nil {
			return walkResult{}, err
		}
		sig = sc.info.Signature
		if sc.torn > 0 && w.repair {
			end := sc.info.LastLSN
			if end == 0 && prev != nil {
				end = prev.LastLSN
			}
			if end < w.minLast {
				return walkResult{}, corrupt(e.path, e.gen, sc.info.Size, ErrCorrupt,
					"%d bytes after the last whole record (%s), but records through LSN %d were acknowledged and the whole records end at LSN %d: damage, not a torn tail; nothing was cut",
					sc.torn, sc.tornReason, w.minLast, end)
			}
			if err := truncateDurably(e.path, sc.info.Size); err != nil {
				return walkResult{}, err
			}
			w.logger.Warn("cut torn tail of newest log generation", "path", e.path, "gen", e.gen,
				"offset", sc.info.Size, "bytes", sc.torn, "reason", sc.tornReason)
		}
		res.gens = append(res.gens, sc.info)
		prev = &res.gens[len(res.gens)-1]
	}
	if len(res.gens) == 0 {
		return walkResult{}, corrupt(ents[0].path, ents[0].gen, 0, ErrCorrupt, "only generation has no header")
	}
	res.gens[len(res.gens)-1].Sealed = false
	return res, nil
}

// truncateDurably cuts the file at path to size bytes and fsyncs it.
func truncateDurably(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s after cutting torn tail: %w", path, err)
	}
	return nil
}

// ReadDir iterates, read-only, over the generations of base in dir, calling
// fn for every record with LSN >= from in LSN order. It verifies every
// generation present (header, signature against sig unless sig is zero,
// generation continuity, chain, record CRCs and LSN continuity), including
// those before from; fn may be nil to only verify. A torn tail of the newest generation, or a newest
// generation that is a torn creation, is treated as the end of the log and
// left as it is. from == 0 means from the oldest record present; a from
// below the first LSN of the oldest generation present is an error matching
// ErrMissingGeneration. An error returned by fn stops the iteration and is
// returned as it is.
func ReadDir(ctx context.Context, dir, base string, sig Signature, from LSN, fn func(Record) error) error {
	if base == "" {
		base = DefaultBase
	}
	if fn == nil {
		fn = func(Record) error { return nil }
	}
	_, err := walkDir(ctx, walkOptions{dir: dir, base: base, sig: sig, from: from, fn: fn, logger: discardLogger()})
	return err
}

// ScanDir verifies, read-only, every generation of base in dir as ReadDir
// does and returns what it found, ascending. The newest generation has
// Sealed == false and its Size excludes any torn tail.
func ScanDir(ctx context.Context, dir, base string, sig Signature) ([]GenInfo, error) {
	if base == "" {
		base = DefaultBase
	}
	res, err := walkDir(ctx, walkOptions{dir: dir, base: base, sig: sig, logger: discardLogger()})
	if err != nil {
		return nil, err
	}
	return res.gens, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// findRecord returns the offset in b of a whole, valid record with LSN lsn,
// or -1 if there is none.
func findRecord(b []byte, lsn LSN) int {
	var pat [8]byte
	binary.LittleEndian.PutUint64(pat[:], lsn)
	for from := 0; ; {
		i := bytes.Index(b[from:], pat[:])
		if i < 0 {
			return -1
		}
		at := from + i - 9 // the LSN field is at offset 9 of a record
		if at >= 0 {
			if rec, _, st := decodeRecord(b[at:]); st == recOK && rec.LSN == lsn {
				return at
			}
		}
		from += i + 1
	}
}
