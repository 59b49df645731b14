package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// closedDB creates a database with some data and closes it; it returns the
// options and the dump taken before closing.
func closedDB(t *testing.T, segSize int64, rounds int) (Options, *Dump) {
	t.Helper()
	opts := testOptions(t)
	opts.SegmentSize = segSize
	d := createDB(t, opts)
	workload(t, d, rounds)
	dump := mustDump(t, d)
	mustf(t, d.Close(), "close")
	return opts, dump
}

func TestCheckpointMissingIsRebuilt(t *testing.T) {
	opts, want := closedDB(t, 0, 3)
	mustf(t, os.Remove(opts.CheckpointPath()), "remove checkpoint")
	var logBuf bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	d := openDB(t, opts)
	if !strings.Contains(logBuf.String(), "checkpoint file missing") {
		t.Errorf("no warning about the missing checkpoint in %q", logBuf.String())
	}
	if got := mustDump(t, d); !reflect.DeepEqual(got, want) {
		t.Fatal("dump differs after rebuilding the checkpoint")
	}
	ck, err := readCheckpoint(opts.CheckpointPath())
	mustf(t, err, "checkpoint rebuilt")
	if ck.LSN != want.Meta.AppliedLSN || ck.Database != want.Meta.Database {
		t.Fatalf("rebuilt checkpoint %+v", ck)
	}

	// NoCheckpoint (a restored database): the same rebuild, said at Info.
	mustf(t, d.Close(), "close")
	mustf(t, os.Remove(opts.CheckpointPath()), "remove checkpoint")
	logBuf.Reset()
	opts.NoCheckpoint = true
	d = openDB(t, opts)
	if out := logBuf.String(); strings.Contains(out, "level=WARN") || !strings.Contains(out, "no checkpoint yet") {
		t.Errorf("log of an expected missing checkpoint: %q", out)
	}
	if got := mustDump(t, d); !reflect.DeepEqual(got, want) {
		t.Fatal("dump differs after writing the checkpoint")
	}
	if _, err := readCheckpoint(opts.CheckpointPath()); err != nil {
		t.Fatalf("no checkpoint written: %v", err)
	}
}

func TestCheckpointCorruptRefused(t *testing.T) {
	opts, _ := closedDB(t, 0, 2)
	for _, off := range []int{0, 9, 20, 50, 70, 133} {
		b, err := os.ReadFile(opts.CheckpointPath())
		mustf(t, err, "read")
		orig := bytes.Clone(b)
		b[off] ^= 0x01
		mustf(t, os.WriteFile(opts.CheckpointPath(), b, 0o600), "write")
		_, err = Open(context.Background(), opts)
		var ce *CheckpointError
		if !errors.Is(err, ErrCheckpointCorrupt) || !errors.As(err, &ce) || ce.Path != opts.CheckpointPath() {
			t.Errorf("byte %d flipped: Open error %v", off, err)
		}
		os.WriteFile(opts.CheckpointPath(), orig, 0o600)
	}
	// Truncated.
	b, _ := os.ReadFile(opts.CheckpointPath())
	os.WriteFile(opts.CheckpointPath(), b[:100], 0o600)
	if _, err := Open(context.Background(), opts); !errors.Is(err, ErrCheckpointCorrupt) {
		t.Errorf("truncated checkpoint: %v", err)
	}
}

func TestCheckpointOfAnotherDatabaseRefused(t *testing.T) {
	opts, _ := closedDB(t, 0, 2)
	other, _ := closedDB(t, 0, 1)
	copyFile(t, opts.CheckpointPath(), other.CheckpointPath())
	_, err := Open(context.Background(), opts)
	var se *SignatureError
	if !errors.Is(err, ErrCheckpointMismatch) || !errors.Is(err, ErrSignatureMismatch) || !errors.As(err, &se) || se.Which != "checkpoint" {
		t.Fatalf("Open with another database's checkpoint: %v", err)
	}
}

func TestLogsOfAnotherLogSetRefused(t *testing.T) {
	opts, _ := closedDB(t, 0, 2)
	other, _ := closedDB(t, 0, 1)
	mustf(t, os.RemoveAll(opts.LogDir), "remove logs")
	copyDir(t, opts.LogDir, other.LogDir)
	_, err := Open(context.Background(), opts)
	var se *SignatureError
	if !errors.Is(err, ErrSignatureMismatch) || !errors.Is(err, wal.ErrSignature) || !errors.As(err, &se) || se.Which != "log" || se.Gen != 1 {
		t.Fatalf("Open with another log set: %v", err)
	}
	if se.Got == se.Want {
		t.Fatalf("signature error does not show the differing signatures: %+v", se)
	}
}

func TestDatabaseOfAnotherLogSetRefused(t *testing.T) {
	opts, _ := closedDB(t, 0, 2)
	other, _ := closedDB(t, 0, 1)
	copyFile(t, opts.DBPath, other.DBPath)
	copyFile(t, opts.CheckpointPath(), other.CheckpointPath())
	_, err := Open(context.Background(), opts)
	if !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("Open of a database over another log set: %v", err)
	}
}

// oldDBUnderNewLogs returns options whose database is the empty one made by
// Create while the logs hold many generations of records.
func oldDBUnderNewLogs(t *testing.T) Options {
	t.Helper()
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	d := createDB(t, opts)
	mustf(t, d.Close(), "close")
	empty := filepath.Join(t.TempDir(), "empty.db")
	copyFile(t, empty, opts.DBPath)
	d = openDB(t, opts)
	workload(t, d, 20)
	if n := len(d.Generations()); n < 4 {
		t.Fatalf("only %d generations", n)
	}
	mustf(t, d.Close(), "close")
	copyFile(t, opts.DBPath, empty)
	return opts
}

func TestGenerationMissingInTheMiddle(t *testing.T) {
	opts := oldDBUnderNewLogs(t)
	mustf(t, os.Remove(filepath.Join(opts.LogDir, wal.FileName("ca", 2))), "remove generation 2")
	_, err := Open(context.Background(), opts)
	var me *MissingLogError
	if !errors.Is(err, ErrMissingLog) || !errors.As(err, &me) || me.Gen != 2 {
		t.Fatalf("Open with generation 2 missing: %v", err)
	}
}

func TestGenerationMissingAtTheStart(t *testing.T) {
	opts := oldDBUnderNewLogs(t)
	mustf(t, os.Remove(filepath.Join(opts.LogDir, wal.FileName("ca", 1))), "remove generation 1")
	_, err := Open(context.Background(), opts)
	var me *MissingLogError
	if !errors.Is(err, ErrMissingLog) || !errors.As(err, &me) || me.Gen != 1 || me.NeedLSN != 1 || me.Oldest != 2 {
		t.Fatalf("Open with generation 1 missing: %v (%+v)", err, me)
	}
	if !strings.Contains(err.Error(), "generation 1") {
		t.Fatalf("message does not name the generation: %v", err)
	}
}

func TestLogBehindDatabaseRefused(t *testing.T) {
	opts := testOptions(t)
	d := createDB(t, opts)
	workload(t, d, 2)
	mustf(t, d.Close(), "close")
	oldLogs := t.TempDir()
	copyDir(t, oldLogs, opts.LogDir)
	d = openDB(t, opts)
	workload(t, d, 2)
	mustf(t, d.Close(), "close")
	mustf(t, os.RemoveAll(opts.LogDir), "remove logs")
	copyDir(t, opts.LogDir, oldLogs)
	if _, err := Open(context.Background(), opts); !errors.Is(err, ErrLogBehind) {
		t.Fatalf("Open with an old log directory: %v", err)
	}
}

func TestNoLogDirectoryRefused(t *testing.T) {
	opts, _ := closedDB(t, 0, 1)
	mustf(t, os.RemoveAll(opts.LogDir), "remove logs")
	mustf(t, os.MkdirAll(opts.LogDir, 0o700), "mkdir")
	_, err := Open(context.Background(), opts)
	if !errors.Is(err, ErrMissingLog) || !strings.Contains(err.Error(), "no log in "+opts.LogDir) ||
		strings.Contains(err.Error(), "generation 0") || strings.Count(err.Error(), "open database") != 1 {
		t.Fatalf("Open with an empty log directory: %v", err)
	}
	mustf(t, os.Remove(opts.DBPath), "remove db")
	if _, err := Open(context.Background(), opts); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Open without a database file: %v", err)
	}
}

// TestApplyFailureFailsDatabase forces a record whose preconditions do not
// hold past validation: the database must fail rather than diverge, and
// reopening must fail the same way instead of skipping the record.
func TestApplyFailureFailsDatabase(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := createDB(t, opts)
	req, _, err := d.Enroll(ctx, testRequest("a"), testCert("a"))
	mustf(t, err, "enroll")
	done, err := d.begin()
	mustf(t, err, "begin")
	_, err = d.commit(ctx, &denyOp{RequestID: req.ID, Reason: "too late", At: normTime(time.Now())})
	done()
	var ae *ApplyError
	if !errors.As(err, &ae) || !errors.Is(err, ErrApply) || !errors.Is(err, ErrNotPending) {
		t.Fatalf("applying an impossible deny: %v", err)
	}
	if _, err := d.SubmitRequest(ctx, testRequest("b")); !errors.Is(err, ErrFailed) {
		t.Fatalf("write after apply failure: %v", err)
	}
	if _, err := d.Request(ctx, req.ID); !errors.Is(err, ErrFailed) {
		t.Fatalf("read after apply failure: %v", err)
	}
	if err := d.failure(); !errors.Is(err, ErrFailed) || !errors.Is(err, ErrNotPending) || d.Stalled() != nil {
		t.Fatalf("failure() = %v, Stalled() = %v after an apply failure", err, d.Stalled())
	}
	d.Close()
	_, err = Open(ctx, opts)
	if !errors.As(err, &ae) || ae.LSN != d.LastLSN() {
		t.Fatalf("reopen after apply failure: %v", err)
	}
}

func TestRecordDecoding(t *testing.T) {
	ops := []op{
		&submitOp{ID: 7, CSR: []byte{1, 2}, Subject: "s", Profile: "p", Requester: "r", SANs: []string{"a", "b"}, Submitted: normTime(time.Now())},
		&issueOp{RequestID: 7, Cert: certFields{Serial: "0A", DER: []byte{3}, Subject: "CN=x", NotBefore: normTime(time.Now()), NotAfter: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}, Issued: normTime(time.Now())},
		&enrollOp{Req: submitOp{ID: 1, Subject: "x"}, Cert: certFields{Serial: "0B", DER: []byte{4}}},
		&denyOp{RequestID: 3, Reason: "r"},
		&revokeOp{Serial: "0C", Reason: 6},
		&unrevokeOp{Serial: "0C"},
		&crlOp{CRL: CRL{Number: 1 << 40, Delta: true, BaseNumber: 3, DER: []byte{9}}},
		&grantOp{Principal: "p", Roles: []string{"A", "B"}, Fingerprint: "F"},
		&revokePrincipalOp{Principal: "p"},
		&backupOp{B: BackupRecord{Type: BackupFull, FirstGen: 1, LastGen: 9, FirstLSN: 1, LastLSN: 99}},
		&importOp{RequestID: 4, Cert: certFields{Serial: "0D", DER: []byte{5}}},
		&needFullOp{On: true},
		&noopOp{Data: []byte("xyz")},
	}
	for _, o := range ops {
		p := encodeOp(o)
		back, err := decodeOp(o.recordType(), p)
		if err != nil {
			t.Errorf("%s: decode: %v", TypeName(o.recordType()), err)
			continue
		}
		if !reflect.DeepEqual(back, o) {
			t.Errorf("%s: round trip %+v, want %+v", TypeName(o.recordType()), back, o)
		}
		if o.recordType() == RecordNoop {
			continue
		}
		for cut := 1; cut < len(p); cut++ {
			if _, err := decodeOp(o.recordType(), p[:cut]); !errors.Is(err, ErrRecord) {
				t.Errorf("%s cut to %d bytes: %v", TypeName(o.recordType()), cut, err)
				break
			}
		}
		if _, err := decodeOp(o.recordType(), append(bytes.Clone(p), 0)); !errors.Is(err, ErrRecord) {
			t.Errorf("%s with a trailing byte: %v", TypeName(o.recordType()), err)
		}
	}
	if _, err := decodeOp(99, []byte{1}); !errors.Is(err, ErrRecord) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := decodeOp(RecordDeny, []byte{2, 0}); !errors.Is(err, ErrRecord) {
		t.Errorf("unknown payload version: %v", err)
	}
}

// TestDamagedTailBeforeAppliedIsNotCut: the newest log generation lost its
// last bytes, but the database had applied the record they held: that is
// damage, not a torn tail. Open fails with ErrCorrupt and leaves the log
// exactly as it was, instead of cutting an acknowledged record and then
// refusing anyway.
func TestDamagedTailBeforeAppliedIsNotCut(t *testing.T) {
	opts, _ := closedDB(t, 0, 2)
	logs, err := filepath.Glob(filepath.Join(opts.LogDir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("logs: %v %v", logs, err)
	}
	newest := logs[len(logs)-1]
	fi, err := os.Stat(newest)
	mustf(t, err, "stat")
	mustf(t, os.Truncate(newest, fi.Size()-10), "truncate")
	before, err := os.ReadFile(newest)
	mustf(t, err, "read")
	_, err = Open(context.Background(), opts)
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "not a torn tail") {
		t.Fatalf("Open with the applied record's tail gone: %v", err)
	}
	after, err := os.ReadFile(newest)
	mustf(t, err, "read")
	if !bytes.Equal(before, after) {
		t.Fatalf("the refused Open changed the log: %d bytes, then %d", len(before), len(after))
	}
}
