package verify

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/wal"
)

// setInfo describes a set: read from its manifest, or derived from its
// files when it has none (both by internal/backupset). The trial restore
// and the CA checks work from it; the file checks prove it describes the
// files.
type setInfo struct {
	dir              string
	set              *backupset.Set
	hasManifest      bool
	manifestChecksum string
	manifestFormat   int
	caName           string
	certSHA256       string // hex SHA-256 of the CA certificate; "" when a set without manifest holds none
	dbRel            string // DataBase/<CA>.db
	base             string // log file name base
	logNames         map[uint32]string
	logSig           wal.Signature
	dbSig            [16]byte
	snapshotLSN      uint64
	lastLSN          uint64 // last LSN the logs hold
	firstGen         uint32
	lastGen          uint32
	backups          int
	dynamic          []string // Dynamic/<name> paths
	config           string   // Config/certsrv.json, or "" when absent
	files            int
	bytes            int64
	// progress is where the run reports how far it is (nil: nowhere).
	progress *Progress
}

// local returns the local path of a set file given by its relative path.
func (s *setInfo) local(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

// logRel returns the relative path of generation gen's file.
func (s *setInfo) logRel(gen uint32) string {
	if n, ok := s.logNames[gen]; ok {
		return backupset.DatabaseDir + "/" + n
	}
	return backupset.DatabaseDir + "/" + wal.FileName(s.base, gen)
}

// restoreMapRel is the restore map's path in a set.
const restoreMapRel = backupset.DatabaseDir + "/" + backupset.RestoreMapFile

// recordTmp is the temporary file WriteRecord replaces verified.json
// through; a crash can leave it behind, and it is not a set file.
const recordTmp = backupset.VerifiedTmpFile

// fromSet describes a set from its manifest (read by backupset.Open, its
// checksum checked) or from the description backupset.Derive made.
func fromSet(dir string, set *backupset.Set) (*setInfo, error) {
	m := set.Manifest()
	info := &setInfo{
		dir:              dir,
		set:              set,
		hasManifest:      set.HasManifest(),
		manifestChecksum: m.Checksum,
		manifestFormat:   m.Format,
		caName:           m.CA.Name,
		certSHA256:       m.CA.CertSHA256,
		dbRel:            set.Database().Path,
		base:             m.CA.LogBase,
		logNames:         map[uint32]string{},
		snapshotLSN:      m.Backups[0].SnapshotLSN,
		lastLSN:          m.LastBackup().LastLSN,
		firstGen:         m.Backups[0].FirstGen,
		lastGen:          m.LastBackup().LastGen,
		backups:          len(m.Backups),
	}
	for _, pair := range []struct {
		dst []byte
		hex string
	}{{info.logSig[:], m.CA.LogSignature}, {info.dbSig[:], m.CA.DBSignature}} {
		b, err := hex.DecodeString(pair.hex)
		if err != nil || len(b) != len(pair.dst) {
			return nil, fmt.Errorf("%w: signature %q", backupset.ErrManifestFormat, pair.hex)
		}
		copy(pair.dst, b)
	}
	for _, f := range m.Files {
		info.files++
		info.bytes += f.Size
		switch f.Kind {
		case backupset.KindDynamic:
			info.dynamic = append(info.dynamic, f.Path)
		case backupset.KindConfig:
			info.config = f.Path
		case backupset.KindLog:
			if g, ok := wal.ParseFileName(info.base, path.Base(f.Path)); ok {
				info.logNames[g] = path.Base(f.Path)
			}
		}
	}
	return info, nil
}

// layerChecks are the checks of the set's files, before the trial restore.
var layerChecks = []string{CheckManifest, CheckFiles, CheckRestoreMap, CheckDatabase, CheckLogs, CheckConfig}

// verifySet checks the set with internal/backupset (against its manifest,
// or from its files when it has none), files each problem under the check
// it belongs to, explains replaced database and log files further, and
// records what each check covered. A check is passed only when it read
// every file it needs: one whose file failed its file check (missing, of
// another size or digest, unreadable) is skipped, naming the file, unless
// it found problems of its own (a missing log generation is a gap in the
// chain).
func verifySet(ctx context.Context, info *setInfo, cs *checks) error {
	info.progress.expectHash(info.set.Manifest().DigestBytes())
	rep, err := info.set.VerifyWith(ctx, backupset.VerifyOptions{Hashed: info.progress.hashedBytes})
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var ve *backupset.VerifyError
	if err != nil && !errors.As(err, &ve) {
		cs.add(&Problem{Check: CheckFiles, Err: err})
	}
	for _, perr := range rep.Problems {
		check, p := classify(perr, info)
		cs.add(&Problem{Check: check, Path: p, Err: perr})
		var fe *backupset.FileError
		if info.hasManifest && errors.As(perr, &fe) &&
			(errors.Is(perr, backupset.ErrSizeMismatch) || errors.Is(perr, backupset.ErrDigestMismatch)) {
			if x := explainReplaced(ctx, info, fe.Path); x != nil {
				cs.add(x)
			}
		}
	}
	failed := map[string]bool{}
	var failedLogs []string
	for _, rel := range rep.FailedFiles {
		failed[rel] = true
		if isLogRel(info, rel) {
			failedLogs = append(failedLogs, rel)
		}
	}
	// passUnless passes check name with detail when none of the files it
	// read failed its file check, and skips it naming them otherwise.
	passUnless := func(name, detail string, inputs []string, rest string) {
		if len(inputs) == 0 {
			cs.pass(name, detail)
			return
		}
		cs.skip(name, "not checked: "+notCheckedWords(inputs)+rest)
	}
	only := func(rel string) []string {
		if failed[rel] {
			return []string{rel}
		}
		return nil
	}
	nLogs := int(info.lastGen - info.firstGen + 1)
	logsRest := ""
	if len(failedLogs) > 0 && len(failedLogs) < nLogs {
		logsRest = "; the other generations showed no problem"
	}
	if info.hasManifest {
		cs.pass(CheckManifest, fmt.Sprintf("format %d, checksum %s…, %s", info.manifestFormat, info.manifestChecksum[:12], chainWords(info.backups)))
		cs.pass(CheckFiles, fmt.Sprintf("%s, %s: sizes and SHA-256 digests match the manifest, nothing missing or extra", countOf(rep.Files, "file", "files"), byteWords(rep.Bytes)))
		passUnless(CheckDatabase, fmt.Sprintf("%s reflects LSN %d and carries the set's signatures", info.dbRel, info.snapshotLSN),
			only(info.dbRel), "")
		passUnless(CheckLogs, fmt.Sprintf("%d generation%s %d..%d of log set %x, chained and continuous through LSN %d",
			nLogs, plural(nLogs), info.firstGen, info.lastGen, info.logSig[:4], info.lastLSN), failedLogs, logsRest)
	} else {
		cs.pass(CheckManifest, "absent: derived from the files")
		cs.pass(CheckFiles, fmt.Sprintf("%s, %s, all of the set layout (no digests to check without a manifest)", countOf(rep.Files, "file", "files"), byteWords(rep.Bytes)))
		passUnless(CheckDatabase, fmt.Sprintf("%s reflects LSN %d, passes SQLite's quick_check; database signature %x, log set %x",
			info.dbRel, info.snapshotLSN, info.dbSig[:4], info.logSig[:4]), only(info.dbRel), "")
		span := fmt.Sprintf("from LSN %d through %d", info.snapshotLSN+1, info.lastLSN)
		if info.lastLSN == info.snapshotLSN {
			span = fmt.Sprintf("through the snapshot's LSN %d (no record after it)", info.snapshotLSN)
		}
		passUnless(CheckLogs, fmt.Sprintf("%d generation%s %d..%d of the database's log set, chained and continuous %s",
			nLogs, plural(nLogs), info.firstGen, info.lastGen, span), failedLogs, logsRest)
	}
	passUnless(CheckRestoreMap, restoreMapRel+" parses, its checksum matches and it names "+path.Base(info.dbRel), only(restoreMapRel), "")
	if info.config == "" {
		cs.pass(CheckConfig, "the set holds no "+backupset.ConfigDir+"/"+backupset.ConfigFile+
			": a restore onto a new host writes the default configuration for CA "+strconv.Quote(info.caName))
	} else {
		passUnless(CheckConfig, fmt.Sprintf("%s names CA %q and log base %q", info.config, info.caName, info.base), only(info.config), "")
	}
	return nil
}

// isLogRel reports whether rel is the path of one of the set's log
// generations.
func isLogRel(info *setInfo, rel string) bool {
	dir, name := path.Split(rel)
	if strings.TrimSuffix(dir, "/") != backupset.DatabaseDir {
		return false
	}
	_, ok := wal.ParseFileName(info.base, name)
	return ok
}

// notCheckedWords names the files a check could not read because they
// failed their file check.
func notCheckedWords(rels []string) string {
	const shown = 3
	if len(rels) == 1 {
		return rels[0] + " failed its file check"
	}
	names := strings.Join(rels[:min(len(rels), shown)], ", ")
	if len(rels) > shown {
		names += fmt.Sprintf(" and %d more", len(rels)-shown)
	}
	return names + " failed their file check"
}

// classify says which check a problem internal/backupset reported belongs
// to, and which file of the set it concerns. info is nil when the set
// could not be described.
func classify(err error, info *setInfo) (check, rel string) {
	var fe *backupset.FileError
	var ce *backupset.ChainError
	isFile := errors.As(err, &fe)
	if isFile {
		rel = fe.Path
	}
	dbRel := func() string {
		if rel == "" && info != nil {
			return info.dbRel
		}
		return rel
	}
	switch {
	case errors.Is(err, backupset.ErrNotASet):
		return CheckFiles, ""
	case errors.Is(err, backupset.ErrBadRestoreMap), isFile && fe.Path == restoreMapRel:
		return CheckRestoreMap, restoreMapRel
	case errors.Is(err, backupset.ErrConfig):
		return CheckConfig, rel
	case errors.Is(err, backupset.ErrForeignDatabase), errors.Is(err, backupset.ErrDatabase):
		return CheckDatabase, dbRel()
	case isFile:
		return CheckFiles, rel
	case errors.As(err, &ce) && errors.Is(err, backupset.ErrManifestMismatch) && ce.Gen == 0:
		// The only such problem is the snapshot LSN the database reflects.
		return CheckDatabase, dbRel()
	case errors.As(err, &ce):
		if ce.Gen != 0 && info != nil {
			return CheckLogs, info.logRel(ce.Gen)
		}
		return CheckLogs, ""
	case errors.Is(err, backupset.ErrManifestMismatch), errors.Is(err, backupset.ErrManifestFormat),
		errors.Is(err, backupset.ErrManifestChecksum):
		return CheckManifest, backupset.ManifestFile
	}
	return CheckFiles, ""
}

// explainReplaced looks into a database or log file whose size or digest
// differs from the manifest's and says whether it belongs to another CA or
// log set, or holds another generation: a replaced file, not a damaged one.
// It returns nil when there is nothing more to say.
func explainReplaced(ctx context.Context, info *setInfo, rel string) *Problem {
	p := info.local(rel)
	if rel == info.dbRel {
		meta, err := backupset.ReadDBMeta(ctx, p)
		if err != nil {
			return nil
		}
		if meta.DBSignature != info.dbSig || meta.LogSignature != info.logSig {
			return &Problem{Check: CheckDatabase, Path: rel, Err: &backupset.ChainError{Backup: 0, Err: backupset.ErrForeignDatabase,
				Reason: fmt.Sprintf("the file is another database (signature %x, log set %x); the set's is %x, log set %x",
					meta.DBSignature[:], meta.LogSignature[:], info.dbSig[:], info.logSig[:])}}
		}
		return nil
	}
	dir, name := path.Split(rel)
	gen, ok := wal.ParseFileName(info.base, name)
	if !ok || strings.TrimSuffix(dir, "/") != backupset.DatabaseDir {
		return nil
	}
	h, err := wal.ReadHeader(p)
	if err != nil {
		return nil
	}
	switch {
	case h.Signature != info.logSig:
		return chainProblem(CheckLogs, rel, backupset.ErrForeignLog, gen,
			"the file belongs to log set %x, the set's is %x", h.Signature[:], info.logSig[:])
	case h.Gen != gen:
		return chainProblem(CheckLogs, rel, backupset.ErrLogOrder, gen, "the file holds generation %d (%s)", h.Gen, wal.FileName(info.base, h.Gen))
	}
	return nil
}

// chainWords describes a chain of n backups.
func chainWords(n int) string {
	switch n {
	case 1:
		return "1 full backup"
	case 2:
		return "a full backup and 1 logs-only backup"
	}
	return fmt.Sprintf("a full backup and %d logs-only backups", n-1)
}

// byteWords formats a byte count for people.
func byteWords(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
