package restore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/wal"
)

// inputs is what hard recovery verified before changing anything.
type inputs struct {
	sig    wal.Signature  // log-set signature of the database and the logs
	dbSig  [16]byte       // database signature
	backup []wal.GenInfo  // the backup's generations LowGen..HighGen, verified
	live   liveLog        // what the live log directory holds
	snap   uint64         // snapshot LSN S
	early  time.Time      // earliest time bound accepted (see doc.go)
	logDir string         // backup log directory
	base   string         // log base
	caught bool           // the live log continues the backup and catch-up was asked
	skip   string         // why catch-up is not used although asked; "" otherwise
	byGen  map[uint32]int // index in backup by generation
}

// liveLog is the live log directory as found before recovery.
type liveLog struct {
	gens []wal.GenInfo // verified generations, ascending; nil when none or unusable
	err  error         // why the directory could not be used as a whole, or nil
}

// backupEnd returns the last LSN the backup's logs hold.
func (in *inputs) backupEnd() uint64 { return endLSN(in.backup[len(in.backup)-1]) }

// endLSN returns the LSN of g's last record, or the one before its first
// when it holds none.
func endLSN(g wal.GenInfo) uint64 {
	if g.LastLSN == 0 {
		return g.BaseLSN - 1
	}
	return g.LastLSN
}

// readDatabaseMeta reads the signatures and applied LSN of a restored
// database file that no process has opened since it was copied. It refuses
// a file with a non-empty SQLite write-ahead log beside it, because the
// read-only reader would not see what that log holds: such a file was
// opened after the restore copied it, or a stale log of another database
// lies next to it.
func readDatabaseMeta(ctx context.Context, path string) (backupset.DBMeta, error) {
	if _, err := os.Stat(path); err != nil {
		return backupset.DBMeta{}, fmt.Errorf("%w: %s: %w", ErrDatabase, path, err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return backupset.DBMeta{}, fmt.Errorf("%w: %s-wal (%d bytes) lies beside the restored database; it belongs to a database "+
			"opened after the restore copied the file, or to the database the restore replaced: move it away and restore again",
			ErrDatabase, path, fi.Size())
	}
	m, err := backupset.ReadDBMeta(ctx, path)
	if err != nil {
		return backupset.DBMeta{}, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return m, nil
}

// verifyBackupLogs verifies the generations of base in dir: exactly
// low..high are present (nothing else of that base), each verifies as a
// sealed generation (no torn tail is acceptable in a backup), the first
// carries sig and each chains to the one before it.
func verifyBackupLogs(ctx context.Context, dir, base string, sig wal.Signature, low, high uint32) ([]wal.GenInfo, error) {
	lerr := func(gen uint32, cause error, format string, args ...any) error {
		return &LogError{Dir: dir, Gen: gen, Reason: fmt.Sprintf(format, args...), Err: ErrBackupLogs, Cause: cause}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, lerr(0, err, "cannot list the backup log directory")
	}
	var found []uint32
	for _, e := range ents {
		if g, ok := wal.ParseFileName(base, e.Name()); ok {
			found = append(found, g)
		}
	}
	slices.Sort(found)
	for i, g := range found {
		if g < low || g > high {
			return nil, lerr(g, nil, "the directory holds generation %d, outside the registered range %d..%d", g, low, high)
		}
		if i > 0 && g == found[i-1] {
			return nil, lerr(g, nil, "two files hold generation %d", g)
		}
	}
	infos := make([]wal.GenInfo, 0, high-low+1)
	var prev *wal.GenInfo
	for g := low; ; g++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, wal.FileName(base, g))
		if _, err := os.Stat(p); err != nil {
			return nil, lerr(g, err, "generation %d of %d..%d is missing", g, low, high)
		}
		info, err := wal.VerifyGeneration(p, prev)
		if err != nil {
			return nil, lerr(g, err, "does not verify")
		}
		if info.Signature != sig {
			return nil, lerr(g, wal.ErrSignature, "log-set signature %x, the database's is %x", info.Signature[:], sig[:])
		}
		infos = append(infos, info)
		prev = &infos[len(infos)-1]
		if g == high {
			break
		}
	}
	return infos, nil
}

// checkCovers checks that the backup's logs continue the snapshot: the
// first generation starts at or before S+1 and the last ends at or after S.
func checkCovers(dir string, backup []wal.GenInfo, snap uint64) error {
	first, last := backup[0], backup[len(backup)-1]
	if first.BaseLSN > snap+1 || endLSN(last) < snap {
		return &LogError{Dir: dir, Gen: first.Gen, Err: ErrBackupLogs,
			Reason: fmt.Sprintf("the database snapshot is at LSN %d but generations %d..%d hold LSNs %d..%d: they do not continue it",
				snap, first.Gen, last.Gen, first.BaseLSN, endLSN(last))}
	}
	return nil
}

// earliestTime returns the earliest time bound a point-in-time recovery
// from snapshot LSN snap accepts: the append time of record snap when the
// backup's logs in dir hold it, else the creation time of the backup's
// first generation, whose header is first (record snap was appended before
// that generation was created); zero when snap is 0.
func earliestTime(ctx context.Context, dir, base string, sig wal.Signature, first wal.Header, snap uint64) (time.Time, error) {
	if snap == 0 {
		return time.Time{}, nil
	}
	if snap < first.FirstLSN {
		return first.Created, nil
	}
	var at time.Time
	errFound := errors.New("found")
	err := wal.ReadDir(ctx, dir, base, sig, snap, func(r wal.Record) error {
		if r.LSN == snap {
			at = r.Time
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return time.Time{}, &LogError{Dir: dir, Err: ErrBackupLogs, Reason: fmt.Sprintf("read record %d", snap), Cause: err}
	}
	if at.IsZero() {
		return first.Created, nil
	}
	return at, nil
}

// checkUntil refuses a bound before the snapshot.
func checkUntil(u Until, snap uint64, early time.Time) error {
	switch {
	case u.LSN != 0 && u.LSN < snap:
		return &UntilError{Until: u, EarliestLSN: snap, EarliestTime: early}
	case !u.Time.IsZero() && u.Time.Before(early):
		return &UntilError{Until: u, EarliestLSN: snap, EarliestTime: early}
	}
	return nil
}

// scanLive reads the live log directory without changing it.
func scanLive(ctx context.Context, dir, base string) liveLog {
	gens, err := wal.ScanDir(ctx, dir, base, wal.Signature{})
	if err != nil {
		return liveLog{err: err}
	}
	return liveLog{gens: gens}
}

// sameGen reports whether two verified copies of a generation are the same
// file: size, final checksum, creation time, first LSN and signature.
func sameGen(a, b wal.GenInfo) bool {
	return a.Gen == b.Gen && a.Size == b.Size && a.Checksum == b.Checksum && a.Created.Equal(b.Created) &&
		a.BaseLSN == b.BaseLSN && a.Signature == b.Signature
}

// continues reports whether generation g (a header read from a file)
// directly follows p.
func continues(h wal.Header, p wal.GenInfo) bool {
	return h.Gen == p.Gen+1 && h.Signature == p.Signature && h.PrevCreated.Equal(p.Created) &&
		h.PrevChecksum == p.Checksum && h.FirstLSN == endLSN(p)+1
}

// catchUp decides whether the live log continues the backup's chain: the
// same log set, no gap after the backup's last generation, and every
// generation both hold identical. It returns "" when it does, else the
// reason, in words, why the live log cannot be replayed. A live log
// holding nothing after the backup is not a reason: there is simply
// nothing to catch up.
func catchUp(in *inputs, logDir string) (use bool, reason string) {
	l := in.live
	if l.err != nil {
		if errors.Is(l.err, fs.ErrNotExist) {
			return false, "the log directory " + logDir + " holds no generations"
		}
		return false, fmt.Sprintf("the log directory %s does not verify: %v", logDir, l.err)
	}
	if l.gens[0].Signature != in.sig {
		return false, fmt.Sprintf("the log directory %s holds another log set (signature %x, the database's is %x)",
			logDir, l.gens[0].Signature[:], in.sig[:])
	}
	high := in.backup[len(in.backup)-1]
	first, last := l.gens[0], l.gens[len(l.gens)-1]
	if last.Gen <= high.Gen {
		return false, ""
	}
	if first.Gen > high.Gen+1 {
		return false, fmt.Sprintf("the log directory %s starts at generation %d: generations %d..%d between the backup and it are missing",
			logDir, first.Gen, high.Gen+1, first.Gen-1)
	}
	for _, g := range l.gens {
		if i, ok := in.byGen[g.Gen]; ok && !sameGen(g, in.backup[i]) {
			return false, fmt.Sprintf("generation %d in %s differs from the backup's copy: the live log has diverged from the backup", g.Gen, logDir)
		}
	}
	if first.Gen == high.Gen+1 {
		h, err := wal.ReadHeader(first.Path)
		if err != nil || !continues(h, high) {
			return false, fmt.Sprintf("generation %d in %s does not continue the backup's generation %d", first.Gen, logDir, high.Gen)
		}
	}
	return true, ""
}

// hexSig formats a signature for the record.
func hexSig(b []byte) string { return hex.EncodeToString(b) }

// parseSig reads a signature from the record.
func parseSig(s string) ([16]byte, error) {
	var out [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(out) {
		return out, fmt.Errorf("%w: signature %q is not 32 hex digits", ErrRecordCorrupt, s)
	}
	copy(out[:], b)
	return out, nil
}
