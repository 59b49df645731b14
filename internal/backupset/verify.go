package backupset

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// Report is what Verify found.
type Report struct {
	// Dir is the set directory.
	Dir string
	// HasManifest is false for a set Derive described from its files.
	HasManifest bool
	// Files and Bytes count the files of the set (those the manifest lists,
	// or those Derive found) and their sizes.
	Files int
	Bytes int64
	// Backups is the number of backups in the chain (1 for a derived set).
	Backups int
	// FirstGen and LastGen are the log generations the set holds.
	FirstGen, LastGen uint32
	// SnapshotLSN is the full backup's snapshot LSN; LastLSN the last LSN
	// the logs hold. A restore can replay through LastLSN.
	SnapshotLSN, LastLSN uint64
	// Problems lists every problem found, in the order found; each matches
	// one of the package's sentinels.
	Problems []error
	// FailedFiles lists the set files (relative, slash-separated, in the
	// order of the manifest or of Derive) that failed their own check:
	// missing, of another size or SHA-256, or unreadable. Their problems
	// are in Problems. No later check read them: a check whose input is
	// among them was not done for that file.
	FailedFiles []string
}

// OK reports whether Verify found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks the whole set, without stopping at the first problem.
//
// For a set with a manifest it checks the set against its manifest and
// itself:
//   - the manifest is unchanged since Open (ErrManifestMismatch);
//   - the chain of backups is continuous: each logs-only backup starts at
//     the generation and LSN after the previous backup's last, and the
//     full backup's logs continue its snapshot (ErrChainGap);
//   - every listed file is present and regular (ErrMissingFile), of the
//     listed size (ErrSizeMismatch; ErrTruncated when shorter) and SHA-256
//     (ErrDigestMismatch);
//   - the log generations are exactly those of the backups' ranges, without
//     a gap (ErrChainGap), each carries the set's log-set signature
//     (ErrForeignLog), holds the generation its name says (ErrLogOrder)
//     and verifies with its chain to the one before (ErrLogCorrupt), and
//     each backup's LSN range is what its logs hold (ErrManifestMismatch);
//     a listed generation whose file is missing breaks the chain there
//     (ErrChainGap, besides the file's ErrMissingFile).
//
// For a derived set (Derive) it checks what the files show:
//   - every file Derive found is still present with the size it had
//     (ErrMissingFile, ErrSizeMismatch; a new file is ErrExtraFile), and
//     the database and the last log still say what they said then
//     (ErrForeignDatabase, ErrManifestMismatch);
//   - SQLite's quick_check finds no damage in the database snapshot
//     (ErrDatabase);
//   - the log generations have no gap (ErrChainGap, and ErrMissingFile for
//     each missing generation when fewer than 16 are missing), each holds
//     the generation its name says (ErrLogOrder), carries the database's
//     log-set signature (ErrForeignLog; when every log agrees with the
//     others but not with the database, the database is the stranger:
//     ErrForeignDatabase) and verifies with its chain to the one before
//     (ErrLogCorrupt); and they continue the snapshot: the first starts at
//     or before S+1 and the last ends at or after S (ErrChainGap).
//
// For both:
//   - no other file is present but manifest.json, verified.json and
//     verified.json.tmp (ErrExtraFile; ErrIncomplete for *.part files);
//   - the restore map is present (ErrMissingFile), parses and its
//     database entry names the set's database file (ErrBadRestoreMap);
//   - the database's meta row carries the set's signatures
//     (ErrForeignDatabase, ErrDatabase when unreadable) and snapshot LSN
//     (ErrManifestMismatch), and the file is as long as its SQLite header
//     says (ErrTruncated);
//   - Config/certsrv.json, when present, parses and names the set's CA and
//     log base (ErrConfig).
//
// A file that fails its presence, size or digest check is not examined
// further; the report lists it in FailedFiles. The report is returned in
// every case; the error is a *VerifyError holding the problems when there
// are any, or the context's error when ctx ended.
func (s *Set) Verify(ctx context.Context) (*Report, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

// VerifyOptions adjust Set.VerifyWith.
type VerifyOptions struct {
	// Hashed, when not nil, is called with each number of bytes the digest
	// checks read, from several goroutines at once: a progress display's
	// counter.
	Hashed func(n int64)
}

// VerifyWith is Verify with options.
func (s *Set) VerifyWith(ctx context.Context, opts VerifyOptions) (*Report, error) {
	m := s.m
	rep := &Report{Dir: s.dir, Backups: len(m.Backups), HasManifest: s.HasManifest()}
	problem := func(err error) { rep.Problems = append(rep.Problems, err) }
	done := func() (*Report, error) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if len(rep.Problems) > 0 {
			return rep, &VerifyError{Dir: s.dir, Problems: rep.Problems}
		}
		return rep, nil
	}

	if s.HasManifest() {
		raw, err := readManifestFile(filepath.Join(s.dir, ManifestFile))
		switch {
		case err != nil:
			problem(fmt.Errorf("%w: %s: %v", ErrManifestMismatch, ManifestFile, err))
			return done()
		case !bytes.Equal(raw, s.raw):
			if _, perr := parseManifest(raw); perr != nil {
				problem(perr)
			}
			problem(fmt.Errorf("%w: %s changed since the set was opened", ErrManifestMismatch, ManifestFile))
			return done()
		}
		verifyBackupChain(m, problem)
	}

	// bad holds the error of each file that failed its own check.
	bad := map[string]error{}
	kinds := map[Kind]string{}
	errs := s.verifyFiles(ctx, m.Files, opts.Hashed)
	if ctx.Err() != nil {
		return done()
	}
	for i, f := range m.Files {
		rep.Files++
		rep.Bytes += f.Size
		kinds[f.Kind] = f.Path
		if errs[i] != nil {
			problem(errs[i])
			bad[f.Path] = errs[i]
			rep.FailedFiles = append(rep.FailedFiles, f.Path)
		}
	}
	s.findExtraFiles(problem)

	db := s.Database()
	rmRel := DatabaseDir + "/" + RestoreMapFile
	switch {
	case kinds[KindRestoreMap] == "":
		problem(&FileError{Path: rmRel, Err: fmt.Errorf("%w: the set holds no restore map", ErrMissingFile)})
	case bad[rmRel] == nil:
		s.verifyRestoreMap(db.Path, problem)
	}
	full := m.Backups[0]
	rep.SnapshotLSN = full.SnapshotLSN
	if bad[db.Path] == nil {
		s.verifyDatabase(ctx, db, full, problem)
	}
	if cfg := kinds[KindConfig]; cfg != "" && bad[cfg] == nil {
		s.verifyConfig(cfg, problem)
	}
	if s.HasManifest() {
		s.verifyLogs(ctx, bad, rep, problem)
	} else {
		s.verifyDerivedLogs(ctx, bad, rep, problem)
	}
	return done()
}

// verifyBackupChain checks the manifest's chain of backups by itself.
func verifyBackupChain(m *Manifest, problem func(error)) {
	if err := checkSnapshotCovered(m.Backups[0]); err != nil {
		problem(err)
	}
	for i := 1; i < len(m.Backups); i++ {
		prev, b := m.Backups[i-1], m.Backups[i]
		if b.FirstGen != prev.LastGen+1 {
			problem(chainErr(ErrChainGap, i, b.FirstGen, "starts at generation %d but backup %d ended at generation %d",
				b.FirstGen, i, prev.LastGen))
		}
		if b.FirstLSN != prev.LastLSN+1 {
			problem(chainErr(ErrChainGap, i, 0, "starts at LSN %d but backup %d ended at LSN %d", b.FirstLSN, i, prev.LastLSN))
		}
	}
}

// verifyFiles checks every listed file: its presence and size
// (checkFile), then, for a file that passed, its digests. The digests are
// checked several at a time, largest file first: one SHA-256 is one
// sequential computation, so a file recorded with chunk digests is hashed
// chunk by chunk on all cores, and a set's logs are hashed on other cores
// while its database is. The i-th error is files[i]'s.
// hashed, when not nil, counts the bytes read.
func (s *Set) verifyFiles(ctx context.Context, files []FileEntry, hashed func(int64)) []error {
	errs := make([]error, len(files))
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return files[order[a]].Size > files[order[b]].Size })
	var jobs []*hashJob
	var units [][]*hashJob // what one worker hashes at once: a job, or two chunks of one file
	paths := make([]string, len(files))
	for _, i := range order {
		f := files[i]
		p, err := s.checkFile(f)
		if err != nil {
			errs[i] = err
			continue
		}
		paths[i] = p
		switch {
		case len(f.ChunkSHA256) > 0:
			c := s.m.ChunkSize
			for k := range f.ChunkSHA256 {
				off := int64(k) * c
				j := &hashJob{file: i, chunk: k, off: off, n: min(c, f.Size-off)}
				jobs = append(jobs, j)
				// Chunks 2m and 2m+1 of the same length are hashed
				// together (sha256x2): one core does about twice the
				// bytes.
				if last := len(units) - 1; k%2 == 1 && units[last][0].n == j.n {
					units[last] = append(units[last], j)
				} else {
					units = append(units, []*hashJob{j})
				}
			}
		case f.SHA256 != "":
			j := &hashJob{file: i, chunk: -1, n: -1}
			jobs = append(jobs, j)
			units = append(units, []*hashJob{j})
		}
		// A derived set records no digest.
	}
	next := make(chan []*hashJob)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), maxHashers, len(units)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				offs := make([]int64, len(u))
				for k, j := range u {
					offs[k] = j.off
				}
				read, sums, err := hashRanges(ctx, paths[u[0].file], offs, u[0].n, hashed)
				for k, j := range u {
					j.read, j.sum, j.err = read[k], sums[k], err
				}
			}
		}()
	}
	for _, u := range units {
		if ctx.Err() != nil {
			break
		}
		next <- u
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return errs
	}
	// The first failing job of each file gives its error, with the count
	// of the file's chunks whose digest differs.
	differ := map[int]int{}
	for _, j := range jobs {
		if j.chunkDiffers(files[j.file]) {
			differ[j.file]++
		}
	}
	for _, j := range jobs {
		if errs[j.file] == nil {
			errs[j.file] = j.problem(files[j.file], differ[j.file])
		}
	}
	return errs
}

// hashJob hashes n bytes of files[file] from off (the whole file when n is
// -1); chunk is the index in the file's ChunkSHA256, -1 for its SHA256.
// read, sum and err are the outcome.
type hashJob struct {
	file, chunk int
	off, n      int64
	read        int64
	sum         string
	err         error
}

// chunkDiffers reports whether the job read its whole chunk of f and found
// another digest.
func (j *hashJob) chunkDiffers(f FileEntry) bool {
	return j.chunk >= 0 && j.err == nil && j.read == j.n && j.sum != f.ChunkSHA256[j.chunk]
}

// problem returns what the job found wrong with f, or nil; differ is the
// number of f's chunks whose digest differs.
func (j *hashJob) problem(f FileEntry, differ int) error {
	switch {
	case j.err != nil:
		return fmt.Errorf("read %s: %w", f.Path, j.err)
	case j.chunk < 0 && j.read != f.Size, j.chunk >= 0 && j.read != j.n:
		return &FileError{Path: f.Path, Want: strconv.FormatInt(f.Size, 10) + " bytes", Got: strconv.FormatInt(j.off+j.read, 10) + " bytes read", Err: ErrSizeMismatch}
	case j.chunk < 0 && j.sum != f.SHA256:
		return &FileError{Path: f.Path, Want: "SHA-256 " + f.SHA256, Got: j.sum, Err: ErrDigestMismatch}
	case j.chunkDiffers(f):
		var err error = ErrDigestMismatch
		if differ > 1 {
			err = fmt.Errorf("%w in %d of its %d chunks, the first", ErrDigestMismatch, differ, len(f.ChunkSHA256))
		}
		return &FileError{Path: f.Path, Err: err, Got: j.sum,
			Want: fmt.Sprintf("SHA-256 %s of bytes %d to %d (chunk %d of %d)", f.ChunkSHA256[j.chunk], j.off, j.off+j.n-1, j.chunk+1, len(f.ChunkSHA256))}
	}
	return nil
}

// maxHashers bounds verifyFiles' concurrency: beyond a few readers a
// backup medium only seeks more.
const maxHashers = 4

// checkFile checks one listed file's presence and size and returns its
// path.
func (s *Set) checkFile(f FileEntry) (string, error) {
	p, err := localPath(s.dir, f.Path)
	if err != nil {
		return "", &FileError{Path: f.Path, Err: err}
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", &FileError{Path: f.Path, Err: ErrMissingFile}
	}
	if fi.Size() != f.Size {
		if !s.HasManifest() {
			return "", &FileError{Path: f.Path, Want: strconv.FormatInt(f.Size, 10) + " bytes (its size when the set was read)",
				Got: strconv.FormatInt(fi.Size(), 10) + " bytes", Err: ErrSizeMismatch}
		}
		e := &FileError{Path: f.Path, Want: strconv.FormatInt(f.Size, 10) + " bytes", Got: strconv.FormatInt(fi.Size(), 10) + " bytes", Err: ErrSizeMismatch}
		if fi.Size() < f.Size {
			e.Err = ErrTruncated
		}
		return "", e
	}
	return p, nil
}

// extra returns the problem of rel, a file or directory ("Dir/") that is
// not a set file: the one Derive found for it, else one matching sentinel.
func (s *Set) extra(rel string, sentinel error) error {
	if s.d != nil {
		if p, ok := s.d.excluded[rel]; ok {
			return p
		}
		if sentinel == ErrExtraFile {
			return &FileError{Path: rel, Err: fmt.Errorf("%w: it appeared after the set was read", ErrExtraFile)}
		}
	}
	return &FileError{Path: rel, Err: sentinel}
}

// findExtraFiles reports every file in the set directory that is not a file
// of the set (not listed in the manifest, or not found by Derive).
func (s *Set) findExtraFiles(problem func(error)) {
	listed := make(map[string]bool, len(s.m.Files))
	for _, f := range s.m.Files {
		listed[f.Path] = true
	}
	root := filepath.Clean(s.dir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			problem(fmt.Errorf("%w: %v", ErrMissingFile, err))
			return nil
		}
		if p == root {
			return nil
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		top := !strings.Contains(rel, "/")
		switch {
		case d.IsDir() && top && (rel == DatabaseDir || rel == DynamicDir || rel == ConfigDir):
			return nil
		case d.IsDir():
			problem(s.extra(rel+"/", ErrExtraFile))
			return filepath.SkipDir
		case top && (rel == ManifestFile || rel == VerifiedFile || rel == VerifiedTmpFile):
			return nil
		case listed[rel]:
			return nil
		case strings.HasSuffix(rel, PartSuffix):
			problem(s.extra(rel, ErrIncomplete))
		default:
			problem(s.extra(rel, ErrExtraFile))
		}
		return nil
	})
	if err != nil {
		problem(fmt.Errorf("%w: walk %s: %v", ErrMissingFile, s.dir, err))
	}
}

// verifyDatabase checks that the snapshot is as long as its SQLite header
// says, compares its meta row with the set's description and, for a
// derived set (no digest vouches for the file), runs SQLite's quick_check
// on it.
func (s *Set) verifyDatabase(ctx context.Context, db FileEntry, full Backup, problem func(error)) {
	p, err := s.Path(db.Path)
	if err != nil {
		problem(err)
		return
	}
	if err := checkDBLength(p, db.Path); err != nil {
		problem(err)
		return
	}
	meta, err := ReadDBMeta(ctx, p)
	if err != nil {
		problem(&FileError{Path: db.Path, Err: err})
		return
	}
	whose := "the manifest's"
	if !s.HasManifest() {
		whose = "when the set was read it was"
	}
	if got := hex.EncodeToString(meta.DBSignature[:]); got != s.m.CA.DBSignature {
		problem(chainErr(ErrForeignDatabase, 0, 0, "database signature %s, %s %s", got, whose, s.m.CA.DBSignature))
	}
	if got := hex.EncodeToString(meta.LogSignature[:]); got != s.m.CA.LogSignature {
		problem(chainErr(ErrForeignDatabase, 0, 0, "the database names log set %s, %s %s", got, whose, s.m.CA.LogSignature))
	}
	if meta.AppliedLSN != full.SnapshotLSN {
		want := fmt.Sprintf("the manifest records snapshot LSN %d", full.SnapshotLSN)
		if !s.HasManifest() {
			want = fmt.Sprintf("when the set was read it reflected LSN %d", full.SnapshotLSN)
		}
		problem(chainErr(ErrManifestMismatch, 0, 0, "the database reflects LSN %d, %s", meta.AppliedLSN, want))
	}
	if !s.HasManifest() {
		if err := quickCheck(ctx, p); err != nil && ctx.Err() == nil {
			problem(&FileError{Path: db.Path, Err: err})
		}
	}
}

// verifyRestoreMap checks that the restore map parses and that its
// database entry names the set's database file dbRel.
func (s *Set) verifyRestoreMap(dbRel string, problem func(error)) {
	rel := DatabaseDir + "/" + RestoreMapFile
	rm, err := s.RestoreMap()
	switch {
	case err != nil:
		problem(&FileError{Path: rel, Err: err})
	case path.Base(rm.Database()) != path.Base(dbRel):
		problem(&FileError{Path: rel, Err: fmt.Errorf("%w: it names the database file %q, the set holds %s",
			ErrBadRestoreMap, rm.Database(), dbRel)})
	}
}

// verifyConfig checks that the set's configuration file rel parses and
// names the set's CA and log base.
func (s *Set) verifyConfig(rel string, problem func(error)) {
	p, err := s.Path(rel)
	if err != nil {
		problem(err)
		return
	}
	b, err := readSmall(p)
	if err != nil {
		problem(&FileError{Path: rel, Err: fmt.Errorf("%w: %w", ErrConfig, err)})
		return
	}
	cfg, err := datadir.ParseConfig(b)
	switch {
	case err != nil:
		problem(&FileError{Path: rel, Err: fmt.Errorf("%w: %w", ErrConfig, err)})
	case cfg.CAName != s.m.CA.Name:
		problem(&FileError{Path: rel, Err: fmt.Errorf("%w: it names CA %q, the set's is %q", ErrConfig, cfg.CAName, s.m.CA.Name)})
	case cfg.LogBase != "" && cfg.LogBase != s.m.CA.LogBase:
		problem(&FileError{Path: rel, Err: fmt.Errorf("%w: it names log base %q, the set's logs have base %q",
			ErrConfig, cfg.LogBase, s.m.CA.LogBase)})
	}
}

// verifyLogs checks the log generations against the backups' ranges and
// verifies them as one chain. bad holds the files that failed their own
// check: they are not read, and a missing one is a gap in the chain.
func (s *Set) verifyLogs(ctx context.Context, bad map[string]error, rep *Report, problem func(error)) {
	m := s.m
	base := m.CA.LogBase
	owner := map[uint32]int{}
	skip := map[uint32]bool{}
	for _, f := range m.Files {
		if f.Kind != KindLog {
			continue
		}
		gen, _ := wal.ParseFileName(base, path.Base(f.Path))
		owner[gen] = f.Backup
		b := m.Backups[f.Backup]
		if err := bad[f.Path]; err != nil {
			skip[gen] = true
			if errors.Is(err, ErrMissingFile) {
				problem(missingGenGap(f.Backup, gen))
			}
		}
		if gen < b.FirstGen || gen > b.LastGen {
			problem(chainErr(ErrManifestMismatch, f.Backup, gen, "outside the backup's generations %d..%d", b.FirstGen, b.LastGen))
		}
	}
	for i, b := range m.Backups {
		// Walk the range only as far as the first missing generation: a
		// forged range may be huge.
		for g := b.FirstGen; ; g++ {
			if o, ok := owner[g]; !ok || o != i {
				problem(chainErr(ErrChainGap, i, g, "the backup covers generations %d..%d but the set has no file for generation %d from it",
					b.FirstGen, b.LastGen, g))
				break
			}
			if g == b.LastGen {
				break
			}
		}
	}
	gens := logGens(m.Files, base)
	rep.FirstGen, rep.LastGen = gens[0], gens[len(gens)-1]
	rep.LastLSN = m.LastBackup().LastLSN
	var sig wal.Signature
	if b, err := hex.DecodeString(m.CA.LogSignature); err == nil {
		copy(sig[:], b)
	}
	infos, err := logChain(ctx, s.dir, base, sig, gens, nil, skip, problem)
	if err != nil {
		return
	}
	for i, b := range m.Backups {
		if first, ok := infos[b.FirstGen]; ok && first.BaseLSN != b.FirstLSN {
			problem(chainErr(ErrManifestMismatch, i, b.FirstGen, "the manifest says the backup starts at LSN %d, the log at %d",
				b.FirstLSN, first.BaseLSN))
		}
		if last, ok := infos[b.LastGen]; ok && endLSN(last) != b.LastLSN {
			problem(chainErr(ErrManifestMismatch, i, b.LastGen, "the manifest says the backup ends at LSN %d, the log at %d",
				b.LastLSN, endLSN(last)))
		}
	}
}

// missingGenGap is the chain problem of log generation gen, whose file is
// missing from the set: the records it held cannot be replayed, so the
// chain of generations breaks there. backup is the index of the backup
// the file belongs to (-1 when unknown).
func missingGenGap(backup int, gen uint32) error {
	return chainErr(ErrChainGap, backup, gen, "the generation's file is missing: the records it held cannot be replayed and the chain breaks there")
}
