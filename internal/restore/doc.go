// Package restore puts a backup set back into a data directory and turns
// it into a running CA again: the restore registration of certbcli.h
// (RestorePrepare, RestoreRegister, RestoreRegisterComplete, RestoreEnd),
// the restore-pending record that survives until the CA next starts, and
// the hard recovery that the start (or `certsrv recover`) runs.
//
// A restore has two halves. The client half runs while the CA is stopped:
// it copies files and registers what it copied (Prepare, Register,
// Complete, End; Restore does all of it for `certsrv restore`). The
// recovery half (Recover) runs before the database is opened: it replays
// logs into the restored database and leaves a data directory the store
// opens with nothing to replay.
//
// # The restore-pending record: restore/restore.json
//
// The record is one JSON object, written by fsutil.WriteFileAtomic (a
// temporary file, fsync, rename, fsync of restore/), so a crash leaves the
// previous record or the new one. Its members, in this order:
//
//	format            1; a reader refuses any other value (ErrRecordVersion)
//	state             registered | failed | complete | recovering | replayed | installed
//	ca_name           the CA's name
//	checkpoint_dir    absolute path of the checkpoint directory (sys/)
//	log_dir           absolute path of the live log directory (log/)
//	log_base          log file name base ("ca")
//	restore_map       array of exactly one {"old": path on the backed-up host,
//	                  "new": absolute path of the restored database file}
//	backup_log_dir    absolute path of the directory holding the backup's
//	                  log generations
//	low_generation    first backup generation, >= 1
//	high_generation   last backup generation, >= low_generation
//	snapshot_lsn      the LSN the restored database reflects (S); 0 means
//	                  "read it from the database" (a registration made
//	                  through the certadm functions does not know it)
//	until             {} or {"time": RFC 3339} or {"lsn": N}: where recovery stops
//	catch_up          true: replay the live logs that continue the backup's
//	new_credentials   true: recovery makes a new admin trust anchor, server
//	                  TLS certificate and admin credential (a new host)
//	owns_backup_logs  true: backup_log_dir is restore's own copy, removed
//	                  after recovery
//	status            "" or, in state failed, the failure given to Complete
//	registered        RFC 3339 time of Register
//	completed         RFC 3339 time of Complete (absent before)
//	recovery          absent before recovery starts; then an object:
//	  started, attempts               when the first attempt started, how many ran
//	  db_signature, log_signature     the restored database's signatures, hex
//	  catch_up_skipped                why the live log is not replayed although
//	                                  catch_up is true; "" otherwise
//	  last_lsn, stop_reason           where the replay ended and why (from state replayed)
//	  backup_records, live_records    records replayed from each source, all attempts
//	  set_aside                       name of the directory under restore/ that
//	                                  receives every file recovery moves away
//	  plan                            the log directory plan (below; from state replayed):
//	    stop_generation, stop_source ("log", "backup" or "live"), keep_bytes,
//	    first_generation, set_aside (absolute paths)
//	checksum          64 lower-case hex digits, always the last member
//
// The writer indents with two spaces, so the file ends with the bytes
// `,\n  "checksum": "` + 64 hex digits + `"\n}\n`. The checksum is the
// SHA-256 of every byte of the file before `,\n  "checksum": "`. A reader
// checks the format member, then that exact ending and the checksum, then
// decodes strictly (an unknown member is an error) and checks that the
// values agree with each other (ErrRecordCorrupt for any failure). Paths
// are absolute: a data directory moved between restore and recovery is
// not supported.
//
// # States
//
//	registered   Register wrote the record; files are being copied. The CA
//	             refuses to start (ErrRegistrationPending) and a new restore
//	             refuses to begin, until the restore is completed or cancelled
//	             (`certsrv restore --cancel`, or removing restore/restore.json).
//	failed       Complete was given a failure. The CA refuses to start
//	             (ErrRestoreFailed); a new restore may begin.
//	complete     Complete(nil). Recovery runs at the next start.
//	recovering   recovery verified its inputs and replays; it resumes here.
//	replayed     the replay ended at last_lsn; the log directory is brought there.
//	installed    the log directory ends at last_lsn; the database is opened,
//	             marked and checkpointed; then the record is removed.
//
// Pending reads the record: nil (nothing to do), a record with a
// *PendingError (the CA must not start), or a record to Recover. A record
// that cannot be read also keeps the CA from starting.
//
// # certsrv restore (Restore)
//
// Nothing is changed before every check passed (but for the staging copy
// of the snapshot under restore/, below), in this order: the data
// directory's lock (ErrCARunning while a CA or another restore holds it);
// any earlier record (ErrRegistrationPending, ErrRecoveryPending); the whole
// backup set (backupset.Load, then backupset.Set.Verify: manifest and its
// checksum, every file's size and SHA-256, no extra or missing file, the
// restore map and that it names the set's database, the configuration, the
// database snapshot's length, signatures and LSN against the manifest,
// every log generation, its signature and its chain, the chain of backups
// without gap; its sentinels are kept in the error); the target (empty, or
// with Force the same CA: same CA certificate, CA name and log base, else
// ErrTargetNotEmpty or ErrForeignTarget); the CA key (kept when the target
// holds the set's CA certificate and a key; else the set's <CA>.p12 must
// open with the password and hold the set's CA certificate: ErrNoKey,
// ErrPasswordRequired, ca.ErrPassphrase, ErrKeyMismatch); and a --until
// before the snapshot (*UntilError). Then:
//
//  1. Register (state registered): from here a crash leaves a record that
//     keeps the CA from starting.
//  2. The configuration: the set's Config/certsrv.json into an empty
//     target (the default configuration for the set's CA when the set has
//     none); a target's own configuration is kept.
//  3. The target's database file and its -wal, -shm and -journal files are
//     moved to restore/replaced-<time>/ (a stale SQLite log next to the
//     restored file would be applied to it), never deleted.
//  4. The snapshot, copied into restore/incoming/ while the set was being
//     verified (temporary file, fsync, rename; removed again when anything
//     was refused), is renamed to db/<CA>.db.
//  5. The backup's generations are copied to restore/logs/.
//  6. The dynamic files are copied into publish/, except those the target
//     already publishes (the CA republishes CRLs from its database).
//  7. The key, when it comes from the set, is installed by
//     service.KeyRestoreWithOptions.
//  8. Complete(nil) (state complete), or Complete(failure) if any step
//     failed; End releases the lock. With RecoverNow, Recover runs before.
//
// The live log directory is never touched by restore: with Force on the
// CA's own directory its generations stay for catch-up.
//
// # Sets without a manifest
//
// Backup software other than certadm writes the certbcli.h layout
// (DataBase/<CA>.db, the log generations, DataBase/certbkxp.dat, Dynamic/)
// without manifest.json. Restore accepts such a set: backupset.Load derives
// its description from the files (backupset.Derive) and its Verify checks
// everything the files show (the layout, the restore map naming the
// database, the configuration when present, the database's length,
// signatures, position and SQLite's quick_check, and the log generations'
// headers, signatures, chain, records and continuity with the snapshot);
// file digests cannot be checked. Restore logs backupset.NoManifestNote as
// a warning and puts it in Report.Notes. The CA's name is the database
// file's name, which the restore map and a configuration in the set must
// agree with. The CA certificate that identifies the CA (to compare with a
// target's and with the key file's) is the set's Dynamic/ CA certificate
// with that name; a set that holds none is refused (ErrNoCACert). The key
// comes from a <CA>.p12 the set holds (`certadm key backup DIR` writes
// one into the set), opened with the password, or from the target as for
// any set. The chain is one full backup: low_generation and
// high_generation are the first and last generations present.
//
// # Hard recovery (Recover)
//
// The caller holds the lock. `certsrv serve` finds a record with Pending;
// while Recover runs it answers every client CERTSRV_E_SERVER_SUSPENDED
// (0x80094006); only then does it open the CA. `certsrv recover` runs it
// offline.
//
// Verification, before anything changes (state complete or recovering):
// the restored database (no non-empty -wal beside a never-opened copy; its
// log-set signature and applied LSN, which must be snapshot_lsn when the
// record gives one); the backup's generations, exactly low..high in
// backup_log_dir, each verified as a sealed file (internal/wal
// VerifyGeneration: header, every record's CRC and LSN, the chain to the
// one before), the first carrying the database's log-set signature; that
// they continue the snapshot: the first starts at or before S+1 and the
// last ends at or after S (ErrBackupLogs); and the until bound (below).
// Failures leave the record and every file as they were.
//
// Replay: store.Replay applies the backup's records after the database's
// applied LSN; then, when catch-up applies and no bound stopped it,
// store.Replay again over the backup directory and the live log directory
// together. Replay advances the database's applied_lsn in the same
// transactions, so an interrupted replay resumes where it stopped; the
// record keeps the decisions of the first attempt.
//
// # Catch-up
//
// With catch_up the live log directory is replayed after the backup's
// logs when it continues them: it verifies as a whole (a torn tail of its
// newest generation is its end, as in soft recovery), carries the same
// log-set signature, has a generation after high_generation, starts no
// later than high_generation+1, every generation it shares with the backup
// is identical (size, final checksum, creation time, first LSN), and when
// it starts at high_generation+1 that generation's header chains to the
// backup's last. Otherwise the replay stops at the end of the backup's
// logs and catch_up_skipped says why (no generations, another log set, a
// gap, a generation that differs: the live log diverged, for example after
// an earlier point-in-time restore). So losing only the database file
// loses nothing: everything the CA acknowledged is in its live log.
//
// # Point in time
//
// --until lsn:N stops after record N; --until TIME stops before the first
// record appended after TIME (records carry their append time). Both apply
// to the backup's logs and to catch-up. The snapshot cannot be rolled back:
// a bound before it is refused with *UntilError, which names the earliest
// point: lsn:S, and as a time the append time of record S when the
// backup's logs hold it, else the creation time of the backup's first
// generation (record S was appended before it; this is conservative). A
// bound past the end of the logs recovers everything.
//
// # The live log after recovery
//
// The store opens a database by replaying its live log after applied_lsn,
// so when the replay ended at LSN E the log directory must end exactly at
// E, contiguously, with every generation of the database's log set. The
// plan, computed once after the replay and kept in the record:
//
//   - stop generation: the newest generation among the replay's sources
//     (the backup's, and the live ones after high_generation when catch-up
//     ran) whose first LSN is at most E+1;
//   - its content: the first keep_bytes bytes of its source, that is its
//     header and its records up to E (the whole file unless a bound cut it
//     short); taken from the live file in place ("log") when that is
//     identical and whole, else from the backup's copy ("backup") or from
//     the live file after it was set aside ("live");
//   - live generations below it stay in place as long as each is the
//     backup's identical copy, a catch-up source, or an older generation
//     that chains into the backup's first, down to the first that is not;
//   - every other generation file of the log base in log/ (later ones,
//     another log set's, ones that differ) and the old checkpoint file are
//     moved to restore/<set_aside>/log/ and restore/<set_aside>/sys/, never
//     deleted.
//
// Carrying the plan out can be repeated: a file already set aside is not
// moved again and the stop generation is rewritten whole (temporary file,
// fsync, rename). The result is verified: the log directory must verify
// and end at E. After a point-in-time recovery the records after E survive
// only in the set-aside directory and the backup set; the log continues
// with new records from E+1, in the same log set.
//
// Then the store opens the database (soft recovery replays nothing and,
// the old checkpoint being set aside, writes a new one),
// the log is rolled so new records start a new generation and the one
// recovery ended in stays identical to its source, the need-full-backup
// flag is set (the next backup must be FULL: a logs-only backup would not
// continue any earlier set), a new admin credential is made when
// new_credentials is set (service.MakeAdminCredential: a new trust anchor,
// server certificate and admin credential, registered for principal
// "admin"; credentials are never copied from a set), the database is
// closed (a checkpoint), the record removed and the copy of the backup's
// logs deleted. The summary is logged: records from the backup's and the
// live logs, the LSN range, why it stopped, the set-aside directory and
// the duration.
//
// # Tests
//
// The tests make real CAs (internal/service) and real backup sets
// (internal/backupset, and the example backup program
// examples/backup-scenario, built and run against internal/testserver,
// for a set without a manifest), damage sets one way at a time, interrupt recovery
// after every state it records, kill a CA process and a recovery process
// with SIGKILL (the test binary re-executed as a child), and restore
// through the certadm functions in package certadm. They take about 30
// seconds on two cores (building the example program included). BenchmarkHardRecovery reports records/s (set
// CERTSRV_RESTORE_BENCH_RECORDS, default 100000); BenchmarkRestoreVsCopy
// compares a restore with cp of the same set plus the replay (set
// CERTSRV_RESTORE_BENCH_MB=1024 for a 1 GiB database, default 64).
package restore
