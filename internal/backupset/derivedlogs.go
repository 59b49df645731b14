package backupset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/certsrv/certsrv/internal/wal"
)

// maxMissingListed bounds the missing generations of one gap a derived
// set's verification lists one by one.
const maxMissingListed = 16

// verifyDerivedLogs checks the log generations of a derived set as one
// chain of the database's log set that continues the snapshot (see
// Verify). It sets rep's generation range and last LSN.
func (s *Set) verifyDerivedLogs(ctx context.Context, bad map[string]error, rep *Report, problem func(error)) {
	m := s.m
	base := m.CA.LogBase
	gens := logGens(m.Files, base)
	full := m.Backups[0]
	rep.FirstGen, rep.LastGen, rep.LastLSN = gens[0], gens[len(gens)-1], full.LastLSN
	var sig wal.Signature
	if b, err := hex.DecodeString(m.CA.LogSignature); err == nil {
		copy(sig[:], b)
	}
	if other, ok := s.commonForeignSignature(gens, sig); ok {
		// Every log agrees with the others and not with the database: the
		// database is the stranger.
		problem(chainErr(ErrForeignDatabase, 0, 0, "the database names log set %x, every log generation in the set belongs to log set %x",
			sig[:], other[:]))
		return
	}
	skip := map[uint32]bool{}
	for i, g := range gens {
		if err := bad[DatabaseDir+"/"+wal.FileName(base, g)]; err != nil {
			skip[g] = true
			if errors.Is(err, ErrMissingFile) {
				// Removed after Derive read the set.
				problem(missingGenGap(-1, g))
			}
		}
		if i == 0 || g == gens[i-1]+1 || g-gens[i-1]-1 > maxMissingListed {
			continue
		}
		for miss := gens[i-1] + 1; miss < g; miss++ {
			rel := DatabaseDir + "/" + wal.FileName(base, miss)
			problem(&FileError{Path: rel, Err: fmt.Errorf("%w: generation %d lies between %s and %s",
				ErrMissingFile, miss, wal.FileName(base, gens[i-1]), wal.FileName(base, g))})
		}
	}
	infos, err := logChain(ctx, s.dir, base, sig, gens, nil, skip, problem)
	if err != nil || len(infos) != len(gens) || int(gens[len(gens)-1]-gens[0])+1 != len(gens) {
		return
	}
	first, last := infos[gens[0]], infos[gens[len(gens)-1]]
	end := endLSN(last)
	switch {
	case first.BaseLSN > full.SnapshotLSN+1:
		problem(chainErr(ErrChainGap, 0, first.Gen,
			"the database reflects LSN %d but the first log generation starts at LSN %d: records %d..%d are missing",
			full.SnapshotLSN, first.BaseLSN, full.SnapshotLSN+1, first.BaseLSN-1))
	case end < full.SnapshotLSN:
		problem(chainErr(ErrChainGap, 0, last.Gen,
			"the logs end at LSN %d, before the LSN %d the database reflects: they are older than the snapshot", end, full.SnapshotLSN))
	case end != full.LastLSN:
		problem(chainErr(ErrManifestMismatch, 0, last.Gen, "the logs end at LSN %d; when the set was read they ended at LSN %d",
			end, full.LastLSN))
	}
	rep.LastLSN = end
}

// commonForeignSignature reports whether two or more log generations are
// present and every one whose header reads carries one and the same
// log-set signature other than sig, and returns it. (With a single
// generation the database and the log cannot be told apart as the
// stranger; the log is then reported.)
func (s *Set) commonForeignSignature(gens []uint32, sig wal.Signature) (wal.Signature, bool) {
	var common wal.Signature
	n := 0
	for _, g := range gens {
		h, err := wal.ReadHeader(filepath.Join(s.dir, DatabaseDir, wal.FileName(s.m.CA.LogBase, g)))
		if err != nil {
			continue
		}
		if n > 0 && h.Signature != common {
			return wal.Signature{}, false
		}
		common = h.Signature
		n++
	}
	return common, n > 1 && common != sig
}
