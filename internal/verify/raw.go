package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// noManifestNote is the note a report of a set without manifest.json
// carries.
const noManifestNote = "the set has no manifest.json (written by other backup software, or a backup that did not finish): " +
	"file sizes and digests cannot be checked; headers, signatures, the generation chain, the database's position " +
	"and the restore map were checked from the files themselves"

// rawScan is what a set without a manifest holds, by kind.
type rawScan struct {
	dbs      []string            // DataBase/*.db
	logs     map[string][]uint32 // generations found per log base
	names    map[string]map[uint32]string
	rmap     bool
	dynamic  []string
	config   string
	files    int
	bytes    int64
	problems []*Problem
}

// scanRaw lists a set directory without a manifest and sorts its files by
// the layout of internal/backupset's doc: what fits is returned by kind;
// anything else is a problem (ErrExtraFile, or ErrIncomplete for a *.part
// file).
func scanRaw(dir string) (*rawScan, error) {
	sc := &rawScan{logs: map[string][]uint32{}, names: map[string]map[uint32]string{}}
	extra := func(rel string, sentinel error, why string) {
		sc.problems = append(sc.problems, &Problem{Check: CheckFiles, Path: rel,
			Err: &backupset.FileError{Path: rel, Err: fmt.Errorf("%w: %s", sentinel, why)}})
	}
	top, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range top {
		name := e.Name()
		switch {
		case e.IsDir() && (name == backupset.DatabaseDir || name == backupset.DynamicDir || name == backupset.ConfigDir):
			if err := sc.scanDir(dir, name, extra); err != nil {
				return nil, err
			}
		case e.IsDir():
			extra(name+"/", backupset.ErrExtraFile, "a directory the set layout does not have")
		case name == backupset.VerifiedFile || name == recordTmp:
		case strings.HasSuffix(name, backupset.PartSuffix):
			extra(name, backupset.ErrIncomplete, "a file still being written, or whose writing was interrupted")
		case e.Type().IsRegular() && strings.HasSuffix(name, ".p12") && !strings.HasPrefix(name, "."):
			sc.count(dir, name)
		default:
			extra(name, backupset.ErrExtraFile, "not a file of the set layout")
		}
	}
	return sc, nil
}

// count adds the file rel to the totals.
func (sc *rawScan) count(dir, rel string) {
	sc.files++
	if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
		sc.bytes += fi.Size()
	}
}

// scanDir sorts the files of one of the layout's directories.
func (sc *rawScan) scanDir(root, sub string, extra func(rel string, sentinel error, why string)) error {
	ents, err := os.ReadDir(filepath.Join(root, sub))
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		rel := sub + "/" + name
		switch {
		case e.IsDir():
			extra(rel+"/", backupset.ErrExtraFile, "a directory the set layout does not have")
			continue
		case strings.HasSuffix(name, backupset.PartSuffix):
			extra(rel, backupset.ErrIncomplete, "a file still being written, or whose writing was interrupted")
			continue
		case !e.Type().IsRegular() || strings.HasPrefix(name, "."):
			extra(rel, backupset.ErrExtraFile, "not a regular file of the set layout")
			continue
		}
		ok := true
		switch sub {
		case backupset.DatabaseDir:
			switch {
			case name == backupset.RestoreMapFile:
				sc.rmap = true
			case strings.HasSuffix(name, ".db"):
				sc.dbs = append(sc.dbs, rel)
			case logBaseOf(name) != "":
				b := logBaseOf(name)
				g, _ := wal.ParseFileName(b, name)
				sc.logs[b] = append(sc.logs[b], g)
				if sc.names[b] == nil {
					sc.names[b] = map[uint32]string{}
				}
				sc.names[b][g] = name
			default:
				ok = false
			}
		case backupset.DynamicDir:
			sc.dynamic = append(sc.dynamic, rel)
		case backupset.ConfigDir:
			if name == backupset.ConfigFile {
				sc.config = rel
			} else {
				ok = false
			}
		}
		if !ok {
			extra(rel, backupset.ErrExtraFile, "not a file of the set layout")
			continue
		}
		sc.count(root, rel)
	}
	return nil
}

// logBaseOf returns the base of a log generation file name
// (<base><8 hex>.log), or "" when name is not one.
func logBaseOf(name string) string {
	if len(name) < 13 || !strings.HasSuffix(name, ".log") {
		return ""
	}
	b := name[:len(name)-12]
	if _, ok := wal.ParseFileName(b, name); !ok {
		return ""
	}
	return b
}

// fromFiles describes a set without a manifest from its files: the one
// database snapshot, its meta row, and the log generations of one base
// (the configuration's, when the set has one). Every problem found is
// added to cs; the result is nil when too little is there to go on.
func fromFiles(ctx context.Context, dir string, sc *rawScan, cs *checks) *setInfo {
	for _, p := range sc.problems {
		cs.add(p)
	}
	info := &setInfo{dir: dir, backups: 1, dynamic: sc.dynamic, config: sc.config, files: sc.files, bytes: sc.bytes}
	if len(sc.dbs) == 0 && len(sc.logs) == 0 && !sc.rmap {
		cs.add(&Problem{Check: CheckFiles, Err: fmt.Errorf("%w: %s holds no %s and no %s/ with a database, logs or a restore map",
			ErrNotASet, dir, backupset.ManifestFile, backupset.DatabaseDir)})
		return nil
	}
	switch len(sc.dbs) {
	case 0:
		cs.add(&Problem{Check: CheckDatabase, Path: backupset.DatabaseDir + "/<CA name>.db",
			Err: &backupset.FileError{Path: backupset.DatabaseDir + "/<CA name>.db", Err: backupset.ErrMissingFile}})
		return nil
	case 1:
	default:
		for _, db := range sc.dbs[1:] {
			cs.add(&Problem{Check: CheckFiles, Path: db, Err: &backupset.FileError{Path: db,
				Err: fmt.Errorf("%w: a second database file (%s is the first)", backupset.ErrExtraFile, sc.dbs[0])}})
		}
	}
	info.dbRel = sc.dbs[0]
	info.caName = strings.TrimSuffix(path.Base(info.dbRel), ".db")
	meta, err := backupset.ReadDBMeta(ctx, info.local(info.dbRel))
	if err != nil {
		cs.add(&Problem{Check: CheckDatabase, Path: info.dbRel, Err: err})
		return nil
	}
	info.dbSig, info.logSig, info.snapshotLSN = meta.DBSignature, meta.LogSignature, meta.AppliedLSN

	var cfg *datadir.Config
	if sc.config != "" {
		cfg, _ = readConfig(info) // checkConfig reports a failure
	}
	info.base = chooseBase(sc, cfg)
	if info.base == "" {
		cs.add(&Problem{Check: CheckLogs, Path: backupset.DatabaseDir + "/" + wal.FileName(wal.DefaultBase, 1),
			Err: fmt.Errorf("%w: the set holds no log generation", backupset.ErrMissingFile)})
		return nil
	}
	for b, gens := range sc.logs {
		if b == info.base {
			continue
		}
		for _, g := range gens {
			rel := backupset.DatabaseDir + "/" + sc.names[b][g]
			cs.add(&Problem{Check: CheckFiles, Path: rel, Err: &backupset.FileError{Path: rel,
				Err: fmt.Errorf("%w: a log of base %q; the set's logs are named %s", backupset.ErrExtraFile, b, wal.FileName(info.base, g))}})
		}
	}
	gens := slices.Clone(sc.logs[info.base])
	slices.Sort(gens)
	info.logNames = sc.names[info.base]
	info.firstGen, info.lastGen = gens[0], gens[len(gens)-1]
	return info
}

// readConfig parses the set's configuration. Failures match ErrConfig.
func readConfig(info *setInfo) (*datadir.Config, error) {
	b, err := os.ReadFile(info.local(info.config))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg, err := datadir.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, nil
}

// chooseBase picks the log base of a set without a manifest: the
// configuration's when it names one, else the only base found, else the
// default base when several are present, else "".
func chooseBase(sc *rawScan, cfg *datadir.Config) string {
	if cfg != nil && cfg.LogBase != "" {
		if _, ok := sc.logs[cfg.LogBase]; ok {
			return cfg.LogBase
		}
	}
	switch len(sc.logs) {
	case 0:
		return ""
	case 1:
		for b := range sc.logs {
			return b
		}
	}
	if _, ok := sc.logs[wal.DefaultBase]; ok {
		return wal.DefaultBase
	}
	bases := make([]string, 0, len(sc.logs))
	for b := range sc.logs {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases[0]
}

// verifyRawSet checks a set without a manifest from its files: the restore
// map, the configuration, and the log generations as one chain of the
// database's log set that continues the snapshot.
func verifyRawSet(ctx context.Context, info *setInfo, cs *checks) error {
	checkRestoreMap(info, cs)
	checkConfig(info, cs)
	if err := checkRawLogs(ctx, info, cs); err != nil {
		return err
	}
	cs.pass(CheckManifest, "absent: derived from the files")
	cs.pass(CheckFiles, fmt.Sprintf("%d files, %s, all of the set layout (no digests to check without a manifest)", info.files, byteWords(info.bytes)))
	cs.pass(CheckRestoreMap, restoreMapRel+" parses, its checksum matches and it names "+path.Base(info.dbRel))
	cs.pass(CheckDatabase, fmt.Sprintf("%s reflects LSN %d; database signature %x, log set %x", info.dbRel, info.snapshotLSN, info.dbSig[:4], info.logSig[:4]))
	n := int(info.lastGen - info.firstGen + 1)
	span := fmt.Sprintf("from LSN %d through %d", info.snapshotLSN+1, info.lastLSN)
	if info.lastLSN == info.snapshotLSN {
		span = fmt.Sprintf("through the snapshot's LSN %d (no record after it)", info.snapshotLSN)
	}
	cs.pass(CheckLogs, fmt.Sprintf("%d generation%s %d..%d of the database's log set, chained and continuous %s",
		n, plural(n), info.firstGen, info.lastGen, span))
	return nil
}

// checkRestoreMap reads certbkxp.dat and checks that its database entry
// names the set's database file.
func checkRestoreMap(info *setInfo, cs *checks) {
	m, err := backupset.ReadRestoreMap(info.local(restoreMapRel))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cs.add(&Problem{Check: CheckRestoreMap, Path: restoreMapRel, Err: &backupset.FileError{Path: restoreMapRel, Err: backupset.ErrMissingFile}})
	case err != nil:
		cs.add(&Problem{Check: CheckRestoreMap, Path: restoreMapRel, Err: err})
	case path.Base(m.Database()) != path.Base(info.dbRel):
		cs.add(problemf(CheckRestoreMap, restoreMapRel, backupset.ErrBadRestoreMap,
			"it names the database file %q, the set holds %s", m.Database(), info.dbRel))
	}
}

// checkConfig checks that the set's configuration parses and names the
// set's CA and log base. A set without one passes with a remark: it
// restores only onto a host that has a configuration.
func checkConfig(info *setInfo, cs *checks) {
	if info.config == "" {
		cs.pass(CheckConfig, "the set holds no "+backupset.ConfigDir+"/"+backupset.ConfigFile+
			": a restore onto a new host needs one copied into it")
		return
	}
	cfg, err := readConfig(info)
	switch {
	case err != nil:
		cs.add(&Problem{Check: CheckConfig, Path: info.config, Err: err})
	case cfg.CAName != info.caName:
		cs.add(problemf(CheckConfig, info.config, ErrConfig, "it names CA %q, the set's is %q", cfg.CAName, info.caName))
	case info.base != "" && cfg.LogBase != "" && cfg.LogBase != info.base:
		cs.add(problemf(CheckConfig, info.config, ErrConfig, "it names log base %q, the set's logs have base %q", cfg.LogBase, info.base))
	default:
		cs.pass(CheckConfig, fmt.Sprintf("%s names CA %q and log base %q", info.config, cfg.CAName, cfg.LogBase))
	}
}

// maxMissingListed bounds the missing generations listed one by one.
const maxMissingListed = 16

// checkRawLogs verifies the generations of the set's base as one chain:
// no generation missing, each file holding the generation its name says
// and carrying the database's log-set signature, every record and the
// header chain intact, and the chain continuing the snapshot (its first
// LSN at most S+1, its end at least S). It sets info.lastLSN.
func checkRawLogs(ctx context.Context, info *setInfo, cs *checks) error {
	gens := make([]uint32, 0, len(info.logNames))
	for g := range info.logNames {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	var (
		prev         *wal.GenInfo
		first, last  *wal.GenInfo
		broken       bool
		sig, snapLSN = info.logSig, info.snapshotLSN
	)
	if other, ok := commonForeignSignature(info, gens); ok {
		// Every log agrees with the others and not with the database: the
		// database is the stranger.
		cs.add(&Problem{Check: CheckDatabase, Path: info.dbRel, Err: &backupset.ChainError{Backup: -1, Err: backupset.ErrForeignDatabase,
			Reason: fmt.Sprintf("the database names log set %x, every log generation in the set belongs to log set %x", sig[:], other[:])}})
		return nil
	}
	for i, g := range gens {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := info.logRel(g)
		if i > 0 && g != gens[i-1]+1 {
			from, to := gens[i-1]+1, g-1
			if to-from < maxMissingListed {
				for m := from; m <= to; m++ {
					cs.add(&Problem{Check: CheckLogs, Path: info.logRel(m), Err: &backupset.FileError{Path: info.logRel(m),
						Err: fmt.Errorf("%w: generation %d lies between %s and %s", backupset.ErrMissingFile, m, info.logRel(gens[i-1]), rel)}})
				}
			}
			cs.add(chainProblem(CheckLogs, rel, backupset.ErrChainGap, g,
				"the file does not continue %s: log generations %d..%d are missing", info.logRel(gens[i-1]), from, to))
			prev, broken = nil, true
		}
		h, err := wal.ReadHeader(info.local(rel))
		switch {
		case err != nil:
			cs.add(&Problem{Check: CheckLogs, Path: rel, Err: &backupset.ChainError{Backup: -1, Gen: g, Err: backupset.ErrLogCorrupt, Cause: err}})
		case h.Signature != sig:
			cs.add(chainProblem(CheckLogs, rel, backupset.ErrForeignLog, g,
				"the file belongs to log set %x, the database's is %x", h.Signature[:], sig[:]))
			err = backupset.ErrForeignLog
		case h.Gen != g:
			cs.add(problemf(CheckLogs, rel, ErrLogOrder, "the file holds generation %d (%s)", h.Gen, wal.FileName(info.base, h.Gen)))
			err = ErrLogOrder
		}
		if err != nil {
			prev, broken = nil, true
			continue
		}
		gi, err := wal.VerifyGeneration(info.local(rel), prev)
		if err != nil {
			cs.add(&Problem{Check: CheckLogs, Path: rel, Err: &backupset.ChainError{Backup: -1, Gen: g, Err: backupset.ErrLogCorrupt, Cause: err}})
			prev, broken = nil, true
			continue
		}
		prev = &gi
		if i == 0 {
			first = prev
		}
		if i == len(gens)-1 {
			last = prev
		}
	}
	if last != nil {
		info.lastLSN = endLSN(*last)
	}
	if broken {
		return nil
	}
	switch {
	case first.BaseLSN > snapLSN+1:
		cs.add(chainProblem(CheckLogs, info.logRel(first.Gen), backupset.ErrChainGap, first.Gen,
			"the database reflects LSN %d but the first log generation starts at LSN %d: records %d..%d are missing",
			snapLSN, first.BaseLSN, snapLSN+1, first.BaseLSN-1))
	case info.lastLSN < snapLSN:
		cs.add(chainProblem(CheckLogs, info.logRel(last.Gen), backupset.ErrChainGap, last.Gen,
			"the logs end at LSN %d, before the LSN %d the database reflects: they are older than the snapshot", info.lastLSN, snapLSN))
	}
	return nil
}

// commonForeignSignature reports whether two or more log generations are
// present and every one whose header reads carries one and the same
// log-set signature other than the database's, and returns it. (With a
// single generation the database and the log cannot be told apart as the
// stranger; the log is then reported.)
func commonForeignSignature(info *setInfo, gens []uint32) (wal.Signature, bool) {
	var common wal.Signature
	n := 0
	for _, g := range gens {
		h, err := wal.ReadHeader(info.local(info.logRel(g)))
		if err != nil {
			continue
		}
		if n > 0 && h.Signature != common {
			return wal.Signature{}, false
		}
		common = h.Signature
		n++
	}
	return common, n > 1 && common != info.logSig
}

// endLSN returns the LSN of g's last record, or the one before its first
// when it holds none.
func endLSN(g wal.GenInfo) uint64 {
	if g.LastLSN == 0 {
		return g.BaseLSN - 1
	}
	return g.LastLSN
}
