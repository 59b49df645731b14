// These examples run against a real certsrv server that TestMain starts
// in-process; CERTADM_SERVER and CERTADM_CREDS point at it, so the examples
// pass an empty server address exactly as a program on the CA host would.

package certadm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/certsrv/certsrv/certadm"
)

// copyAll opens each file, streams it into dir under its base name and
// closes it.
func copyAll(ctx context.Context, b *certadm.BackupContext, files []certadm.File, dir string) error {
	for _, f := range files {
		src, err := b.OpenFile(ctx, f.Name, 0)
		if err != nil {
			return err
		}
		dst, err := os.Create(filepath.Join(dir, filepath.Base(f.Name)))
		if err != nil {
			src.Close()
			return err
		}
		_, err = io.Copy(dst, src)
		if err == nil {
			err = dst.Sync()
		}
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if cerr := src.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func ExampleIsServerOnline() {
	ctx := context.Background()
	online, err := certadm.IsServerOnline(ctx, "")
	if err != nil {
		fmt.Printf("error 0x%08X: %v\n", certadm.HRESULT(err), err)
		return
	}
	fmt.Println("online:", online)
	// Output: online: true
}

func ExampleBackupPrepare() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	fmt.Println("session:", b.SessionID() != "", b.Type())

	// Only one session runs at a time.
	_, err = certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	fmt.Println("second session refused:", errors.Is(err, certadm.ErrBackupInProgress))
	// Output:
	// session: true full
	// second session refused: true
}

func ExampleBackupContext_DatabaseLocations() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	locations, err := b.DatabaseLocations(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, f := range locations {
		fmt.Println(f.Type, filepath.IsAbs(f.Name))
	}
	// Output:
	// database true
	// log directory true
	// checkpoint directory true
}

func ExampleBackupContext_DatabaseNames() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	names, err := b.DatabaseNames(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, f := range names {
		fmt.Println(f.Type, strings.HasSuffix(f.Name, ".db"))
	}
	// Output: database true
}

func ExampleBackupContext_OpenFile() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	names, err := b.DatabaseNames(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	f, err := b.OpenFile(ctx, names[0].Name, 1<<20)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer f.Close()
	n, err := io.Copy(io.Discard, f)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("read the whole file:", n == f.Size() && n > 0)
	// Output: read the whole file: true
}

func ExampleBackupContext_BackupLogs() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "certadm-example")
	defer os.RemoveAll(dir)
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	logs, err := b.BackupLogs(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	allLogs := len(logs) > 0
	for _, f := range logs {
		allLogs = allLogs && f.Type == certadm.FileLog
	}
	fmt.Println("closed log generations listed:", allLogs)
	fmt.Println("copied:", copyAll(ctx, b, logs, dir) == nil)
	// Output:
	// closed log generations listed: true
	// copied: true
}

func ExampleBackupContext_TruncateLogs() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "certadm-example")
	defer os.RemoveAll(dir)
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)

	// Truncation is refused until every listed file was read.
	dbs, _ := b.DatabaseNames(ctx)
	logs, _ := b.BackupLogs(ctx)
	_, err = b.TruncateLogs(ctx)
	fmt.Println("refused before copying:", errors.Is(err, certadm.ErrInvalidBackupSequence))

	if err := copyAll(ctx, b, append(dbs, logs...), dir); err != nil {
		fmt.Println("error:", err)
		return
	}
	res, err := b.TruncateLogs(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("reported:", res.Deleted > 0 || res.Reason != "")
	// Output:
	// refused before copying: true
	// reported: true
}

func ExampleBackupContext_DynamicFiles() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	files, err := b.DynamicFiles(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fetchable := len(files) > 0
	for _, f := range files {
		fetchable = fetchable && f.Type == certadm.FileDynamic && strings.HasPrefix(f.URL, "http://")
	}
	fmt.Println("dynamic files with URLs:", fetchable)
	// Output: dynamic files with URLs: true
}

func ExampleBackupContext_End() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "certadm-example")
	defer os.RemoveAll(dir)
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx) // does nothing after End
	dbs, _ := b.DatabaseNames(ctx)
	logs, _ := b.BackupLogs(ctx)
	if err := copyAll(ctx, b, append(dbs, logs...), dir); err != nil {
		fmt.Println("error:", err)
		return
	}
	if err := b.End(ctx); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("recorded:", b.Recorded())

	// A logs-only backup can follow now that a full one is recorded.
	inc, err := certadm.BackupPrepare(ctx, "", certadm.BackupLogsOnly)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("incremental:", inc.Abort(ctx) == nil)
	// Output:
	// recorded: true
	// incremental: true
}

func ExampleBackupContext_Abort() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	if err := b.Abort(ctx); err != nil {
		fmt.Println("error:", err)
		return
	}
	_, err = b.DatabaseNames(ctx)
	fmt.Println("recorded:", b.Recorded())
	fmt.Println("ended:", errors.Is(err, certadm.ErrInvalidBackupSequence))
	// Output:
	// recorded: false
	// ended: true
}

func ExampleServerControl() {
	ctx := context.Background()
	// A server of its own, so that the others keep running.
	addr, creds := startScratchServer()
	err := certadm.ServerControl(ctx, addr, certadm.ControlShutdown, certadm.WithCredentials(creds))
	fmt.Println("accepted:", err == nil)
	waitUnreachable(ctx, addr, creds)
	_, err = certadm.IsServerOnline(ctx, addr, certadm.WithCredentials(creds))
	fmt.Println("gone:", errors.Is(err, certadm.ErrUnavailable))
	// Output:
	// accepted: true
	// gone: true
}

func ExampleDial() {
	ctx := context.Background()
	c, err := certadm.Dial(ctx, "")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer c.Close()
	info, err := c.Ping(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(info.State, info.CAName != "", len(info.Roles) > 0)
	// Output: online true true
}

func ExampleWriteRestoreMap() {
	ctx := context.Background()
	b, err := certadm.BackupPrepare(ctx, "", certadm.BackupFull)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer b.Abort(ctx)
	locations, err := b.DatabaseLocations(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	// Saved with the backup as DataBase/certbkxp.dat ...
	var saved bytes.Buffer
	if err := certadm.WriteRestoreMap(&saved, locations); err != nil {
		fmt.Println("error:", err)
		return
	}
	// ... and read back by the restore program.
	read, err := certadm.ReadRestoreMap(&saved)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	entry, err := certadm.RestoreMapEntryFor(read, "/srv/certsrv/db/new.db")
	fmt.Println(len(read), entry.DatabaseName == locations[0].Name, err)
	// Output: 3 true <nil>
}

func ExampleFile_Generation() {
	f := certadm.File{Type: certadm.FileLog, Name: "/var/lib/certsrv/log/ca0000001F.log"}
	gen, ok := f.Generation()
	fmt.Println(gen, ok)
	// Output: 31 true
}
