// Command backup-scenario is the "Backing Up Certificate Services" scenario
// of the certbcli.h documentation, step by step, written against the public
// Go library github.com/certsrv/certsrv/certadm and nothing else. It is an
// example for backup programs.
//
//	backup-scenario [--creds DIR] HOST:PORT OUTDIR
//
// It takes a full backup of the CA at HOST:PORT with the credentials in DIR
// (client.crt, client.key, trust.crt; default: the library's discovery
// rules) and writes the raw backup layout into OUTDIR:
//
//	OUTDIR/DataBase/certbkxp.dat  the restore map (format below)
//	OUTDIR/DataBase/<files>       the database file and the log generations
//	OUTDIR/Dynamic/<files>        the CA certificates and CRLs
//
// certbkxp.dat is UTF-8 text, each line ending in a line feed: the line
// "certsrv-restore-map 1"; one line per restore-map entry, the type tag as
// two upper-case hexadecimal digits, a space and the absolute path; and the
// line "sha256 " followed by the lower-case hexadecimal SHA-256 of all the
// bytes before that line. certsrv's restore tools read this layout.
//
// It prints one line per step and exits 0 on success, 1 when a step failed
// (after aborting the backup session) and 2 on a usage error.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/certsrv/certsrv/certadm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the command line, runs the scenario and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup-scenario", flag.ContinueOnError)
	fs.SetOutput(stderr)
	creds := fs.String("creds", "", "credentials directory (client.crt, client.key, trust.crt)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backup-scenario [--creds DIR] HOST:PORT OUTDIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var opts []certadm.Option
	if *creds != "" {
		opts = append(opts, certadm.WithCredentials(*creds))
	}
	if err := scenario(ctx, stdout, fs.Arg(0), fs.Arg(1), opts); err != nil {
		fmt.Fprintf(stderr, "backup-scenario: %v (HRESULT 0x%08X)\n", err, certadm.HRESULT(err))
		return 1
	}
	return 0
}

// scenario performs steps 3 to 15 of the scenario.
//
// Steps 1 and 2 (LoadLibrary of Certadm.dll and GetProcAddress for each
// function) have no counterpart: Go links the certadm library into the
// program statically, and its functions are called directly.
func scenario(ctx context.Context, out io.Writer, server, outDir string, opts []certadm.Option) (err error) {
	step := func(n int, format string, args ...any) {
		fmt.Fprintf(out, "step %d: %s\n", n, fmt.Sprintf(format, args...))
	}
	dbDir := filepath.Join(outDir, "DataBase")
	dynDir := filepath.Join(outDir, "Dynamic")
	for _, d := range []string{outDir, dbDir, dynDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}

	// Step 3: CertSrvIsServerOnline. The CA must be online to be backed up.
	online, err := certadm.IsServerOnline(ctx, server, opts...)
	if err != nil {
		return err
	}
	if !online {
		return errors.New("the CA is not online (suspended for restore or recovery)")
	}
	step(3, "CertSrvIsServerOnline: %s is online", server)

	// Step 4: CertSrvBackupPrepare starts a full backup session; the
	// BackupContext is the backup context handle the other steps use.
	b, err := certadm.BackupPrepare(ctx, server, certadm.BackupFull, opts...)
	if err != nil {
		return err
	}
	// On any failure, end the session without recording a backup. Abort
	// after End does nothing.
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = b.Abort(actx)
		}
	}()
	step(4, "CertSrvBackupPrepare: full backup session %s", b.SessionID())

	// Step 5: CertSrvRestoreGetDatabaseLocations returns the restore map,
	// saved with the backup (here as DataBase/certbkxp.dat).
	locations, err := b.DatabaseLocations(ctx)
	if err != nil {
		return err
	}
	if err := writeRestoreMap(filepath.Join(dbDir, "certbkxp.dat"), locations); err != nil {
		return err
	}
	step(5, "CertSrvRestoreGetDatabaseLocations: %d entries saved to DataBase/certbkxp.dat", len(locations))

	// Step 6: CertSrvBackupGetDatabaseNames lists the database files; steps
	// 7 to 9 copy each.
	dbs, err := b.DatabaseNames(ctx)
	if err != nil {
		return err
	}
	step(6, "CertSrvBackupGetDatabaseNames: %d database file(s)", len(dbs))
	for _, f := range dbs {
		if err := copyFile(ctx, b, f, dbDir, step); err != nil {
			return err
		}
	}

	// Step 10: CertSrvBackupGetBackupLogs lists the log generations (the
	// server first closes the current one); steps 7 to 9 copy each.
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		return err
	}
	step(10, "CertSrvBackupGetBackupLogs: %d log file(s)", len(logs))
	for _, f := range logs {
		if err := copyFile(ctx, b, f, dbDir, step); err != nil {
			return err
		}
	}

	// Step 11: CertSrvBackupTruncateLogs, now that every database and log
	// file is stored. The server says how many generations it deleted.
	tr, err := b.TruncateLogs(ctx)
	if err != nil {
		return err
	}
	if tr.Deleted > 0 {
		step(11, "CertSrvBackupTruncateLogs: deleted %d log file(s), generations %d..%d", tr.Deleted, tr.FirstGeneration, tr.LastGeneration)
	} else {
		step(11, "CertSrvBackupTruncateLogs: deleted nothing (%s)", tr.Reason)
	}

	// Step 12: CertSrvBackupGetDynamicFileList names the files that are
	// not in the database (CA certificates and CRLs).
	dyn, err := b.DynamicFiles(ctx)
	if err != nil {
		return err
	}
	step(12, "CertSrvBackupGetDynamicFileList: %d dynamic file(s)", len(dyn))

	// Step 13: back up the dynamic files by other means than the backup
	// API: here an HTTP GET of the URL the server gave for each.
	for _, f := range dyn {
		n, err := fetch(ctx, f, dynDir)
		if err != nil {
			return err
		}
		step(13, "saved dynamic file %s (%d bytes) from %s", f.Name, n, f.URL)
	}

	// Step 14: CertSrvBackupEnd ends the session; the server records the
	// backup because every listed file was read to its end.
	if err := b.End(ctx); err != nil {
		return err
	}
	if !b.Recorded() {
		return errors.New("the server did not record the backup")
	}
	info := b.EndInfo()
	step(14, "CertSrvBackupEnd: backup recorded, log generations %d..%d, LSN %d..%d",
		info.FirstGeneration, info.LastGeneration, info.FirstLSN, info.LastLSN)

	// Step 15: CertSrvBackupFree releases the lists of steps 5, 6, 10 and
	// 12. Go's lists are garbage-collected: there is nothing to free.
	step(15, "CertSrvBackupFree: nothing to free in Go")

	// Step 16 (FreeLibrary) has no counterpart either: nothing was loaded.
	return nil
}

// copyFile performs steps 7 to 9 for one listed file: open it, read it to
// its end while storing the bytes, close it.
func copyFile(ctx context.Context, b *certadm.BackupContext, f certadm.File, dir string, step func(int, string, ...any)) error {
	name := path.Base(filepath.ToSlash(f.Name))
	// Step 7: CertSrvBackupOpenFile.
	bf, err := b.OpenFile(ctx, f.Name, certadm.MaxChunkSize)
	if err != nil {
		return err
	}
	defer bf.Close()
	step(7, "CertSrvBackupOpenFile: %s (%d bytes)", f.String(), bf.Size())
	// Step 8: CertSrvBackupRead until the end, each portion stored on the
	// backup medium.
	n, err := save(filepath.Join(dir, name), bf)
	if err != nil {
		return err
	}
	step(8, "CertSrvBackupRead: %d bytes stored as %s", n, name)
	// Step 9: CertSrvBackupClose.
	if err := bf.Close(); err != nil {
		return err
	}
	step(9, "CertSrvBackupClose: %s", name)
	return nil
}

// save stores r as the file p durably: written as p.part, fsynced,
// renamed, and the directory fsynced.
func save(p string, r io.Reader) (int64, error) {
	part := p + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, p)
	}
	if err != nil {
		os.Remove(part)
		return n, fmt.Errorf("store %s: %w", p, err)
	}
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return n, err
	}
	defer d.Close()
	return n, d.Sync()
}

// writeRestoreMap writes the restore map in the certbkxp.dat text form.
func writeRestoreMap(p string, files []certadm.File) error {
	var b bytes.Buffer
	b.WriteString("certsrv-restore-map 1\n")
	for _, f := range files {
		if strings.ContainsAny(f.Name, "\r\n\x00") {
			return fmt.Errorf("restore map entry %q contains a line break", f.Name)
		}
		fmt.Fprintf(&b, "%02X %s\n", byte(f.Type), f.Name)
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString("sha256 " + hex.EncodeToString(sum[:]) + "\n")
	_, err := save(p, &b)
	return err
}

// fetch downloads a dynamic file from its URL into dir.
func fetch(ctx context.Context, f certadm.File, dir string) (int64, error) {
	if f.Name == "" || path.Base(f.Name) != f.Name {
		return 0, fmt.Errorf("dynamic file name %q is not a plain file name", f.Name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", f.URL, resp.Status)
	}
	return save(filepath.Join(dir, f.Name), resp.Body)
}
