package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/wal"
)

// initializedDir returns a stopped CA's data directory.
func initializedDir(t *testing.T) datadir.Dir {
	t.Helper()
	s := newSource(t)
	s.stop()
	return s.dir
}

// placeFile writes a file at p, making its directory, as a restore
// program's copy from the backup medium would.
func placeFile(t *testing.T, p string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o700), "mkdir")
	must(t, os.WriteFile(p, []byte("copied"), 0o600), "write "+p)
}

// recordFor returns a registration for dir's own layout.
func recordFor(dir datadir.Dir) Record {
	return Record{
		CheckpointDir: dir.SysDir(),
		LogDir:        dir.LogDir(),
		RestoreMap:    []MapEntry{{Old: "/elsewhere/db/Restore Test CA.db", New: dir.DBPath("Restore Test CA")}},
		BackupLogDir:  filepath.Join(dir.RestoreDir(), "logs"),
		LowGen:        2,
		HighGen:       4,
		CatchUp:       true,
	}
}

// TestRegistrationLifeCycle walks Prepare, Register, RegisterThroughFile,
// Complete and End, and the order they must come in.
func TestRegistrationLifeCycle(t *testing.T) {
	dir := initializedDir(t)
	g, err := Prepare(dir)
	must(t, err, "prepare")
	if _, err := Prepare(dir); !errors.Is(err, ErrCARunning) {
		t.Fatalf("a second prepare while the first holds the lock: %v", err)
	}
	if err := g.Complete(nil); !errors.Is(err, ErrSequence) {
		t.Fatalf("complete before register: %v", err)
	}
	if err := g.RegisterThroughFile(filepath.Join(t.TempDir(), "r.json")); !errors.Is(err, ErrSequence) {
		t.Fatalf("register through file before register: %v", err)
	}
	must(t, g.Register(recordFor(dir)), "register")
	rec, err := Pending(dir)
	var pe *PendingError
	if rec == nil || rec.State != StateRegistered || !errors.As(err, &pe) || !errors.Is(err, ErrRegistrationPending) {
		t.Fatalf("Pending while registered: %+v, %v", rec, err)
	}
	if !strings.Contains(err.Error(), "--cancel") || !strings.Contains(err.Error(), "restore.json") {
		t.Fatalf("the pending message does not say how to cancel: %v", err)
	}
	if rec.CAName != "Restore Test CA" || rec.LogBase != "ca" {
		t.Fatalf("Register did not fill the CA name and log base from the configuration: %+v", rec)
	}
	copyPath := filepath.Join(t.TempDir(), "medium", "restore.json")
	must(t, g.RegisterThroughFile(copyPath), "register through file")
	fromFile, err := ReadRecordFile(copyPath)
	must(t, err, "read the file registration")
	if !reflect.DeepEqual(fromFile, rec) {
		t.Fatalf("the file registration differs:\n%+v\n%+v", fromFile, rec)
	}
	// The backup's logs are not in place yet (the database is: the
	// directory holds the CA's own): completing is refused, naming the
	// first missing generation, and the registration stays.
	for _, place := range [][]uint32{{2, 4}, {3}} {
		err := g.Complete(nil)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), wal.FileName("ca", place[0])) {
			t.Fatalf("complete without generation %d: %v", place[0], err)
		}
		if rec, _ := Pending(dir); rec == nil || rec.State != StateRegistered {
			t.Fatalf("a refused complete changed the record: %+v", rec)
		}
		for _, gen := range place {
			placeFile(t, filepath.Join(dir.RestoreDir(), "logs", wal.FileName("ca", gen)))
		}
	}
	must(t, g.Complete(nil), "complete")
	if err := g.Complete(nil); !errors.Is(err, ErrSequence) {
		t.Fatalf("a second complete: %v", err)
	}
	if err := g.Register(recordFor(dir)); !errors.Is(err, ErrSequence) {
		t.Fatalf("register after complete: %v", err)
	}
	must(t, g.End(), "end")
	if err := g.End(); !errors.Is(err, ErrSequence) {
		t.Fatalf("a second end: %v", err)
	}
	if err := g.RegisterThroughFile(copyPath); !errors.Is(err, ErrSequence) {
		t.Fatalf("register through file after end: %v", err)
	}
	rec, err = Pending(dir)
	if err != nil || rec == nil || rec.State != StateComplete {
		t.Fatalf("Pending after complete: %+v, %v", rec, err)
	}
	// A completed restore waits for recovery: a new restore is refused.
	if _, err := Prepare(dir); !errors.Is(err, ErrRecoveryPending) {
		t.Fatalf("prepare while a restore waits for recovery: %v", err)
	}
	removed, err := Cancel(dir)
	must(t, err, "cancel")
	if removed.State != StateComplete {
		t.Fatalf("Cancel returned %+v", removed)
	}
	if _, err := Cancel(dir); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("cancel without a record: %v", err)
	}
	if _, err := Recover(context.Background(), dir, RecoverOptions{}); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("recover without a record: %v", err)
	}
}

// TestUncompletedRegistrationBlocks checks that a registration left
// uncompleted (End without Complete) keeps the CA from starting and a new
// restore from beginning, until it is cancelled; and that a failed one
// blocks the start but may be restored again.
func TestUncompletedRegistrationBlocks(t *testing.T) {
	dir := initializedDir(t)
	g, err := Prepare(dir)
	must(t, err, "prepare")
	must(t, g.Register(recordFor(dir)), "register")
	must(t, g.End(), "end")
	if _, err := Prepare(dir); !errors.Is(err, ErrRegistrationPending) {
		t.Fatalf("prepare over an uncompleted registration: %v", err)
	}
	if _, err := Recover(context.Background(), dir, RecoverOptions{}); !errors.Is(err, ErrRegistrationPending) {
		t.Fatalf("recover of an uncompleted registration: %v", err)
	}
	_, err = Cancel(dir)
	must(t, err, "cancel")

	g, err = Prepare(dir)
	must(t, err, "prepare after cancel")
	must(t, g.Register(recordFor(dir)), "register")
	must(t, g.Complete(errors.New("disk full while copying")), "complete with failure")
	must(t, g.End(), "end")
	rec, err := Pending(dir)
	if !errors.Is(err, ErrRestoreFailed) || rec.Status != "disk full while copying" || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Pending after a failed restore: %+v, %v", rec, err)
	}
	g, err = Prepare(dir)
	must(t, err, "prepare over a failed restore")
	must(t, g.End(), "end")
}

// TestRegisterValidates refuses registrations that cannot be recovered or
// that name paths the CA does not use.
func TestRegisterValidates(t *testing.T) {
	dir := initializedDir(t)
	g, err := Prepare(dir)
	must(t, err, "prepare")
	defer g.End()
	for name, edit := range map[string]func(r *Record){
		"relative log dir":     func(r *Record) { r.LogDir = "log" },
		"no database":          func(r *Record) { r.RestoreMap = nil },
		"two databases":        func(r *Record) { r.RestoreMap = append(r.RestoreMap, r.RestoreMap[0]) },
		"empty range":          func(r *Record) { r.LowGen, r.HighGen = 5, 4 },
		"generation 0":         func(r *Record) { r.LowGen = 0 },
		"both bounds":          func(r *Record) { r.Until = Until{LSN: 3, Time: r.Registered.Add(1)} },
		"another database":     func(r *Record) { r.RestoreMap[0].New = "/tmp/other.db" },
		"another log dir":      func(r *Record) { r.LogDir = "/tmp/log" },
		"another checkpoint":   func(r *Record) { r.CheckpointDir = "/tmp/sys" },
		"another CA name":      func(r *Record) { r.CAName = "Someone Else" },
		"no old database path": func(r *Record) { r.RestoreMap[0].Old = "" },
	} {
		r := recordFor(dir)
		edit(&r)
		if err := g.Register(r); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: Register = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := os.Stat(RecordPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused registration wrote a record: %v", err)
	}
}
