package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
)

// Options configure Verify.
type Options struct {
	// TempDir is the directory under which the trial restore makes its
	// temporary directory; "" means the system's (os.TempDir). It needs
	// room for a copy of the database snapshot.
	TempDir string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Progress, when not nil, is kept up to date while Verify runs, for a
	// display that polls it.
	Progress *Progress
}

// Verify proves the backup set in dir restorable without touching any CA:
// it checks the set's files (against its manifest, or from the files
// themselves when it has none), restores it into a temporary directory
// and checks the result at the database and the CA level. doc.go lists the
// checks. Verify reads dir and never writes into it (WriteRecord does).
//
// The report is returned in every case. The error is nil when the set
// verified and a *FailedError holding the problems when it did not: both
// are verdicts on the set. When the machine running the verification
// kept it from reaching a verdict (the trial restore's temporary
// directory cannot be made or written, SQLite cannot work on the copy
// there, or ctx ended first) the error is an *EnvironmentError matching
// ErrNotVerified (and the context's error when ctx ended), the report's
// Err is that error and its Outcome is OutcomeError: the set is neither
// proven restorable nor found wanting, and no record may be written.
// Problems the set's own files showed are a verdict even then: when a file
// check fails, the trial restore's outcome, whatever it was, does not
// count.
func Verify(ctx context.Context, dir string, opts Options) (*Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Dir: dir, Started: time.Now()}
	cs := newChecks()
	var note string
	rep.LastVerified, note = readPrevious(dir)
	if note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	err := run(ctx, dir, opts.TempDir, logger, opts.Progress, rep, cs)
	cs.fill(rep)
	rep.Duration = time.Since(rep.Started)
	switch {
	case err != nil:
		var ee *EnvironmentError
		if !errors.As(err, &ee) {
			ee = &EnvironmentError{Op: "verification interrupted", Err: err}
		}
		ee.Dir = dir
		rep.Err = ee
		logger.Warn("backup set not verified", "dir", dir, "err", ee)
		return rep, ee
	case !rep.OK():
		return rep, &FailedError{Dir: dir, Problems: rep.Problems, Found: rep.ProblemsFound}
	}
	logger.Info("backup set verified", "dir", dir, "files", rep.Files, "bytes", rep.Bytes,
		"replayed", rep.Replayed, "certificates", rep.Counts.Certificates, "duration", rep.Duration)
	return rep, nil
}

// run does Verify's work; it returns only the context's error or an
// *EnvironmentError of the trial restore, both meaning no verdict.
func run(ctx context.Context, dir, tempDir string, logger *slog.Logger, progress *Progress, rep *Report, cs *checks) error {
	info, err := describe(ctx, dir, rep, cs)
	if err != nil || info == nil {
		return err
	}
	info.progress = progress
	rep.CAName, rep.Backups, rep.Files, rep.Bytes = info.caName, info.backups, info.files, info.bytes
	rep.FirstGen, rep.LastGen, rep.SnapshotLSN = info.firstGen, info.lastGen, info.snapshotLSN

	// The trial restore works from the description while the file checks
	// prove it; its findings count only if they do.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	trial := make(chan *trialOutcome, 1)
	in := trialInputOf(info, tempDir)
	go func() { trial <- runTrial(tctx, in, logger) }()
	err = verifySet(ctx, info, cs)
	rep.LastLSN = info.lastLSN
	layerFailed := err != nil || cs.failed(layerChecks...)
	if layerFailed {
		cancel()
	}
	tr := <-trial
	if tr.remove != nil {
		defer func() {
			if err := tr.remove(); err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("the trial restore's temporary directory could not be removed: %v", err))
			}
		}()
	}
	if err != nil {
		return err
	}
	if layerFailed {
		for _, n := range []string{CheckTrial, CheckIntegrity, CheckCACert, CheckCerts, CheckCRLs, CheckCounts} {
			cs.skip(n, "not run: the set's files did not verify")
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if tr.env != nil {
		// The set's files verified, but the trial restore could not run
		// here: no verdict on what only it can show.
		cs.skip(CheckTrial, "not run: "+strings.TrimPrefix(tr.env.Op, "trial restore: ")+": "+tr.env.Err.Error())
		for _, n := range []string{CheckIntegrity, CheckCACert, CheckCerts, CheckCRLs, CheckCounts} {
			cs.skip(n, "not run: the trial restore could not run here")
		}
		return tr.env
	}
	return afterTrial(ctx, info, tr, rep, cs)
}

// describe reads the set's description: from its manifest, or, when it has
// none, from its files. It returns nil (and no error) when the set cannot
// be described; the problems say why.
func describe(ctx context.Context, dir string, rep *Report, cs *checks) (*setInfo, error) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		cs.add(&Problem{Check: CheckFiles, Err: fmt.Errorf("%w: %w", ErrNotASet, err)})
		skipAll(cs, "not run: not a backup set")
		return nil, nil
	case !fi.IsDir():
		cs.add(&Problem{Check: CheckFiles, Err: fmt.Errorf("%w: %s is not a directory", ErrNotASet, dir)})
		skipAll(cs, "not run: not a backup set")
		return nil, nil
	}
	set, err := backupset.Open(dir)
	switch {
	case err == nil:
	case errors.Is(err, backupset.ErrNoManifest), errors.Is(err, backupset.ErrIncomplete):
		// Without a manifest (ErrIncomplete: and with *.part files, which
		// the derived set's Verify reports by name) the files describe the
		// set.
		rep.Notes = append(rep.Notes, backupset.NoManifestNote)
		set, err = backupset.Derive(ctx, dir)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if err != nil {
			var ve *backupset.VerifyError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					check, rel := classify(p, nil)
					cs.add(&Problem{Check: check, Path: rel, Err: p})
				}
			} else {
				cs.add(&Problem{Check: CheckFiles, Err: err})
			}
			skipAll(cs, "not run: the set cannot be read without a manifest")
			return nil, nil
		}
	default:
		cs.add(&Problem{Check: CheckManifest, Path: backupset.ManifestFile, Err: err})
		skipAll(cs, "not run: the manifest cannot be trusted")
		return nil, nil
	}
	info, err := fromSet(dir, set)
	if err != nil {
		cs.add(&Problem{Check: CheckManifest, Path: backupset.ManifestFile, Err: err})
		skipAll(cs, "not run: the manifest cannot be trusted")
		return nil, nil
	}
	rep.HasManifest, rep.ManifestChecksum = info.hasManifest, info.manifestChecksum
	return info, nil
}

// skipAll marks every check that has not run as skipped for why.
func skipAll(cs *checks, why string) {
	for _, n := range checkOrder {
		cs.skip(n, why)
	}
}

// afterTrial records the trial restore's outcome and, when the restored
// database could be read, runs the CA checks on it.
func afterTrial(ctx context.Context, info *setInfo, tr *trialOutcome, rep *Report, cs *checks) error {
	for _, p := range tr.problems {
		cs.add(p)
	}
	rep.FirstLSN, rep.LastLSN, rep.Replayed = info.snapshotLSN+1, info.lastLSN, tr.replay.Records
	if tr.stage != "copy" && tr.stage != "replay" {
		res := tr.replay
		if res.AppliedLSN != info.lastLSN {
			cs.add(problemf(CheckTrial, "", ErrTrialRestore, "the restored database reflects LSN %d after replay; the set's logs end at LSN %d",
				res.AppliedLSN, info.lastLSN))
		} else if want := info.lastLSN - info.snapshotLSN; uint64(res.Records) != want {
			cs.add(problemf(CheckTrial, "", ErrTrialRestore, "replay applied %d records from LSN %d through %d; the set's logs hold %d after the snapshot",
				res.Records, info.snapshotLSN+1, info.lastLSN, want))
		}
	}
	if tr.stage == "copy" || tr.stage == "replay" {
		for _, n := range []string{CheckIntegrity, CheckCACert, CheckCerts, CheckCRLs, CheckCounts} {
			cs.skip(n, "not run: the trial restore failed")
		}
		return nil
	}
	replayed := "no log record follows the snapshot"
	if tr.replay.Records > 0 {
		replayed = fmt.Sprintf("replayed %d log record%s, LSNs %d..%d", tr.replay.Records, plural(tr.replay.Records), info.snapshotLSN+1, info.lastLSN)
	}
	cs.pass(CheckTrial, fmt.Sprintf("copied the snapshot (%s) into a temporary directory; %s", byteWords(tr.copied), replayed))
	if tr.dump == nil {
		for _, n := range []string{CheckCACert, CheckCerts, CheckCRLs, CheckCounts} {
			cs.skip(n, "not run: the restored database could not be read")
		}
		return nil
	}
	cs.pass(CheckIntegrity, "PRAGMA integrity_check: ok")
	rep.Counts = checkCounts(info, tr.dump, cs)
	dyn := readDynamic(info)
	caCert := findCACert(info, dyn, cs)
	if caCert == nil {
		cs.skip(CheckCerts, "not run: no CA certificate")
		cs.skip(CheckCRLs, "not run: no CA certificate")
		return nil
	}
	info.progress.setStage(StageCerts)
	if _, err := checkCertificates(ctx, caCert, tr.dbPath, rep.Counts.Certificates, info.progress, cs); err != nil {
		return err
	}
	info.progress.setStage(StageCRLs)
	checkCRLs(caCert, tr.dump, dyn, cs)
	return nil
}
