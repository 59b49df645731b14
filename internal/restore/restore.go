package restore

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/wal"
)

// BackupLogsDir is the directory under restore/ into which Restore copies
// the backup's log generations.
const BackupLogsDir = "logs"

// Options configure Restore.
type Options struct {
	// SetDir is the backup set to restore: what `certadm backup DIR`
	// wrote (a full backup and the logs-only backups appended to it), or a
	// set without manifest.json as other backup software writes it with
	// the certbcli.h functions (see backupset.Derive).
	SetDir string
	// Dir is the data directory to restore into.
	Dir datadir.Dir
	// Until, when not zero, stops recovery at that point in time.
	Until Until
	// NoCatchUp stops recovery at the end of the backup's logs even when
	// the live log directory continues them.
	NoCatchUp bool
	// Force allows restoring into a data directory that holds a CA (the
	// same CA as the set's). Its database file is set aside, never
	// deleted; its live log stays for catch-up.
	Force bool
	// Password decrypts the set's PKCS#12 key file (<CA name>.p12 at the
	// top of the set); needed when the data directory does not already hold
	// the CA's key.
	Password string
	// RecoverNow runs hard recovery at once instead of at the next start.
	RecoverNow bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// OnProgress is passed to Recover when RecoverNow is set.
	OnProgress func(Event)
	// Status, when not nil, is kept up to date while Restore runs, for a
	// display that polls it.
	Status *Status
}

// Report says what Restore did.
type Report struct {
	// Verify is the backup set's verification report.
	Verify *backupset.Report
	// CAName is the restored CA.
	CAName string
	// NewHost is set when the data directory held no CA: the configuration
	// came from the set and recovery makes a new admin credential.
	NewHost bool
	// KeyRestored is set when the CA key came from the set's key file;
	// false when the data directory already held it.
	KeyRestored bool
	// ConfigNote, when not empty, says how the configuration was obtained
	// when the set carried none.
	ConfigNote string
	// Notes are remarks for the operator that are not failures; a set
	// without manifest.json gets backupset.NoManifestNote.
	Notes []string
	// Replaced lists the files of the previous database that were set
	// aside (never deleted).
	Replaced []string
	// Record is the restore record as completed.
	Record *Record
	// Recovery is set when RecoverNow ran hard recovery.
	Recovery *Result
}

// Restore restores a backup set into a data directory: the whole client
// side of a restore in one call (doc.go, "certsrv restore"). It takes the
// data directory's lock (Prepare), verifies the whole set and checks the
// target before changing anything, registers the restore (so a crash from
// then on leaves a record that keeps the CA from starting), copies the
// database snapshot, the backup's logs, the dynamic files, the
// configuration (for a new host) and the CA key (from the set's PKCS#12
// file unless the target already holds it), completes the registration and
// releases the lock; with RecoverNow it runs Recover before releasing it.
// A failure after the registration completes it with the failure (state
// "failed"), which keeps the CA from starting until the restore is run
// again or cancelled.
func Restore(ctx context.Context, opts Options) (*Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g, err := Prepare(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !g.ended {
			g.End()
		}
	}()
	pl, err := planRestore(ctx, opts, logger)
	if err != nil {
		return nil, err
	}
	if err := g.Register(pl.rec); err != nil {
		return nil, err
	}
	rep := pl.report
	opts.Status.setStage(StageInstall)
	if err := pl.apply(ctx, opts, rep, logger); err != nil {
		if cerr := g.Complete(err); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("restore: %w (the restore is registered as failed; run it again or cancel it)", err)
	}
	if err := g.Complete(nil); err != nil {
		return nil, err
	}
	rep.Record = g.Record()
	logger.Info("restore registered and complete", "ca", rep.CAName, "data", opts.Dir.Root,
		"generations", fmt.Sprintf("%d..%d", pl.rec.LowGen, pl.rec.HighGen), "snapshot_lsn", pl.rec.SnapshotLSN)
	if opts.RecoverNow {
		opts.Status.setStage(StageRecover)
		res, err := Recover(ctx, opts.Dir, RecoverOptions{Logger: logger, OnProgress: opts.OnProgress})
		if err != nil {
			return rep, fmt.Errorf("the restore is complete, but its hard recovery failed (`certsrv recover` runs it again): %w", err)
		}
		rep.Recovery = res
	}
	return rep, g.End()
}

// restorePlan is everything Restore decided before changing anything.
type restorePlan struct {
	set    *backupset.Set
	m      *backupset.Manifest
	rec    Record
	report *Report
	config []byte // the set's certsrv.json to write; nil to keep the target's
	// defaultConfig is written when the target and the set have none.
	defaultConfig *datadir.Config
	// caCert is the CA certificate the restored CA will use (the target's
	// or the set's key file's), when chooseKey read it.
	caCert  *x509.Certificate
	key     crypto.Signer       // the key from the set's key file; nil to keep the target's key
	chain   []*x509.Certificate // the chain from the set's key file
	dbPath  string
	logsDir string
	staged  string // the copy of the database snapshot in restore/incoming/
}

// stageDatabase starts copying the set's database snapshot to
// restore/incoming/<name> in the background and returns that path and a
// function that waits for the copy and returns its error.
func (pl *restorePlan) stageDatabase(dir datadir.Dir) (string, func() error) {
	incoming := filepath.Join(dir.RestoreDir(), "incoming")
	dst := filepath.Join(incoming, path.Base(pl.set.Database().Path))
	done := make(chan error, 1)
	go func() {
		src, err := pl.set.Path(pl.set.Database().Path)
		if err == nil {
			err = removeAll(incoming)
		}
		if err == nil {
			err = mkdirDurable(incoming)
		}
		if err == nil {
			_, err = fsutil.CopyFile(dst, src, 0o600)
		}
		done <- err
	}()
	var result error
	waited := false
	return dst, func() error {
		if !waited {
			result, waited = <-done, true
		}
		return result
	}
}

// planRestore verifies the set and the target and decides what to copy.
// The database snapshot is copied into restore/incoming/ while the set is
// verified (the copy is the expensive step for a large set, and so is
// hashing it); the copy is removed again when anything is refused.
func planRestore(ctx context.Context, opts Options, logger *slog.Logger) (_ *restorePlan, err error) {
	dir := opts.Dir
	if err := opts.Until.validate(); err != nil {
		return nil, err
	}
	set, err := backupset.Load(ctx, opts.SetDir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	m := set.Manifest()
	pl := &restorePlan{set: set, m: m, report: &Report{CAName: m.CA.Name}}
	if !set.HasManifest() {
		logger.Warn(backupset.NoManifestNote, "dir", opts.SetDir, "ca", m.CA.Name)
		pl.report.Notes = append(pl.report.Notes, backupset.NoManifestNote)
	}
	if err := pl.checkTarget(dir, opts.Force); err != nil {
		return nil, err
	}
	staged, wait := pl.stageDatabase(dir)
	defer func() {
		if err == nil {
			opts.Status.setStage(StageCopy)
		}
		if werr := wait(); err == nil && werr != nil {
			err = fmt.Errorf("restore: copy the database snapshot: %w", werr)
		}
		if err != nil {
			removeAll(filepath.Dir(staged))
		}
	}()
	// Opening the key file (a deliberately slow key derivation) runs while
	// the set is hashed; a problem with the set is reported first.
	keyDone := make(chan error, 1)
	go func() { keyDone <- pl.chooseKey(dir, opts.Password) }()
	opts.Status.expectHash(m.DigestBytes())
	opts.Status.setStage(StageVerify)
	vrep, err := set.VerifyWith(ctx, backupset.VerifyOptions{Hashed: opts.Status.hashedBytes})
	keyErr := <-keyDone
	if err != nil {
		return nil, fmt.Errorf("restore: verify backup set: %w", err)
	}
	logger.Info("backup set verified", "dir", opts.SetDir, "files", vrep.Files, "bytes", vrep.Bytes, "backups", vrep.Backups)
	pl.report.Verify = vrep
	pl.staged = staged
	if keyErr != nil {
		return nil, keyErr
	}
	full, last := m.Backups[0], m.LastBackup()
	if !opts.Until.IsZero() {
		if err := pl.checkUntil(ctx, opts.Until, full.FirstGen, full.SnapshotLSN); err != nil {
			return nil, err
		}
	}
	rmap, err := set.RestoreMap()
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	pl.dbPath = dir.DBPath(m.CA.Name)
	pl.logsDir = filepath.Join(dir.RestoreDir(), BackupLogsDir)
	pl.rec = Record{
		CAName:         m.CA.Name,
		CheckpointDir:  dir.SysDir(),
		LogDir:         dir.LogDir(),
		LogBase:        m.CA.LogBase,
		RestoreMap:     []MapEntry{{Old: rmap.Database(), New: pl.dbPath}},
		BackupLogDir:   pl.logsDir,
		LowGen:         full.FirstGen,
		HighGen:        last.LastGen,
		SnapshotLSN:    full.SnapshotLSN,
		Until:          opts.Until,
		CatchUp:        !opts.NoCatchUp,
		NewCredentials: !hasCredentials(dir),
		OwnsBackupLogs: true,
	}
	return pl, nil
}

// checkTarget refuses a data directory that holds something unless force
// is set, and one that holds another CA in any case. It decides the
// configuration to write.
func (pl *restorePlan) checkTarget(dir datadir.Dir, force bool) error {
	m := pl.m
	if m.CA.CertSHA256 == "" {
		return fmt.Errorf("restore: %w: the backup set has no manifest.json and no CA certificate of CA %q in %s/ "+
			"(the certificate the CA publishes as %s.crt); copy it there from the CA's publication point and restore again",
			ErrNoCACert, m.CA.Name, backupset.DynamicDir, m.CA.Name)
	}
	cfg, err := dir.LoadConfig()
	switch {
	case errors.Is(err, datadir.ErrNotInitialized):
		cfg = nil
	case err != nil:
		return fmt.Errorf("restore: the data directory's configuration: %w", err)
	}
	what, err := occupied(dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if what != "" && !force {
		return fmt.Errorf("restore into %s: %w: it holds %s; restore into an empty directory, or use --force to restore over the same CA "+
			"(its database is set aside, its live log is kept for catch-up)", dir.Root, ErrTargetNotEmpty, what)
	}
	if b, err := os.ReadFile(dir.CACertPath()); err == nil {
		certs, err := ca.ParseCertsPEM(b)
		if err != nil {
			return fmt.Errorf("restore: %w: %s: %w", ErrForeignTarget, dir.CACertPath(), err)
		}
		sum := sha256.Sum256(certs[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != m.CA.CertSHA256 {
			return fmt.Errorf("restore into %s: %w: its CA certificate has SHA-256 %s, the backup set's CA %q has %s",
				dir.Root, ErrForeignTarget, got, m.CA.Name, m.CA.CertSHA256)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	if cfg != nil {
		pl.report.NewHost = false
		if cfg.CAName != m.CA.Name || cfg.LogBase != m.CA.LogBase {
			return fmt.Errorf("restore into %s: %w: its configuration names CA %q with log base %q, the backup set CA %q with log base %q",
				dir.Root, ErrForeignTarget, cfg.CAName, cfg.LogBase, m.CA.Name, m.CA.LogBase)
		}
		return nil
	}
	pl.report.NewHost = true
	for _, f := range pl.set.Files() {
		if f.Kind != backupset.KindConfig {
			continue
		}
		p, err := pl.set.Path(f.Path)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		c, err := datadir.ParseConfig(b)
		if err != nil {
			return fmt.Errorf("restore: the backup set's %s: %w", f.Path, err)
		}
		if c.CAName != m.CA.Name || c.LogBase != m.CA.LogBase {
			if !pl.set.HasManifest() {
				return fmt.Errorf("restore: the backup set's %s names CA %q with log base %q, its database and logs CA %q with log base %q: %w",
					f.Path, c.CAName, c.LogBase, m.CA.Name, m.CA.LogBase, backupset.ErrConfig)
			}
			return fmt.Errorf("restore: the backup set's %s names CA %q with log base %q, its manifest CA %q with log base %q: %w: %w",
				f.Path, c.CAName, c.LogBase, m.CA.Name, m.CA.LogBase, backupset.ErrManifestMismatch, backupset.ErrConfig)
		}
		pl.config = b
		return nil
	}
	c := datadir.DefaultConfig(m.CA.Name)
	c.LogBase = m.CA.LogBase
	pl.defaultConfig = &c
	pl.report.ConfigNote = "the backup set carries no configuration; the default configuration was written for CA " + m.CA.Name
	return nil
}

// chooseKey decides where the CA key comes from: the target when it holds
// the set's CA certificate and a key, else the set's PKCS#12 file, which
// must open with password and hold the set's CA certificate.
func (pl *restorePlan) chooseKey(dir datadir.Dir, password string) error {
	m := pl.m
	_, certErr := os.Stat(dir.CACertPath())
	_, keyErr := os.Stat(dir.CAKeyPath())
	if certErr == nil && keyErr == nil {
		// checkTarget verified that the certificate is the set's.
		if b, err := os.ReadFile(dir.CACertPath()); err == nil {
			if certs, err := ca.ParseCertsPEM(b); err == nil {
				pl.caCert = certs[0]
			}
		}
		return nil
	}
	var keyFile string
	for _, f := range pl.set.Files() {
		if f.Kind == backupset.KindKey && (keyFile == "" || f.Path == m.CA.Name+".p12") {
			keyFile = f.Path
		}
	}
	if keyFile == "" {
		return fmt.Errorf("restore: %w: the backup set holds no key file (take backups with `certadm backup --with-key`) and %s holds "+
			"no key of CA %q; install it first with `certsrv key restore FILE --password-file F --data %s`, then run this restore again", ErrNoKey, dir.Root, m.CA.Name, dir.Root)
	}
	if password == "" {
		return fmt.Errorf("restore: %w: the CA key comes from the backup set's %s; give its password with --password-file", ErrPasswordRequired, keyFile)
	}
	p, err := pl.set.Path(keyFile)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	p12, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	key, cert, chain, err := ca.ImportPKCS12(p12, password)
	if err != nil {
		return fmt.Errorf("restore: the backup set's %s: %w", keyFile, err)
	}
	sum := sha256.Sum256(cert.Raw)
	if got := hex.EncodeToString(sum[:]); got != m.CA.CertSHA256 {
		whose := "the manifest's CA has"
		if !pl.set.HasManifest() {
			whose = "the set's CA certificate in " + backupset.DynamicDir + "/ has"
		}
		return fmt.Errorf("restore: the backup set's %s holds a certificate with SHA-256 %s, %s %s: %w",
			keyFile, got, whose, m.CA.CertSHA256, ErrKeyMismatch)
	}
	pl.key, pl.caCert, pl.chain = key, cert, chain
	pl.report.KeyRestored = true
	return nil
}

// checkUntil refuses a point in time before the set's snapshot.
func (pl *restorePlan) checkUntil(ctx context.Context, u Until, low uint32, snap uint64) error {
	dbDir := filepath.Join(pl.set.Dir(), backupset.DatabaseDir)
	h, err := wal.ReadHeader(filepath.Join(dbDir, wal.FileName(pl.m.CA.LogBase, low)))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	sig, err := parseSig(pl.m.CA.LogSignature)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	early, err := earliestTime(ctx, dbDir, pl.m.CA.LogBase, sig, h, snap)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkUntil(u, snap, early); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// apply copies the set into the data directory. Registration is done.
func (pl *restorePlan) apply(ctx context.Context, opts Options, rep *Report, logger *slog.Logger) error {
	dir := opts.Dir
	if err := dir.MkdirAll(); err != nil {
		return err
	}
	if pl.config != nil {
		if err := fsutil.WriteFileAtomic(dir.ConfigPath(), pl.config, 0o600); err != nil {
			return fmt.Errorf("write configuration: %w", err)
		}
	}
	if pl.defaultConfig != nil {
		// The configuration names the CA key's type (certsrv init's
		// --key); the default's must not contradict the key restored.
		if pl.caCert != nil {
			if kt, _, err := ca.KeyTypeOf(pl.caCert.PublicKey); err == nil {
				pl.defaultConfig.KeyType = string(kt)
			}
		}
		if err := dir.SaveConfig(pl.defaultConfig); err != nil {
			return fmt.Errorf("write configuration: %w", err)
		}
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		p := pl.dbPath + suffix
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		dst := filepath.Join(dir.RestoreDir(), "replaced-"+stamp, filepath.Base(p))
		if err := moveFile(p, dst); err != nil {
			return fmt.Errorf("set aside the previous database file %s: %w", p, err)
		}
		rep.Replaced = append(rep.Replaced, dst)
		logger.Info("previous database file set aside", "file", p, "to", dst)
	}
	if err := moveFile(pl.staged, pl.dbPath); err != nil {
		return fmt.Errorf("move the database snapshot into place: %w", err)
	}
	if err := removeAll(filepath.Dir(pl.staged)); err != nil {
		return err
	}
	if err := removeAll(pl.logsDir); err != nil {
		return fmt.Errorf("clear %s: %w", pl.logsDir, err)
	}
	if err := mkdirDurable(pl.logsDir); err != nil {
		return err
	}
	for _, f := range pl.set.Logs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := pl.set.Path(f.Path)
		if err != nil {
			return err
		}
		if _, err := fsutil.CopyFile(filepath.Join(pl.logsDir, path.Base(f.Path)), p, 0o600); err != nil {
			return fmt.Errorf("copy log %s: %w", f.Path, err)
		}
	}
	for _, f := range pl.set.Files() {
		if f.Kind != backupset.KindDynamic {
			continue
		}
		p, err := pl.set.Path(f.Path)
		if err != nil {
			return err
		}
		// A file the target publishes already is at least as new as the
		// set's (the CA republishes from its database); keep it.
		dst := filepath.Join(dir.PublishDir(), path.Base(f.Path))
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if _, err := fsutil.CopyFile(dst, p, 0o644); err != nil {
			return fmt.Errorf("copy dynamic file %s: %w", f.Path, err)
		}
	}
	if pl.key != nil {
		// Decoded once, in chooseKey (the key derivation takes a quarter
		// of a second).
		if err := service.InstallKey(ctx, dir, pl.key, pl.caCert, pl.chain, service.KeyRestoreOptions{LockHeld: true}); err != nil {
			return fmt.Errorf("install the CA key: %w", err)
		}
	}
	return nil
}

// occupied describes what makes dir non-empty for a restore: any file but
// the lock file and the CA key material `certsrv key restore` writes
// (keys/ca.key, its .bak, keys/ca.crt, keys/chain.pem) at any depth. ""
// means empty (or absent). A directory holding only the key is where a
// restore from a set without the key goes: checkTarget still refuses one
// whose CA certificate is not the set's.
func occupied(dir datadir.Dir) (string, error) {
	keyFiles := map[string]bool{dir.CAKeyPath(): true, dir.CAKeyPath() + ".bak": true,
		dir.CACertPath(): true, dir.CAChainPath(): true}
	p, err := firstFile(dir, func(p string, d fs.DirEntry) bool { return keyFiles[p] && d.Type().IsRegular() })
	if p == "" || err != nil {
		return "", err
	}
	rel, _ := filepath.Rel(dir.Root, p)
	return rel, nil
}

// firstFile returns the path of the first file in dir, at any depth, that
// is neither the lock file nor one skip accepts; "" when there is none
// (or dir is absent).
func firstFile(dir datadir.Dir, skip func(p string, d fs.DirEntry) bool) (string, error) {
	var found string
	err := filepath.WalkDir(dir.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir.Root {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || p == dir.LockPath() || (skip != nil && skip(p, d)) {
			return nil
		}
		found = p
		return fs.SkipAll
	})
	return found, err
}

// hasCredentials reports whether dir holds the admin trust anchor, the
// server certificate and the admin credential.
func hasCredentials(dir datadir.Dir) bool {
	for _, p := range []string{
		filepath.Join(dir.TLSDir(), "trust.crt"), filepath.Join(dir.TLSDir(), "server.crt"),
		filepath.Join(dir.AdminDir(), "client.crt"),
	} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}
