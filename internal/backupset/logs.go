package backupset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/certsrv/certsrv/internal/wal"
)

// endLSN returns the LSN of the last record of g, or the LSN before g's
// first when g holds no record.
func endLSN(g wal.GenInfo) uint64 {
	if g.LastLSN == 0 {
		return g.BaseLSN - 1
	}
	return g.LastLSN
}

// logChain verifies the log generations gens (ascending, each a file
// DataBase/<base><gen>.log under root) as one chain: each header's
// signature against sig (ErrForeignLog), the generation it names against
// the file name (ErrLogOrder), the numbering without gaps (ErrChainGap),
// and each generation's header, records and chain to the generation before
// it (ErrLogCorrupt). prev, when not nil, is the
// generation before gens[0], already verified. skip lists generations whose
// files are already known to be damaged; they are not read, and the chain
// restarts after them. Every problem is passed to problem; the result holds
// the GenInfo of every generation that verified.
func logChain(ctx context.Context, root, base string, sig wal.Signature, gens []uint32, prev *wal.GenInfo, skip map[uint32]bool, problem func(error)) (map[uint32]wal.GenInfo, error) {
	out := make(map[uint32]wal.GenInfo, len(gens))
	for i, gen := range gens {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if i > 0 && gen != gens[i-1]+1 {
			problem(chainErr(ErrChainGap, -1, gen, "log generations %d..%d are missing", gens[i-1]+1, gen-1))
			prev = nil
		}
		if prev != nil && prev.Gen+1 != gen {
			problem(chainErr(ErrChainGap, -1, gen, "the generation before it is %d", prev.Gen))
			prev = nil
		}
		if skip[gen] {
			prev = nil
			continue
		}
		p := filepath.Join(root, DatabaseDir, wal.FileName(base, gen))
		h, err := wal.ReadHeader(p)
		if err != nil {
			problem(&ChainError{Backup: -1, Gen: gen, Err: ErrLogCorrupt, Cause: err})
			prev = nil
			continue
		}
		if h.Signature != sig {
			problem(chainErr(ErrForeignLog, -1, gen, "log-set signature %s, the set's is %s",
				hex.EncodeToString(h.Signature[:]), hex.EncodeToString(sig[:])))
			prev = nil
			continue
		}
		if h.Gen != gen {
			problem(chainErr(ErrLogOrder, -1, gen, "the file holds generation %d (%s)", h.Gen, wal.FileName(base, h.Gen)))
			prev = nil
			continue
		}
		info, err := wal.VerifyGeneration(p, prev)
		if err != nil {
			problem(&ChainError{Backup: -1, Gen: gen, Err: ErrLogCorrupt, Cause: err})
			prev = nil
			continue
		}
		out[gen] = info
		prev = &info
	}
	return out, nil
}

// collect gathers problems and returns them joined.
type collect []error

func (c *collect) add(err error) { *c = append(*c, err) }

func (c collect) err() error { return errors.Join(c...) }

// logGens returns the generations of the log entries among files, ascending.
func logGens(files []FileEntry, base string) []uint32 {
	var gens []uint32
	for _, f := range files {
		if f.Kind != KindLog {
			continue
		}
		if g, ok := wal.ParseFileName(base, filepath.Base(f.Path)); ok {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens
}

// decodeLogHeader decodes the first wal.HeaderSize bytes of a log
// generation. internal/wal reads headers from files only, so the bytes go
// through a temporary file outside the set.
func decodeLogHeader(b []byte) (wal.Header, error) {
	if len(b) < wal.HeaderSize {
		return wal.Header{}, fmt.Errorf("log header: %d of %d bytes", len(b), wal.HeaderSize)
	}
	f, err := os.CreateTemp("", "certsrv-log-header-*")
	if err != nil {
		return wal.Header{}, fmt.Errorf("log header: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(b[:wal.HeaderSize])
	cerr := f.Close()
	if werr != nil || cerr != nil {
		return wal.Header{}, fmt.Errorf("log header: %w", errors.Join(werr, cerr))
	}
	return wal.ReadHeader(f.Name())
}
