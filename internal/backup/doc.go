// Package backup runs the server half of certbcli.h's backup functions:
// backup sessions over the CA database engine, served as the gRPC Backup
// service (proto/certsrv/v1, MS-CSRA's ICertAdminD backup methods).
//
// A Manager holds at most one session at a time. A session belongs to the
// principal that prepared it, is named by a 128-bit random id written as 32
// lower-case hexadecimal digits, and has an idle lease. Service adapts the
// Manager to certsrvv1.BackupServer; the server's interceptor has already
// required the Operator role (Operator or Administrator for ServerControl)
// before any method runs.
//
// # A session
//
//  1. BackupPrepare(FULL | LOGS_ONLY). FULL pins a consistent snapshot of the
//     database at once; S is the LSN it reflects. LOGS_ONLY first checks that
//     it can be complete: a full backup was recorded (else
//     hrFullBackupNotTaken), circular logging is off (else hrCircularLogging),
//     the database was not restored since (else hrIncrementalBackupDisabled),
//     and every generation after the last recorded backup is still present
//     (else hrLogFileNotFound naming the first missing one).
//  2. GetDatabaseNames lists, for FULL, one file tagged 'D' (0x44): the
//     absolute database path, with the snapshot's size. LOGS_ONLY lists none.
//  3. GetBackupLogs rolls the current log generation, so every listed log is
//     sealed, then lists, tagged '!' (0x21), with absolute paths and sizes:
//     for FULL the generations from the one holding LSN S+1 through the
//     sealed one (only the sealed one when no record followed S); for
//     LOGS_ONLY the generations after the last recorded backup's last
//     generation through the sealed one. A needed generation that is gone
//     fails the session with hrLogFileNotFound naming it. Allowed once.
//  4. OpenFile accepts only a name this session listed, compared exactly
//     (the 'D' name only after GetDatabaseNames). Dynamic files are refused
//     with E_INVALIDARG saying where to fetch them; an empty, relative or
//     unclean name (containing "..") with E_INVALIDARG; any other name,
//     including names another session listed, with ERROR_FILE_NOT_FOUND; a
//     listed path that is now a symbolic link with E_ACCESSDENIED (links are
//     never followed: log files are opened with O_NOFOLLOW). One file is
//     open at a time (hrAlreadyOpen). The size is known at open: the
//     snapshot's size for 'D', the file's for a log. A log is verified when
//     it is opened, before any byte is served: it is read whole, verified by
//     wal.VerifyGeneration (header, every record's CRC-32C and LSN, and the
//     chain to the generation before it, which is the previous listed one or,
//     for the first, the one before it as the log described it at listing),
//     and read again; both reads must be identical, and size, LSNs,
//     signature and final checksum must be what the log wrote for that
//     generation. The bytes served are those verified. A bad log fails the
//     session with hrLogFileCorrupt naming the file and the offset; a
//     vanished one with hrLogFileNotFound.
//  5. ReadFile streams the open file from its current offset to its end, in
//     order, each FileChunk carrying its offset. The requested chunk size is
//     clamped to [MinChunk, MaxChunk] (64 KiB .. 4 MiB less 1 KiB, so that a
//     chunk fits gRPC's default 4 MiB message limit); 0 means DefaultChunk
//     (1 MiB). The offset advances with every chunk the stream accepted; a
//     broken stream leaves it there (re-open the file to start again at 0).
//     A file counts as read when every byte was streamed and CloseFile
//     says the client kept every byte (its consumed count equals the size):
//     a small file reaches the client's socket whole at once, so only the
//     client knows whether it stored it.
//  6. TruncateLogs is refused with hrInvalidBackupSequence, naming the first
//     unread file, unless GetBackupLogs was called and every listed file
//     (and, for FULL, the database) was read to its end. It then records
//     the backup (as End would, so that no generation is ever deleted that
//     no recorded backup copied, even if the client aborts afterwards),
//     asks the engine to delete generations through the sealed one, which
//     takes a checkpoint and never deletes the checkpoint generation or a
//     later one, and returns exactly the generations deleted, or the
//     reason nothing was. Allowed once.
//  7. GetDynamicFiles lists the CA certificates and CRLs under publish/, tag
//     0, with file name, size and HTTP URL; clients fetch them over HTTP.
//     GetDatabaseLocations returns the restore map: the database file ('D'),
//     the log directory (0x82) and the checkpoint directory (0x83), as
//     absolute server paths.
//  8. End(abort=false) records the backup in the log and the checkpoint,
//     only if the session is complete (as for TruncateLogs): type, generation
//     range (first listed .. sealed), LSN range (FULL: S .. the last LSN of
//     the listed logs; LOGS_ONLY: the first .. last LSN the listed
//     generations hold, or, when they hold no record, first = last = the
//     LSN they follow) and time. An incomplete session records nothing and
//     gets hrInvalidBackupSequence "backup incomplete: <name> was not read to
//     its end; nothing recorded"; a failed one records nothing and gets its
//     failure's code. End(abort=true), a lease expiry or Close record
//     nothing (a backup TruncateLogs recorded stays recorded). Every end
//     frees the session at once and releases the snapshot
//     as soon as no read uses it.
//
// # State machine
//
// States: none (no session), prepared (no file open), open (one file open),
// failed (a log could not be served). What each call does in each state;
// "seq" is hrInvalidBackupSequence (0xC8000209). A call naming an unknown,
// ended or expired session id gets seq too (the session may simply have
// expired); a call by another principal with a valid id gets E_ACCESSDENIED.
//
//	call                  none             prepared                         open                           failed
//	BackupPrepare         → prepared       hrBackupInProgress               hrBackupInProgress             hrBackupInProgress
//	GetDatabaseNames      seq              list 'D' (FULL)                  list 'D' (FULL)                seq
//	GetBackupLogs         seq              roll, list '!' (once, else seq)  roll, list '!' (once)          seq
//	GetDynamicFiles       seq              list                             list                           seq
//	GetDatabaseLocations  seq              restore map                      restore map                    seq
//	OpenFile              seq              → open (name rules above)        hrAlreadyOpen                  seq
//	ReadFile              seq              seq                              stream to end                  seq
//	CloseFile             seq              seq                              → prepared (ends a read first) close, stay failed
//	TruncateLogs          seq              truncate if complete, else seq   same as prepared               seq
//	End(abort=false)      seq              record if complete → none        same (closes the file) → none  nothing recorded → none
//	End(abort=true)       seq              → none                           → none                         → none
//	lease expiry          -                → none                           → none                         → none
//	ServerControl(1)      shuts the server down after answering, in any state; other values E_INVALIDARG
//
// A second BackupPrepare while a session exists gets hrBackupInProgress
// whoever calls. A second ReadFile while one streams gets seq.
//
// # Lease
//
// Every call renews the session's lease, and so does every chunk a
// ReadFile stream sends. A janitor goroutine aborts a session idle for
// longer than the lease (Options.Lease, default DefaultLease, 2 minutes;
// the server passes the configuration's backup_lease): it records nothing,
// frees the session so the next BackupPrepare works, cancels a stalled
// stream and releases the snapshot, whose pin otherwise makes SQLite's WAL
// grow. A client that vanishes ends its streams (their contexts are
// cancelled) and then stops renewing the lease, so its session ends as an
// abort when the lease runs out; sooner when the server says which
// connection a call came on (Options.ConnClosed): once the connection the
// session was last used on has closed and no read is in progress, the
// session ends after Options.GoneGrace (DefaultGoneGrace, 10 seconds)
// without a call on another connection. A server restart forgets every session:
// nothing is recorded and no log is deleted by a session that did not reach
// TruncateLogs.
//
// # Tests
//
// The tests run on the real store in temporary directories, and end to end
// over real gRPC with TLS through internal/testserver. The kill test starts
// the server as a child process (the test binary re-executed) and kills it
// with SIGKILL in the middle of a backup. The whole run takes a few seconds;
// there is no longer variant.
package backup
