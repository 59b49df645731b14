package backupset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// NoManifestNote says what a reader of a set without manifest.json checks,
// for reports and logs.
const NoManifestNote = "no manifest.json: checked from the files themselves (the layout, the restore map, the " +
	"configuration, the database's signatures and recorded position, and the log generations' headers, signatures, " +
	"chain and records); file digests cannot be checked without a manifest"

// maxSmallFile bounds the size of a configuration or Dynamic/ file Derive
// reads whole.
const maxSmallFile = 4 << 20

// derivation is what Derive found besides the description: every entry of
// the set directory that is not a set file, with the problem it is.
type derivation struct {
	// excluded maps a path relative to the set directory ("Dir/" for a
	// directory) to its problem, a *FileError.
	excluded map[string]error
	// order lists the excluded paths in the order found.
	order []string
	// certRel is the Dynamic/ file holding the CA certificate, "" when
	// none was found.
	certRel string
}

// exclude records rel as found but not part of the set.
func (d *derivation) exclude(rel string, sentinel error, format string, args ...any) {
	if _, ok := d.excluded[rel]; ok {
		return
	}
	d.excluded[rel] = &FileError{Path: rel, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
	d.order = append(d.order, rel)
}

// problems returns the problems of the excluded entries in the order found.
func (d *derivation) problems() []error {
	out := make([]error, 0, len(d.order))
	for _, rel := range d.order {
		out = append(out, d.excluded[rel])
	}
	return out
}

// found is a set directory sorted by the layout, before Derive chooses.
type found struct {
	dbs     []string            // DataBase/*.db
	logs    map[string][]uint32 // log generations by file name base
	rmap    bool                // DataBase/certbkxp.dat
	dynamic []string            // Dynamic/<name>
	config  string              // Config/certsrv.json, or ""
	keys    []string            // <name>.p12
}

// Load reads the set in dir: Open when it has a manifest.json, otherwise
// Derive. A directory that holds neither a manifest nor a file of a set
// fails with an error matching both ErrNoManifest and ErrNotASet; a
// manifest that cannot be read fails as Open says.
func Load(ctx context.Context, dir string) (*Set, error) {
	s, err := Open(dir)
	if nas := (*notASetError)(nil); errors.As(err, &nas) {
		return nil, nas // no directory: nothing to derive from either
	}
	if err == nil || !(errors.Is(err, ErrNoManifest) || errors.Is(err, ErrIncomplete)) {
		return s, err
	}
	d, derr := Derive(ctx, dir)
	if errors.Is(derr, ErrNotASet) {
		return nil, fmt.Errorf("%w; %w", err, derr)
	}
	return d, derr
}

// checkSetDir returns a *notASetError when dir does not exist or is not a
// directory.
func checkSetDir(dir string) error {
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, os.ErrNotExist):
		return &notASetError{fmt.Sprintf("%s does not exist", dir)}
	case err != nil:
		return &notASetError{err.Error()}
	case !fi.IsDir():
		return &notASetError{fmt.Sprintf("%s is not a directory", dir)}
	}
	return nil
}

// notASetError is the error of Open and Load for a dir that is no
// directory: it matches ErrNotASet and ErrNoManifest, and says only what
// is wrong.
type notASetError struct{ why string }

func (e *notASetError) Error() string { return ErrNotASet.Error() + ": " + e.why }

func (e *notASetError) Is(target error) bool { return target == ErrNotASet || target == ErrNoManifest }

// Derive describes the set in dir from its files, for a set without
// manifest.json (third-party backup software writes DataBase/, Dynamic/
// and certbkxp.dat with the certbcli.h functions and no manifest). It
// does not read manifest.json even when there is one. The description, in
// the manifest's form (Set.Manifest), is:
//
//   - the database snapshot: the one DataBase/*.db file (when there are
//     several, the one the restore map names, else the first by name; the
//     others are not set files); its name without ".db" is the CA name,
//     and its meta row gives the database and log-set signatures and the
//     snapshot LSN S;
//   - the log base: the configuration's, when Config/certsrv.json parses
//     and the set holds logs of that base; else the only base present;
//     else "ca" when present; else the first by name. Logs of other bases
//     are not set files;
//   - one full backup covering the generations present, from the first
//     one's header's first LSN to the end of the last one (read and
//     verified alone);
//   - every file that fits the layout, with its size and no digest:
//     the database, the logs, DataBase/certbkxp.dat, Dynamic/<name>,
//     Config/certsrv.json and <name>.p12 at the top;
//   - the CA certificate's SHA-256: of the certificate in Dynamic/ (DER or
//     PEM) that is a CA certificate whose subject common name is the CA
//     name, preferring Dynamic/<CA name>.crt; "" when there is none.
//
// What a manifest records and the files cannot show is absent: the
// manifest checksum, file digests, the split of the chain into backups,
// backup times and the server.
//
// Derive fails with an error matching ErrNotASet when dir is not a
// directory or holds no database, log or restore map, and with a
// *VerifyError listing every problem found when the files cannot describe
// a set: no database (ErrMissingFile), a database whose meta row cannot be
// read (ErrDatabase; with ErrTruncated too when the file is shorter than
// its SQLite header says), no log generation (ErrMissingFile). Every other
// problem is left to Verify.
func Derive(ctx context.Context, dir string) (*Set, error) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("derive backup set %s: %w: %w", dir, ErrNotASet, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("derive backup set %s: %w: not a directory", dir, ErrNotASet)
	}
	d := &derivation{excluded: map[string]error{}}
	fd, err := scanSet(dir, d)
	if err != nil {
		return nil, fmt.Errorf("derive backup set %s: %w", dir, err)
	}
	if len(fd.dbs) == 0 && len(fd.logs) == 0 && !fd.rmap {
		return nil, fmt.Errorf("derive backup set %s: %w: no %s, and no database snapshot, log generation or restore map in %s/",
			dir, ErrNotASet, ManifestFile, DatabaseDir)
	}
	give := func(ps ...error) (*Set, error) {
		return nil, &VerifyError{Dir: dir, Problems: append(d.problems(), ps...)}
	}
	if len(fd.dbs) == 0 {
		rel := DatabaseDir + "/<CA name>.db"
		return give(&FileError{Path: rel, Err: fmt.Errorf("%w: the set holds no database snapshot", ErrMissingFile)})
	}
	dbRel := chooseDatabase(dir, fd, d)
	dbPath := filepath.Join(dir, filepath.FromSlash(dbRel))
	meta, err := ReadDBMeta(ctx, dbPath)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err != nil {
		// A file shorter than its header says explains an unreadable meta
		// row better than SQLite's message does.
		if lerr := checkDBLength(dbPath, dbRel); lerr != nil {
			return give(lerr, &FileError{Path: dbRel, Err: err})
		}
		return give(&FileError{Path: dbRel, Err: err})
	}
	caName := strings.TrimSuffix(path.Base(dbRel), ".db")
	var cfg *datadir.Config
	if fd.config != "" {
		if b, err := readSmall(filepath.Join(dir, filepath.FromSlash(fd.config))); err == nil {
			cfg, _ = datadir.ParseConfig(b) // Verify reports a configuration that does not parse
		}
	}
	base := chooseBase(fd.logs, cfg)
	if base == "" {
		rel := DatabaseDir + "/" + wal.FileName(wal.DefaultBase, 1)
		return give(&FileError{Path: rel, Err: fmt.Errorf("%w: the set holds no log generation", ErrMissingFile)})
	}
	for _, b := range slices.Sorted(maps.Keys(fd.logs)) {
		if b == base {
			continue
		}
		for _, g := range fd.logs[b] {
			d.exclude(DatabaseDir+"/"+wal.FileName(b, g), ErrExtraFile, "a log of base %q; the set's logs are named %s",
				b, wal.FileName(base, g))
		}
	}
	gens := slices.Sorted(slices.Values(fd.logs[base]))
	full := describeLogs(dir, base, gens, meta.AppliedLSN)

	m := &Manifest{
		Format: ManifestFormat,
		CA: CAIdentity{
			Name:         caName,
			DBSignature:  hex.EncodeToString(meta.DBSignature[:]),
			LogSignature: hex.EncodeToString(meta.LogSignature[:]),
			LogBase:      base,
		},
		Backups: []Backup{full},
		Notes:   []string{NoManifestNote},
	}
	add := func(k Kind, rel string) {
		var size int64
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
			size = fi.Size()
		}
		m.Files = append(m.Files, FileEntry{Path: rel, Kind: k, Size: size})
	}
	add(KindDatabase, dbRel)
	for _, g := range gens {
		add(KindLog, DatabaseDir+"/"+wal.FileName(base, g))
	}
	if fd.rmap {
		add(KindRestoreMap, DatabaseDir+"/"+RestoreMapFile)
	}
	for _, rel := range fd.dynamic {
		add(KindDynamic, rel)
	}
	if fd.config != "" {
		add(KindConfig, fd.config)
	}
	for _, rel := range fd.keys {
		add(KindKey, rel)
	}
	if cert, rel := findCACert(dir, fd.dynamic, caName); cert != nil {
		sum := sha256.Sum256(cert.Raw)
		m.CA.CertSHA256, d.certRel = hex.EncodeToString(sum[:]), rel
	}
	return &Set{dir: dir, m: m, d: d}, nil
}

// scanSet lists dir and sorts its entries by the layout: set files into
// the result, everything else into d.
func scanSet(dir string, d *derivation) (*found, error) {
	fd := &found{logs: map[string][]uint32{}}
	top, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range top {
		name := e.Name()
		switch {
		case e.IsDir() && (name == DatabaseDir || name == DynamicDir || name == ConfigDir):
			if err := fd.scanSub(dir, name, d); err != nil {
				return nil, err
			}
		case e.IsDir():
			d.exclude(name+"/", ErrExtraFile, "a directory the set layout does not have")
		case name == ManifestFile || name == VerifiedFile || name == VerifiedTmpFile:
		case strings.HasSuffix(name, PartSuffix):
			d.exclude(name, ErrIncomplete, "a file still being written, or whose writing was interrupted")
		case e.Type().IsRegular() && strings.HasSuffix(name, ".p12") && !strings.HasPrefix(name, "."):
			fd.keys = append(fd.keys, name)
		default:
			d.exclude(name, ErrExtraFile, "not a file of the set layout")
		}
	}
	return fd, nil
}

// scanSub sorts the entries of one of the layout's directories.
func (fd *found) scanSub(root, sub string, d *derivation) error {
	ents, err := os.ReadDir(filepath.Join(root, sub))
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		rel := sub + "/" + name
		switch {
		case e.IsDir():
			d.exclude(rel+"/", ErrExtraFile, "a directory the set layout does not have")
			continue
		case strings.HasSuffix(name, PartSuffix):
			d.exclude(rel, ErrIncomplete, "a file still being written, or whose writing was interrupted")
			continue
		case !e.Type().IsRegular() || strings.HasPrefix(name, "."):
			d.exclude(rel, ErrExtraFile, "not a regular file of the set layout")
			continue
		}
		switch {
		case sub == DatabaseDir && name == RestoreMapFile:
			fd.rmap = true
		case sub == DatabaseDir && strings.HasSuffix(name, ".db") && name != ".db":
			fd.dbs = append(fd.dbs, rel)
		case sub == DatabaseDir && logBaseOf(name) != "":
			b := logBaseOf(name)
			g, _ := wal.ParseFileName(b, name)
			fd.logs[b] = append(fd.logs[b], g)
		case sub == DynamicDir:
			fd.dynamic = append(fd.dynamic, rel)
		case sub == ConfigDir && name == ConfigFile:
			fd.config = rel
		default:
			d.exclude(rel, ErrExtraFile, "not a file of the set layout")
		}
	}
	return nil
}

// chooseDatabase picks the database snapshot among several: the one the
// restore map names, else the first by name. The others are excluded.
func chooseDatabase(dir string, fd *found, d *derivation) string {
	pick := fd.dbs[0]
	if len(fd.dbs) > 1 && fd.rmap {
		if rm, err := ReadRestoreMap(filepath.Join(dir, DatabaseDir, RestoreMapFile)); err == nil {
			for _, db := range fd.dbs {
				if path.Base(db) == path.Base(rm.Database()) {
					pick = db
				}
			}
		}
	}
	for _, db := range fd.dbs {
		if db != pick {
			d.exclude(db, ErrExtraFile, "a second database file (%s is the set's)", pick)
		}
	}
	return pick
}

// chooseBase picks the log base of a set without a manifest: the
// configuration's when it names one the set has logs of, else the only
// base found, else the default base when present, else the first by name,
// else "".
func chooseBase(logs map[string][]uint32, cfg *datadir.Config) string {
	if cfg != nil && cfg.LogBase != "" {
		if _, ok := logs[cfg.LogBase]; ok {
			return cfg.LogBase
		}
	}
	if len(logs) == 0 {
		return ""
	}
	if _, ok := logs[wal.DefaultBase]; ok {
		return wal.DefaultBase
	}
	return slices.Sorted(maps.Keys(logs))[0]
}

// describeLogs describes the generations gens (ascending, at least one) of
// a set without a manifest as one full backup: the first LSN from the
// first generation's header, the end from the last generation verified
// alone. When a file cannot be read the range is S+1..S; Verify reports
// the file.
func describeLogs(dir, base string, gens []uint32, snap uint64) Backup {
	b := Backup{Type: BackupFull, FirstGen: gens[0], LastGen: gens[len(gens)-1], FirstLSN: snap + 1, LastLSN: snap, SnapshotLSN: snap}
	p := func(g uint32) string { return filepath.Join(dir, DatabaseDir, wal.FileName(base, g)) }
	if h, err := wal.ReadHeader(p(b.FirstGen)); err == nil && h.FirstLSN > 0 {
		b.FirstLSN = h.FirstLSN
	}
	if gi, err := wal.VerifyGeneration(p(b.LastGen), nil); err == nil {
		b.LastLSN = endLSN(gi)
	}
	return b
}

// readSmall reads a file of at most maxSmallFile bytes.
func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSmallFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxSmallFile)
	}
	return b, nil
}

// findCACert returns the CA certificate among the Dynamic/ files dynamic:
// a certificate (DER, or PEM "CERTIFICATE" blocks) that is a CA
// certificate whose subject common name is caName, preferring the one in
// Dynamic/<caName>.crt; nil when there is none.
func findCACert(dir string, dynamic []string, caName string) (*x509.Certificate, string) {
	var (
		best    *x509.Certificate
		bestRel string
	)
	for _, rel := range dynamic {
		b, err := readSmall(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		for _, c := range parseCerts(b) {
			if !c.IsCA || c.Subject.CommonName != caName {
				continue
			}
			if best == nil || rel == DynamicDir+"/"+caName+".crt" && bestRel != rel {
				best, bestRel = c, rel
			}
		}
	}
	return best, bestRel
}

// parseCerts returns the certificates b holds: PEM "CERTIFICATE" blocks,
// or DER certificates one after another. Anything else gives none.
func parseCerts(b []byte) []*x509.Certificate {
	if bytes.Contains(b, []byte("-----BEGIN")) {
		var out []*x509.Certificate
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				return out
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				out = append(out, c)
			}
		}
	}
	certs, err := x509.ParseCertificates(b)
	if err != nil {
		return nil
	}
	return certs
}
