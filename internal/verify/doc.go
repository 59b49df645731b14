// Package verify proves a backup set restorable without touching any CA:
// what `certadm verify DIR` runs. It reads the set (the directory
// internal/backupset describes), restores it into a temporary directory,
// checks the result, and reports every check with the problems it found.
// It never contacts a server and never writes into the set; WriteRecord,
// called afterwards, adds verified.json.
//
// # Checks
//
// Verify runs these checks, in this order (the Check* names):
//
//	manifest           manifest.json reads, is format 1 or 2 and its checksum
//	                   matches (internal/backupset.Open). A set without
//	                   manifest.json is accepted: the check passes with
//	                   "absent" and the report carries a note.
//	files              every file the manifest lists is present, of its
//	                   size and SHA-256 (or chunk digests, checked on all
//	                   cores); nothing else is in the set but
//	                   manifest.json and verified.json (and
//	                   verified.json.tmp, which an interrupted WriteRecord
//	                   leaves). Without a manifest: every file fits the set
//	                   layout, one database file.
//	restore map        DataBase/certbkxp.dat parses, its checksum matches,
//	                   and its database entry names the set's database file.
//	database snapshot  the file is as long as its SQLite header says; its
//	                   meta row carries the set's database and log-set
//	                   signatures and the manifest's snapshot LSN S; without
//	                   a manifest SQLite's quick_check finds no damage.
//	log chain          the generations are exactly those of the backups'
//	                   ranges, none missing; each file holds the generation
//	                   its name says (else ErrLogOrder), carries the log-set
//	                   signature, verifies record by record and chains to
//	                   the one before; the chain continues the snapshot
//	                   (first LSN <= S+1, last LSN >= S) and each logs-only
//	                   backup continues the one before it.
//	configuration      Config/certsrv.json, when present, parses and names
//	                   the set's CA and log base.
//	trial restore      the snapshot is copied into a temporary directory and
//	                   store.Replay applies the set's log records S+1 through
//	                   the last; the copy must then reflect exactly the last
//	                   LSN, having applied one record per LSN.
//	integrity          SQLite's PRAGMA integrity_check on the restored copy
//	                   (store.Check) says "ok".
//	CA certificate     Dynamic/ holds the CA certificate: the one whose
//	                   SHA-256 the manifest records, or without a manifest
//	                   the one backupset.Derive chose (a CA certificate whose
//	                   common name is the CA's name); it is a CA certificate
//	                   for that name, and every CRL in Dynamic/ verifies
//	                   against it.
//	certificates       every issued certificate in the restored database
//	                   parses, carries the serial and validity the database
//	                   records, names the CA as issuer, and its signature
//	                   verifies against the CA certificate.
//	CRLs               every recorded CRL parses, carries its recorded number
//	                   and thisUpdate, and verifies against the CA
//	                   certificate. The latest full CRL lists exactly the
//	                   certificates that were revoked (holds included) when
//	                   it was recorded and had not expired by its thisUpdate,
//	                   with their reasons and revocation times. "When it was
//	                   recorded" is the order of the log: revocation events
//	                   with an LSN below the CRL's record count, later ones
//	                   do not (the CA orders revocations and CRL publication,
//	                   so a CRL is never blamed for a revocation after it).
//	                   The latest delta CRL lists exactly the certificates
//	                   whose revocation state changed between its base CRL's
//	                   record and its own: revoked ones with their reason,
//	                   released holds as removeFromCRL. A CRL file in
//	                   Dynamic/ whose number the database holds must be that
//	                   CRL byte for byte.
//	counts             the restored database agrees with itself and the set:
//	                   the set's signatures and last LSN; issued requests
//	                   with a certificate, pending and denied ones without;
//	                   each serial once; each certificate's revocation state
//	                   the one its revocation events lead to; every event
//	                   naming a known certificate; CRL numbers growing with
//	                   their records; a delta CRL's base an earlier full CRL.
//	                   The report's Counts come from here.
//
// internal/backupset (Set.Verify) runs the first six checks; Verify files
// each problem it reports under the check it belongs to. A file that fails
// its own file check (missing, of another size or digest, unreadable) is
// read by no later check: a check that needs it is reported as not
// checked, naming the file ("not checked: DataBase/ca00000007.log failed
// its file check"), unless it found problems of its own, and never as ok.
// A missing log generation is also a gap in the log chain (ErrChainGap).
//
// The file checks and the trial restore run concurrently (the trial works
// from the set's description while the file checks prove it); when a
// file check fails, the trial restore's findings are discarded and every
// later check is reported as skipped. The temporary directory is made
// under Options.TempDir (default os.TempDir()), needs room for a copy of
// the database, and is removed before Verify returns, whatever happened.
// The CA checks read the restored database without each request's bulk
// (store.DumpFileCompact: no CSR, SAN list or certificate DER; a few
// hundred bytes per request) and its
// certificates one at a time (store.EachCertificate), so memory grows with
// the number of requests, not with the database's bytes.
//
// # No verdict
//
// A verification can fail for reasons of the machine running it rather
// than of the set: the trial restore's temporary directory cannot be made
// (absent, not a directory, not writable, a read-only file system), the
// copy or SQLite's work on it runs out of space, quota or memory, or the
// context ends. Verify then returns an *EnvironmentError matching
// ErrNotVerified ("could not verify DIR: ..."), the report's Outcome is
// OutcomeError, the trial restore and the checks after it are skipped and
// no problem is charged to the set; NewRecord gives a record WriteRecord
// refuses, so verified.json keeps the previous verification's outcome.
// Which errors of the trial restore count as the machine's is decided by
// environmental (trial.go): the context's errors; a file operation on a
// path inside the temporary directory; ENOSPC, EDQUOT, EFBIG, EROFS,
// ENOMEM, EMFILE, ENFILE; SQLite unable to open, lock, write, grow or
// allocate the copy (SQLITE_CANTOPEN, SQLITE_FULL, SQLITE_READONLY,
// SQLITE_PERM, SQLITE_NOMEM, SQLITE_NOLFS, SQLITE_IOERR except a short
// read). Everything else stays a verdict: the set's files failing to read,
// SQLite finding the copy corrupt or not a database, the replay refusing a
// log record. Problems found in the set's files are a verdict even when
// the trial restore then meets such a failure: the trial's outcome does
// not count once a file check has failed.
//
// # Sets without a manifest
//
// Backup software other than certadm writes the certbcli.h files
// (DataBase/, Dynamic/, certbkxp.dat) without manifest.json. Verify then
// describes the set with internal/backupset.Derive, the mechanism
// `certsrv restore` uses too: exactly one DataBase/*.db (its name gives the
// CA's name), the log generations of one base (the configuration's, else
// the only one present), the database's meta row for the signatures and S,
// the Dynamic/ CA certificate with the CA's name. It checks everything the
// files show: the layout, the restore map, the configuration, the
// database's length and SQLite's quick_check, the log chain against the
// database's signature (when every log agrees with the others but not with
// the database, the database is the stranger: ErrForeignDatabase), and
// all the restore and CA checks. What only a manifest can show is not
// checked: file digests (damage inside the database that SQLite's checks
// do not notice, a changed dynamic file that still verifies), a missing
// last log generation (the chain simply ends earlier), and the split of
// the chain into backups. When the files cannot describe a set (no
// database, an unreadable one, no log), every check is skipped and the
// problems say why.
//
// # Problems
//
// Every problem is a *Problem naming its check and the set file it
// concerns (for a missing file, the path it should have). Its cause
// matches a sentinel of this package or of internal/backupset (file,
// manifest, chain, configuration and identity problems use backupset's
// *FileError and *ChainError types, with or without a manifest; ErrNotASet,
// ErrLogOrder and ErrConfig are backupset's sentinels). A database or log file
// whose size or digest differs from the manifest's is also looked into:
// another CA's database (ErrForeignDatabase), another log set's
// generation (ErrForeignLog) or another generation (ErrLogOrder) are
// reported as such. One check lists at most 50 problems, then one that
// counts the rest.
//
// # verified.json (format 1)
//
// WriteRecord stores the outcome in the set as verified.json, a JSON
// object with exactly these members (ReadRecord refuses unknown ones):
//
//	format             1
//	time               when the verification ended, RFC 3339 UTC, seconds
//	tool               the program and its version, e.g. "certadm v1.0.0 0123abcd4567"
//	outcome            "ok" or "failed" (a verification that reached no
//	                   verdict is not recorded)
//	manifest           whether the set had a manifest
//	manifest_checksum  the manifest's checksum ("" without one)
//	ca                 the CA's name ("" when the set could not be read)
//	backups            backups in the chain
//	files, bytes       the set's files (manifest.json and verified.json
//	                   excluded) and their total size
//	snapshot_lsn       S
//	last_lsn           the last LSN the logs hold
//	certificates       certificates in the restored database
//	duration_seconds   how long the verification took
//	problems           the problems' messages (empty when ok)
//
// It is written as verified.json.tmp, fsynced, renamed and the directory
// fsynced. It is not part of the set's content: the manifest does not list
// it, and a malformed one is reported as a note and replaced. A later
// Verify reports it as LastVerified; Record.Describes says whether it
// describes the set as it is now: this run verified the set, the record's
// outcome is ok, and both saw the same manifest, files and last LSN. The
// text report's "previously verified" line gives the record's time, tool and
// outcome and then what this run found: "(the set is unchanged since)"
// only when the record describes the set, "(the set has changed since)"
// when this run verified a set the record does not describe, "; this run
// found the set damaged" when this run found problems, "; this run found
// no problem" after a failed record, and "(this run reached no verdict)".
//
// # JSON report
//
// Report.MarshalJSON gives one object: dir, ok, outcome ("ok", "failed",
// or "error" when no verdict was reached), error (the *EnvironmentError's
// message, "" otherwise), manifest, manifest_checksum, ca, backups, files,
// bytes, first_generation,
// last_generation, snapshot_lsn, replay {first_lsn, last_lsn, records},
// counts {requests, pending, issued, denied, revoked, certificates, crls,
// principals, backups} (replay and counts are null when the trial restore
// did not run), checks [{name, status ("ok", "failed", "skipped"),
// detail}], problems_found (how many in all), problems [{check, path,
// error}] (a check that found very many lists the first of them and one
// saying how many more), notes, started,
// duration_seconds, last_verified (the verified.json object or null) and
// unchanged_since_last_verified (Record.Describes: false whenever this
// run did not verify the set). A check's status is "skipped" when it was
// not run or, for a file check, not checked because a file it needs failed
// its own check.
//
// # Tests
//
// The tests run real CAs (internal/testserver with the backup service),
// take full and logs-only backups through the public certadm library and
// internal/backupset while certificates are issued, revoked, released
// from hold and CRLs published, then damage copies of the sets one way at
// a time. The no-verdict tests give Verify a temporary directory that is
// absent, a file or unwritable, and, where the system allows the test to
// mount one (root), small tmpfs file systems that the snapshot copy or
// SQLite's work on it does not fit; they skip otherwise. BenchmarkVerify
// builds a set with the store engine and compares Verify with `cat` on the
// same files; CERTSRV_VERIFY_BENCH_MB sets the database size (default 256).
package verify
