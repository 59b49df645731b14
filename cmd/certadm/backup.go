package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// backupReadHint is the chunk size asked of the server: the largest it
// serves, so that a large database streams in few messages.
const backupReadHint = certadm.MaxChunkSize

// maxDynamicFile bounds a dynamic file fetched over HTTP (CA certificates
// and CRLs are far smaller).
const maxDynamicFile = 256 << 20

// abortTimeout bounds the Abort sent after a failure, which runs even when
// the command's context was cancelled.
const abortTimeout = 30 * time.Second

// backupFault, when not nil, is called at each named step of a backup
// ("logs", "dynamic", "end") and an error it returns fails the backup
// there. It is nil in the program; tests set it to check what a failure
// leaves behind.
var backupFault func(step string) error

// backupStep runs backupFault for the named step.
func backupStep(name string) error {
	if backupFault == nil {
		return nil
	}
	return backupFault(name)
}

type backupFlags struct {
	incremental  bool
	keepLogs     bool
	withKey      bool
	passwordFile string
	force        bool
	maxRate      string
}

func newBackupCmd(a *app) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup DIR [--incremental] [--keep-logs] [--with-key --password-file F] [--force] [--max-rate RATE]",
		Short: "Back up the CA database, logs and dynamic files into the backup set DIR (Operator)",
		Long: `Back up the running CA into the backup set DIR, as certutil -backup does.

A full backup (the default) needs DIR absent or empty (--force first removes
a backup set in DIR; anything else in DIR stops it). It writes the restore
map (DataBase/certbkxp.dat), the database snapshot and the log generations
that continue it (DataBase/), the CA certificates and CRLs fetched over HTTP
(Dynamic/), the configuration (Config/certsrv.json) when the credentials
directory is <data>/admin on this host, with --with-key the CA key and chain
as <CA>.p12 encrypted with the password in F, and last DIR/manifest.json.

--incremental takes a logs-only backup and appends its log generations to
the existing set DIR. It fails before copying anything if DIR belongs to
another CA or the new generations would not continue the set's chain.

--max-rate limits how fast the database and the log generations are copied,
in bytes per second over the whole run (200MB, 1.5GiB/s, 250000000; at least
1 MiB/s). The server sends no faster than this client reads, so the limit
also bounds the CPU and disk time the backup takes from a CA that keeps
issuing on the same host; without it the backup takes what it can get.

After copying, the server truncates the log generations the backup holds,
unless --keep-logs is given. A failed backup is aborted on the server and
leaves DIR without a (new) manifest, visibly incomplete.`,
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			rate, err := parseRate(f.maxRate)
			if err != nil {
				return err
			}
			var password string
			if f.withKey {
				b, err := readInput(f.passwordFile)
				if err != nil {
					return err
				}
				if password = trimPassword(b); password == "" {
					return usagef("password file %s is empty", f.passwordFile)
				}
			}
			r := &backupRun{a: a, dir: args[0], flags: f, password: password, start: time.Now(), pacer: newPacer(rate)}
			r.prog = newBackupProgress(a.stdout)
			defer r.prog.close()
			if f.incremental {
				return r.incremental(ctx)
			}
			return r.full(ctx)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.incremental, "incremental", false, "append a logs-only backup to the existing set DIR")
	fl.BoolVar(&f.keepLogs, "keep-logs", false, "do not truncate the server's log generations after the backup")
	fl.BoolVar(&f.withKey, "with-key", false, "also write the CA key and chain as DIR/<CA>.p12 (needs --password-file)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the PKCS#12 password for --with-key")
	fl.BoolVar(&f.force, "force", false, "remove a backup set already in DIR before a full backup")
	fl.StringVar(&f.maxRate, "max-rate", "", "copy the database and logs no faster than RATE bytes/s (e.g. 200MB, 1GiB/s); default: no limit")
	return cmd
}

func (f backupFlags) check() error {
	switch {
	case f.withKey && f.passwordFile == "":
		return usagef("--with-key needs --password-file")
	case !f.withKey && f.passwordFile != "":
		return usagef("--password-file is only used with --with-key")
	case f.incremental && f.withKey:
		return usagef("--with-key belongs to a full backup; an incremental backup adds only log generations")
	case f.incremental && f.force:
		return usagef("--force belongs to a full backup; an incremental backup appends to the set in DIR")
	}
	return nil
}

// backupRun is one execution of certadm backup.
type backupRun struct {
	a        *app
	dir      string
	flags    backupFlags
	password string
	start    time.Time
	pacer    *pacer          // nil: no --max-rate
	prog     *backupProgress // nil: standard output is not a terminal

	files     int
	bytes     int64
	truncated string // the summary's truncation clause
}

// backupSession is what every backup needs before copying: the connection, the
// server's identity and an open session, which ends by Abort unless the
// caller ends it.
type backupSession struct {
	c      *certadm.Client
	info   certadm.ServerInfo
	cert   [32]byte
	b      *certadm.BackupContext
	closed bool
}

// prepare connects, learns the server's CA, runs check on it (when not
// nil) and starts a session of type typ.
func (r *backupRun) prepare(ctx context.Context, typ certadm.BackupType, check func(caName string, certSHA256 [32]byte) error) (*backupSession, error) {
	c, err := r.a.dial(ctx)
	if err != nil {
		return nil, err
	}
	s := &backupSession{c: c}
	if s.info, err = c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	cert, _, err := c.CACertificate(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.cert = sha256.Sum256(cert.Raw)
	if check != nil {
		if err := check(s.info.CAName, s.cert); err != nil {
			c.Close()
			return nil, err
		}
	}
	if s.b, err = c.BackupPrepare(ctx, typ); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// close aborts the session unless it ended, and closes the connection.
func (s *backupSession) close(ctx context.Context) {
	if !s.closed {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_ = s.b.Abort(actx)
	}
	s.c.Close()
}

// end ends the session and insists that the server recorded the backup.
func (s *backupSession) end(ctx context.Context) error {
	s.closed = true
	if err := s.b.End(ctx); err != nil {
		return err
	}
	if !s.b.Recorded() {
		return fmt.Errorf("the server ended the backup session without recording the backup")
	}
	return nil
}

// full takes a full backup into r.dir.
func (r *backupRun) full(ctx context.Context) error {
	replace, err := r.prepareDir()
	if err != nil {
		return err
	}
	s, err := r.prepare(ctx, certadm.BackupFull, nil)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	if replace {
		// --force replaces a set of this CA, never another CA's.
		if set, err := backupset.Open(r.dir); err == nil {
			if err := set.CheckCA(s.info.CAName, s.cert); err != nil {
				return fmt.Errorf("%w; --force replaces a set of this CA only: remove the directory yourself to reuse it", err)
			}
		}
		if err := backupset.Clear(r.dir); err != nil {
			return err
		}
	}
	b := s.b
	w, err := backupset.Create(r.dir, backupset.Options{CAName: s.info.CAName, CACertSHA256: s.cert})
	if err != nil {
		return err
	}
	defer w.Abort()

	// The restore map, exactly as the server returns it.
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		return err
	}
	if err := r.add(func() (backupset.FileEntry, error) { return w.AddRestoreMap(ctx, restoreMap(locs)) }); err != nil {
		return err
	}
	// The database snapshot, then the logs that continue it.
	dbs, err := b.DatabaseNames(ctx)
	if err != nil {
		return err
	}
	r.expect(dbs)
	for _, f := range dbs {
		rel := backupset.DatabaseDir + "/" + path.Base(filepath.ToSlash(f.Name))
		err := r.copyFile(ctx, b, f, func(src io.Reader, size int64) (backupset.FileEntry, error) {
			return w.AddFile(ctx, backupset.KindDatabase, rel, src, size)
		})
		if err != nil {
			return err
		}
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		return err
	}
	r.expect(logs)
	for _, f := range logs {
		rel := backupset.DatabaseDir + "/" + path.Base(filepath.ToSlash(f.Name))
		err := r.copyFile(ctx, b, f, func(src io.Reader, size int64) (backupset.FileEntry, error) {
			return w.AddFile(ctx, backupset.KindLog, rel, src, size)
		})
		if err != nil {
			return err
		}
	}
	if err := backupStep("logs"); err != nil {
		return err
	}
	// Everything else the set holds comes before the server is asked to
	// delete anything: a failure up to the commit (a dynamic file that
	// cannot be fetched, a key export the server refuses) aborts the
	// session, and the server then deletes nothing and records nothing.
	if err := backupStep("dynamic"); err != nil {
		return err
	}
	if err := r.dynamicFiles(ctx, b, w); err != nil {
		return err
	}
	r.config(ctx, s, w)
	if r.flags.withKey {
		p12, name, err := s.c.BackupKey(ctx, r.password)
		if err != nil {
			return err
		}
		if name == "" || path.Base(name) != name || !strings.HasSuffix(name, ".p12") {
			return fmt.Errorf("server suggested key file name %q, which is not a plain <name>.p12: %w", name, certadm.ErrInvalidData)
		}
		if err := r.add(func() (backupset.FileEntry, error) {
			return w.AddFile(ctx, backupset.KindKey, name, bytes.NewReader(p12), int64(len(p12)))
		}); err != nil {
			return err
		}
	}
	return r.commitAndEnd(ctx, s, func() (*backupset.Manifest, error) {
		return w.Commit(ctx, backupset.BackupInfo{Server: s.c.Server(), CertsrvVersion: s.info.Version})
	})
}

// commitAndEnd finishes a backup whose files are all in DIR: commit writes
// the manifest. With --keep-logs the session ends first (the server
// records the backup) and the manifest follows, so a failure leaves no
// manifest and no record. Otherwise the manifest comes first: the set is
// complete and restorable on the medium before TruncateLogs records the
// backup and deletes the generations it copied, and a failure after the
// commit says what the server did and did not do.
func (r *backupRun) commitAndEnd(ctx context.Context, s *backupSession, commit func() (*backupset.Manifest, error)) error {
	if r.flags.keepLogs {
		r.truncated = "none (--keep-logs)"
		if err := backupStep("end"); err != nil {
			return err
		}
		if err := s.end(ctx); err != nil {
			return err
		}
		m, err := commit()
		if err != nil {
			return err
		}
		r.summary(m)
		return nil
	}
	m, err := commit()
	if err != nil {
		return err
	}
	err = backupStep("truncate")
	if err == nil {
		err = r.truncate(ctx, s.b)
	}
	if err != nil {
		return fmt.Errorf("%w (the backup set in %s is complete and restorable, but the server recorded no backup and deleted no log: the next backup must be a full one)", err, r.dir)
	}
	err = backupStep("end")
	if err == nil {
		err = s.end(ctx)
	}
	if err != nil {
		// TruncateLogs recorded the backup before it deleted anything.
		r.prog.clearLine()
		fmt.Fprintf(r.a.stderr, "certadm: warning: ending the backup session: %v (the backup was recorded when the logs were truncated)\n", err)
	}
	r.summary(m)
	return nil
}

// prepareDir refuses a non-empty DIR for a full backup unless --force,
// and reports whether it holds something --force is to replace (once the
// server has said which CA it is).
func (r *backupRun) prepareDir() (replace bool, err error) {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return false, fmt.Errorf("backup directory %s: %w: it is a file, not a directory", r.dir, certadm.ErrInvalidArg)
	}
	if err != nil {
		return false, fmt.Errorf("backup directory: %w", err)
	}
	if r.flags.force {
		return true, nil
	}
	if _, err := os.Stat(filepath.Join(r.dir, backupset.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("backup directory %s: %w and holds no complete backup set (no %s: a backup that failed or was interrupted leaves its files so); use --force to replace what is there, or another directory",
			r.dir, backupset.ErrNotEmpty, backupset.ManifestFile)
	}
	return false, fmt.Errorf("backup directory %s: %w; use --incremental to add to the set in it, or --force to replace it",
		r.dir, backupset.ErrNotEmpty)
}

// incremental appends a logs-only backup to the set in r.dir.
func (r *backupRun) incremental(ctx context.Context) (err error) {
	set, err := backupset.Open(r.dir)
	if errors.Is(err, backupset.ErrNoManifest) {
		// DIR is not a set at all: the argument is wrong.
		return fmt.Errorf("%w; an incremental backup needs a complete backup set (take a full backup first): %w", err, certadm.ErrInvalidArg)
	}
	if err != nil {
		return fmt.Errorf("%w; an incremental backup needs a complete backup set (take a full backup first)", err)
	}
	s, err := r.prepare(ctx, certadm.BackupLogsOnly, set.CheckCA)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	b := s.b
	locs, err := b.DatabaseLocations(ctx)
	if err != nil {
		return err
	}
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		return err
	}
	if len(logs) == 0 {
		return fmt.Errorf("the server listed no log generation: %w", certadm.ErrInvalidData)
	}
	r.expect(logs)
	names := make([]string, len(logs))
	for i, f := range logs {
		names[i] = f.Name
	}
	// Read the first log's header, and check the set against it, before
	// anything is written into the set.
	first, err := b.OpenFile(ctx, logs[0].Name, backupReadHint)
	if err != nil {
		return err
	}
	defer first.Close()
	header := make([]byte, wal.HeaderSize)
	if _, err := io.ReadFull(first, header); err != nil {
		return fmt.Errorf("read the header of %s: %w", logs[0].Name, err)
	}
	ap, err := set.AppendIncremental(ctx, backupset.Incremental{
		CAName: s.info.CAName, CACertSHA256: s.cert, RestoreMap: restoreMap(locs),
		Logs: names, FirstLogHeader: header,
	})
	if err != nil {
		return err
	}
	kept := false
	defer func() {
		if err != nil && !kept {
			if aerr := ap.Abort(); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
	}()
	r.opened(logs[0], first.Size())
	err = r.add(func() (backupset.FileEntry, error) {
		return ap.AddLog(ctx, logs[0].Name, progress(paced(ctx, io.MultiReader(bytes.NewReader(header), first), r.pacer), r.prog), first.Size())
	})
	if err != nil {
		return err
	}
	if err := first.Close(); err != nil {
		return err
	}
	for _, f := range logs[1:] {
		err := r.copyFile(ctx, b, f, func(src io.Reader, size int64) (backupset.FileEntry, error) {
			return ap.AddLog(ctx, f.Name, src, size)
		})
		if err != nil {
			return err
		}
	}
	if err := backupStep("logs"); err != nil {
		return err
	}
	return r.commitAndEnd(ctx, s, func() (*backupset.Manifest, error) {
		m, err := ap.Commit(ctx, backupset.BackupInfo{Server: s.c.Server(), CertsrvVersion: s.info.Version})
		kept = err == nil // committed: the deferred Abort must leave it
		return m, err
	})
}

// copyFile opens a listed file and passes its stream to add, counted on
// the progress line on a terminal.
func (r *backupRun) copyFile(ctx context.Context, b *certadm.BackupContext, f certadm.File, add func(io.Reader, int64) (backupset.FileEntry, error)) error {
	bf, err := b.OpenFile(ctx, f.Name, backupReadHint)
	if err != nil {
		return err
	}
	defer bf.Close()
	r.opened(f, bf.Size())
	err = r.add(func() (backupset.FileEntry, error) { return add(progress(paced(ctx, bf, r.pacer), r.prog), bf.Size()) })
	if err != nil {
		return err
	}
	return bf.Close()
}

// expect adds the listed sizes of files the run will copy to the progress
// line's total.
func (r *backupRun) expect(files []certadm.File) {
	for _, f := range files {
		r.prog.expect(f.Size)
	}
}

// opened shows f, just opened with size bytes, on the progress line, and
// corrects the total when the size at open differs from the listed one.
func (r *backupRun) opened(f certadm.File, size int64) {
	r.prog.file(path.Base(filepath.ToSlash(f.Name)))
	r.prog.expect(size - f.Size)
}

// add runs one AddFile and counts what it wrote.
func (r *backupRun) add(fn func() (backupset.FileEntry, error)) error {
	e, err := fn()
	if err != nil {
		return err
	}
	r.files++
	r.bytes += e.Size
	return nil
}

// truncate calls TruncateLogs and words the result for the summary
// (commitAndEnd does not call it under --keep-logs).
func (r *backupRun) truncate(ctx context.Context, b *certadm.BackupContext) error {
	res, err := b.TruncateLogs(ctx)
	if err != nil {
		return err
	}
	switch {
	case res.Deleted == 0 && res.Reason == "":
		r.truncated = "none"
	case res.Deleted == 0:
		r.truncated = "none (" + res.Reason + ")"
	case res.FirstGeneration == res.LastGeneration:
		r.truncated = fmt.Sprintf("generation %d (1 file)", res.FirstGeneration)
	default:
		r.truncated = fmt.Sprintf("generations %d..%d (%s)", res.FirstGeneration, res.LastGeneration, count(res.Deleted, "file", "files"))
	}
	return nil
}

// dynamicFiles fetches every dynamic file from its URL into Dynamic/.
func (r *backupRun) dynamicFiles(ctx context.Context, b *certadm.BackupContext, w *backupset.Writer) error {
	files, err := b.DynamicFiles(ctx)
	if err != nil {
		return err
	}
	r.expect(files)
	for _, f := range files {
		if f.Name == "" || path.Base(f.Name) != f.Name || f.URL == "" {
			return fmt.Errorf("dynamic file %q (URL %q) is not a plain file name with a URL: %w", f.Name, f.URL, certadm.ErrInvalidData)
		}
		r.prog.file(f.Name)
		data, err := fetch(ctx, f.URL)
		if err != nil {
			return fmt.Errorf("fetch dynamic file %s: %w", f.Name, err)
		}
		r.prog.expect(int64(len(data)) - f.Size)
		r.prog.add(int64(len(data)))
		if err := r.add(func() (backupset.FileEntry, error) {
			return w.AddFile(ctx, backupset.KindDynamic, backupset.DynamicDir+"/"+f.Name, bytes.NewReader(data), int64(len(data)))
		}); err != nil {
			return err
		}
	}
	return nil
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDynamicFile+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(data) > maxDynamicFile {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxDynamicFile)
	}
	return data, nil
}

// config copies the CA's certsrv.json into Config/ when the credentials
// directory is <data>/admin of a data directory on this host holding this
// CA's configuration; otherwise it notes in the manifest why it is absent.
// The admin API does not serve the configuration.
func (r *backupRun) config(ctx context.Context, s *backupSession, w *backupset.Writer) {
	note := func(why string) {
		w.Note("Config/certsrv.json not included: " + why + "; copy <data>/certsrv.json from the CA host into Config/ by hand")
		r.prog.clearLine()
		fmt.Fprintf(r.a.stderr, "certadm: warning: configuration not included: %s\n", why)
	}
	creds := s.c.CredentialsDir()
	if creds == "" || filepath.Base(filepath.Clean(creds)) != "admin" {
		note("the credentials directory is not <data>/admin on this host")
		return
	}
	p := filepath.Join(filepath.Dir(filepath.Clean(creds)), "certsrv.json")
	data, err := os.ReadFile(p)
	if err != nil {
		note(fmt.Sprintf("read %s: %v", p, err))
		return
	}
	cfg, err := datadir.ParseConfig(data)
	if err != nil {
		note(fmt.Sprintf("%s: %v", p, err))
		return
	}
	if cfg.CAName != s.info.CAName {
		note(fmt.Sprintf("%s belongs to CA %q, the server is %q", p, cfg.CAName, s.info.CAName))
		return
	}
	if err := r.add(func() (backupset.FileEntry, error) {
		return w.AddFile(ctx, backupset.KindConfig, backupset.ConfigDir+"/"+backupset.ConfigFile, bytes.NewReader(data), int64(len(data)))
	}); err != nil {
		note(err.Error())
	}
}

// restoreMap converts the server's restore map.
func restoreMap(files []certadm.File) backupset.RestoreMap {
	var m backupset.RestoreMap
	for _, f := range files {
		m.Entries = append(m.Entries, backupset.RestoreEntry{Tag: byte(f.Type), Path: f.Name})
	}
	return m
}

// summary prints the last line: what was written, how fast, and what the
// log truncation did.
func (r *backupRun) summary(m *backupset.Manifest) {
	r.prog.close()
	elapsed := time.Since(r.start)
	last := m.LastBackup()
	rate := float64(r.bytes) / 1e6 / max(elapsed.Seconds(), 1e-9)
	limit := ""
	if r.pacer != nil {
		limit = ", limited to " + formatRate(r.pacer.rate)
	}
	r.a.printf("backup complete: %s backup of %q into %s: %s, %d bytes in %s (%.1f MB/s%s); log generations %d..%d; logs truncated: %s\n",
		last.Type, m.CA.Name, r.dir, count(r.files, "file", "files"), r.bytes, elapsed.Round(time.Millisecond), rate, limit,
		last.FirstGen, last.LastGen, r.truncated)
}
