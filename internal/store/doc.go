// Package store is certsrv's CA database: an SQLite file (modernc.org/sqlite,
// WAL mode, synchronous=NORMAL) that reflects a transaction log
// (internal/wal), a checkpoint file, soft recovery at open, consistent
// snapshots for full backups, log truncation, and the replay entry point
// hard recovery uses. The CA logic above it hands the store bytes and facts;
// the store never parses a certificate or a CSR, and no SQL leaves the
// package.
//
// # Files
//
// A Layout names three places: the SQLite database file (DBPath, with
// SQLite's own -wal and -shm files next to it), the log directory (LogDir,
// generations <LogBase><8 hex digits>.log, see internal/wal) and the
// checkpoint directory (SysDir, holding <LogBase>.chk). The caller holds the
// data-directory lock; the store takes none.
//
// # Write path
//
// Every state change is a typed log record. A write method validates its
// arguments and the current state (under per-key locks, so that two writes
// to the same request, serial, principal, CRL sequence or backup state are
// serialised from validation until applied), allocates what the record
// needs (request IDs from an in-memory counter; times are taken now and
// written into the record), appends the record with wal.Append (durable on
// return; concurrent appenders share one fsync), and hands it to the one
// applier goroutine. The applier applies records strictly in LSN order —
// records from concurrent appenders arrive out of order and wait in a
// pending set — many records per SQLite transaction, and stores the last
// record's LSN as meta.applied_lsn in the same transaction. The write method
// returns after its record is applied, so a read that follows sees it
// (except for the records held while the disk is full, below). A refused
// write (ErrNotPending, ErrNotFound, ErrAlreadyRevoked, ErrNotOnHold,
// ErrDuplicateSerial, ErrCRLNumber, ErrPrincipalRevoked,
// ErrInvalidArgument, ErrStalled) appends nothing.
//
// The log, not SQLite, makes a write durable: SQLite commits are not
// fsynced (synchronous=NORMAL). If a record cannot be appended after it may
// have reached the log, or cannot be applied, the database is marked failed:
// every later call returns an error matching ErrFailed, and reopening runs
// recovery, which applies the same record the same way — the database never
// silently diverges from the log. The one exception is a full disk: SQLite
// failing for lack of space holds the records (durable, so their writers
// succeed) and refuses new writes with ErrStalled until the held records
// are applied; a reserve of free space refuses new writes before that
// happens (stall.go).
//
// Apply functions are deterministic: everything they need is in the record,
// so replaying a log rebuilds identical rows (Dump compares them). Records at
// or below applied_lsn are skipped, which makes replay idempotent. An apply
// whose preconditions do not hold (for example issuing a request that is not
// pending) is an *ApplyError, never a silent no-op.
//
// # Record types and payloads
//
// Record types are wal.RecordType values owned by this package; the numbers
// never change meaning:
//
//	 1 submit            request submitted, pending
//	 2 issue             pending request issued with a certificate
//	 3 enroll            request submitted and issued in one record
//	 4 deny              pending request denied
//	 5 revoke            certificate revoked (or put on hold, reason 6)
//	 6 unrevoke          certificate released from hold
//	 7 crl               CRL published
//	 8 grant-roles       roles (and a certificate fingerprint) granted to a principal
//	 9 revoke-principal  principal revoked
//	10 backup            backup completed
//	11 import            certificate imported
//	12 need-full-backup  need-full-backup flag set or cleared
//	13 noop              no state change (tests and benchmarks)
//
// A payload is a version byte (1) followed by the record's fields in the
// order below, with nothing after the last field. Field encodings:
//
//	uvarint   unsigned LEB128 (encoding/binary.AppendUvarint)
//	varint    zig-zag signed LEB128 (encoding/binary.AppendVarint)
//	bytes     uvarint length, then the bytes
//	string    uvarint length, then UTF-8 bytes
//	strings   uvarint count, then each string
//	bool      one byte, 0 or 1
//	time      varint microseconds since the Unix epoch, UTC; the zero
//	          time.Time is its own value (-62135596800000000)
//	cert      string serial, bytes DER, string subject, time not-before,
//	          time not-after
//
// Fields per type:
//
//	submit            varint ID, bytes CSR, string subject, string profile,
//	                  string requester, strings SANs, time submitted
//	issue             varint request ID, cert, time issued
//	enroll            the submit fields, cert, time issued
//	deny              varint request ID, string reason, time
//	revoke            string serial, uvarint reason (0-6, 9, 10), time
//	unrevoke          string serial, time
//	crl               uvarint number, bool delta, uvarint base number,
//	                  time this-update, time next-update, bytes DER
//	grant-roles       string principal, strings roles (sorted, unique),
//	                  string fingerprint ("" for none)
//	revoke-principal  string principal, time
//	backup            uvarint type (1 full, 2 logs-only), uvarint first
//	                  generation, uvarint last generation, uvarint first LSN,
//	                  uvarint last LSN, time
//	import            varint request ID, cert, time
//	need-full-backup  bool
//	noop              any bytes (ignored)
//
// Integers that SQLite stores (CRL numbers, LSNs) must not exceed
// math.MaxInt64. A payload that does not decode is ErrRecord.
//
// # Schema (version 1)
//
// All times are INTEGER microseconds since the Unix epoch (UTC); LSN columns
// hold the LSN of the record that made the change.
//
//	meta (one row, id = 1)
//	    schema_version INTEGER      1
//	    db_signature   BLOB(16)     random, made by Create
//	    log_signature  BLOB(16)     the log set's signature
//	    applied_lsn    INTEGER      last record reflected
//	    need_full_backup INTEGER    0 or 1
//	requests (one row per request; the certificate columns are NULL until
//	it is issued — a request has at most one certificate, and one row
//	makes an enroll one insert, measurably cheaper at replay than two)
//	    id INTEGER PRIMARY KEY, status INTEGER (1 pending, 2 issued, 3 denied),
//	    csr BLOB (NULL for imports), subject, profile, requester TEXT,
//	    sans TEXT (JSON array), submitted INTEGER, resolved INTEGER (issue or
//	    deny time; NULL while pending), deny_reason TEXT, imported INTEGER,
//	    submitted_lsn, resolved_lsn INTEGER (0 while pending),
//	    serial TEXT UNIQUE (canonical upper-case hex), der BLOB, cert_subject
//	    TEXT, not_before, not_after INTEGER, revoked INTEGER (0/1),
//	    revocation_reason INTEGER, revoked_at INTEGER (NULL unless revoked),
//	    revoked_lsn INTEGER (last revoke or unrevoke; 0 if never)
//	    index requests_pending on (id) WHERE status = 1
//	    index requests_revoked on (serial) WHERE revoked = 1
//	revocation_events
//	    lsn INTEGER PRIMARY KEY, serial TEXT, revoked INTEGER (1 revoke,
//	    0 release from hold), reason INTEGER (8 for a release), at INTEGER
//	crls
//	    number INTEGER PRIMARY KEY (full and delta share one sequence), delta
//	    INTEGER, base_number INTEGER (0 for a full CRL), this_update,
//	    next_update INTEGER, der BLOB, lsn INTEGER
//	principals (WITHOUT ROWID)
//	    name TEXT PRIMARY KEY, revoked INTEGER, created_lsn, revoked_lsn INTEGER
//	principal_roles (WITHOUT ROWID)
//	    name TEXT, role TEXT, PRIMARY KEY (name, role)
//	principal_certs (WITHOUT ROWID)
//	    fingerprint TEXT PRIMARY KEY (bound to one principal), name TEXT
//	backups
//	    lsn INTEGER PRIMARY KEY, type INTEGER (1 full, 2 logs-only),
//	    first_gen, last_gen, first_lsn, last_lsn, time INTEGER
//
// The database uses 16 KiB pages (fewer, larger WAL writes) and SQLite's
// automatic checkpoints are off: the engine owns checkpoints (see Snapshot).
//
// # Checkpoint file
//
// SysDir/<LogBase>.chk says that the database file is durable at least up
// to LSN X and that crash recovery never needs a generation below G. It is
// 136 bytes, all integers little-endian, written with
// fsutil.WriteFileAtomic (temporary file, fsync, rename, fsync directory;
// a crash leaves the old or the new file, never a mix):
//
//	offset size field
//	     0    8 magic "CSRVCHK\x00" (43 53 52 56 43 48 4B 00)
//	     8    4 format version, uint32, 1
//	    12   16 database signature
//	    28   16 log-set signature
//	    44    8 checkpoint LSN X, uint64
//	    52    4 checkpoint generation G (holds, or will hold, record X+1), uint32, not 0
//	    56    8 time written, int64 nanoseconds since the Unix epoch
//	    64   34 last full backup
//	    98   34 last incremental (logs-only) backup
//	   132    4 CRC-32C (Castagnoli) of bytes 0..131
//
// A backup slot (34 bytes) is all zero when there is none, otherwise:
//
//	offset size field
//	     0    1 1 (present)
//	     1    1 type: 1 full, 2 logs-only
//	     2    4 first generation, uint32
//	     6    4 last generation, uint32
//	    10    8 first LSN, uint64
//	    18    8 last LSN, uint64
//	    26    8 time, int64 microseconds since the Unix epoch
//
// A checkpoint makes the database durable up to X = applied_lsn by fsyncing
// the database file and its -wal file (SQLite reuses WAL space only after a
// completed, fsynced backfill), then writes the file. Checkpoints run every
// Options.CheckpointInterval (default 30 s), as soon as the log has rolled
// Options.CheckpointGenerations (default 4) generations past G, at Open
// after recovery, in RecordBackup, in TruncateLogs and in Close. Recovery
// starts at the database's own applied_lsn, which is at least X, so a
// checkpoint bounds the replay after a power loss.
//
// # Recovery at Open (soft recovery)
//
//  1. The meta row gives the database's signatures and applied_lsn A. A
//     missing database file is ErrNoDatabase; a file without the schema is
//     ErrSchema.
//  2. The checkpoint must have the database's signatures: another
//     database's or log set's checkpoint is a *SignatureError matching
//     ErrCheckpointMismatch; an undecodable one (bad magic, version, CRC,
//     size) ErrCheckpointCorrupt. A missing checkpoint is rebuilt: the
//     database and the logs still say everything recovery needs (A and the
//     log records after it), so Open logs a warning and writes a new one.
//     A checkpoint LSN above A (an older database file put back) is logged
//     as a warning; the replay below repairs it if the logs allow.
//  3. The log is opened expecting the database's log-set signature (another
//     set's generation is a *SignatureError matching ErrSignatureMismatch and
//     wal.ErrSignature, naming the generation); a gap between generations or
//     a log directory without generations is a *MissingLogError naming the
//     generation.
//  4. If the log ends before A, ErrLogBehind. If record A+1 is older than
//     the oldest generation present, a *MissingLogError names the
//     generation that should hold it. Otherwise every record after A is
//     applied, and the count, LSN range, generations and duration are
//     logged (DB.Recovery returns them). A clean Close leaves nothing to
//     replay.
//  5. A fresh checkpoint is written.
//
// # Snapshot protocol
//
// Snapshot gives a consistent image of the database file as of LSN S while
// writers continue; its bytes are read straight from the live database file.
// This is only safe done exactly so:
//
//   - OFD locks. Before the first database file is opened in the process,
//     the store calls sqlite.OFDLocking(true), once. With POSIX locks, any
//     close(2) of any descriptor of the database file in the process — the
//     snapshot reader's, the checkpoint's fsync — would drop SQLite's locks.
//     If OFD locks cannot be enabled (SQLite was used in the process before,
//     or the kernel refuses them), the store refuses to open: ErrOFDLocking.
//   - One owner of SQLite checkpoints. A background goroutine backfills the
//     WAL into the database file (PRAGMA wal_checkpoint(PASSIVE)) every
//     250 ms; it pauses while any snapshot is open. Under steady reads and
//     writes some reader always holds a snapshot of the WAL, so no writer
//     ever starts it over and it would grow with every commit (a gigabyte
//     for a 35 MB database in a 30,000-certificate run); once it passes
//     about 64 MiB the goroutine also runs wal_checkpoint(RESTART), waiting
//     at most 100 ms for the readers (writers wait meanwhile), at most once
//     every 2 s, and SQLite cuts the file back to journal_size_limit.
//   - The fence. Under the checkpoint owner's lock: a PASSIVE checkpoint to
//     shrink the backlog; then the applier is paused and a dedicated
//     connection holds BEGIN IMMEDIATE (no writer can commit);
//     wal_checkpoint(PASSIVE) repeats until every WAL frame is in the
//     database file; a second dedicated connection begins the pinning read
//     transaction and reads meta.applied_lsn (S) and the signatures — the
//     same values the copy's meta row holds — and page_count × page_size
//     (Size); the fence is released. Writers pause for about a millisecond.
//   - The pin. While its read transaction is open, SQLite never backfills
//     into the database file (a checkpoint may not overwrite pages a reader
//     may still read), so the first Size bytes of the file stay those of S.
//     The SQLite WAL grows meanwhile; Close releases the pin (callers must
//     close abandoned snapshots; the backup session's lease does). For the
//     same reason only one snapshot can be open at a time: a second could
//     not see a fully backfilled WAL (ErrSnapshotOpen).
//   - The log hold. The snapshot holds the log (HoldLogs) from the
//     checkpoint generation before the fence (so the fence never waits for
//     a deletion in progress) and, once S is known, from the generation
//     holding record S+1 (Snapshot.LogGen): the first generation a full
//     backup made with it lists. Every checkpoint taken before the fence
//     is at or below S, so that generation is present and at or above the
//     first hold, which keeps it until the second is in place. Until Close,
//     neither circular logging nor TruncateLogs deletes it or a later one,
//     so a full backup is safe from the moment it has its snapshot without
//     doing anything else. A backup that has copied every generation it
//     lists ends the hold with Snapshot.ReleaseLogs before it calls
//     TruncateLogs, which would otherwise keep those generations.
//   - Pacing. ReadAt is background work: it holds its caller back when the
//     log's mean fsync latency (wal.Log.SyncStats) rises above the lowest
//     it has seen by more than a tenth, so a snapshot streamed to a file on
//     the same disk leaves the disk to committing writers (pace.go; a
//     delay-based controller after LEDBAT, RFC 6817, between 32 MB/s and
//     unlimited). With no fsyncs to watch it does not slow down at all.
//     Snapshot.SetPaced(false) turns it off.
//
// # Log truncation, circular logging and log holds
//
// TruncateLogs takes a checkpoint and deletes, oldest first, the
// generations at or below the number asked for that are strictly below the
// checkpoint generation; it never deletes the checkpoint generation or a
// later one, reports exactly which generations it deleted, and says why
// when it deleted none ("nothing: generation 7 holds the checkpoint"). The
// rule that a completed backup must have copied a generation is the
// caller's: it passes the last generation a backup copied. With
// Options.CircularLogging every checkpoint deletes the generations below
// its generation; logs-only backups are then impossible (CircularLogging
// reports it).
//
// A backup in progress holds the generations it lists and serves:
// HoldLogs(g) until the returned release function is called, and every
// open Snapshot from its LogGen (until Snapshot.ReleaseLogs or Close).
// While any hold exists, neither circular logging nor TruncateLogs deletes
// a generation at or above the lowest held one; TruncateLogs then says so
// ("nothing: generation 9 is held by a backup in progress"). A hold makes
// no exception for its owner: a backup ends its holds once it has copied
// what it lists, before it calls TruncateLogs. Holds are in memory only;
// the deletion that a release allows happens at the next checkpoint or
// TruncateLogs.
//
// # Hard recovery
//
// Replay applies log records to a closed database file (a restored
// snapshot): from its applied_lsn+1 (or FromLSN) through UntilLSN, or up to
// the last record appended at or before UntilTime, reading generations from
// several directories (a backup set's, then the live one). Generations must
// form one contiguous chain of the database's log set; a generation present
// in two directories must be byte-identical (ErrLogConflict). Each batch
// advances applied_lsn, so an interrupted Replay resumes. Open then
// continues from the database's applied_lsn with the live log directory.
//
// What restore must arrange: the live log directory must hold the records
// after the restored database's applied_lsn, or end exactly there. After a
// replay that stopped early (UntilLSN/UntilTime) at LSN E, the live log
// still holds later records that Open would apply. CutLogAfter(E) removes
// them from the log directory (wal.TruncateAfter): the generation that
// takes record E+1 is truncated after record E and every later generation
// is moved into a directory the caller names, never deleted; a checkpoint
// that points past E is rewritten. Open then continues the same log set
// from E+1, and the next roll chains the truncated generation as usual.
//
// # Check
//
// Check verifies, offline, the database file (PRAGMA integrity_check, the
// meta row), the checkpoint and every log generation (header, records,
// chain; a torn tail of the newest generation is noted, not a problem) and
// that they agree; CheckReport.String renders the result for people, and
// every problem carries an error matching the sentinels above.
//
// # Tests
//
// The crash test re-runs the test binary as a child that enrolls and
// revokes from 16 goroutines and is killed with SIGKILL 20-300 ms after it
// is ready; the parent reopens the directory and checks that every
// acknowledged write is present exactly once and that integrity_check
// passes (Go driver, and the sqlite3 tool when installed). It runs 20
// rounds; CERTSRV_CRASH_ROUNDS=N runs N.
//
// Benchmarks run only with -bench:
//
//	go test -run '^$' -bench EnrollConcurrent -benchtime=20000x ./internal/store/
//	go test -run '^$' -bench Replay1KiB -benchtime=5x ./internal/store/
//	go test -run '^$' -bench Snapshot1GiB -benchtime=3x -timeout 30m ./internal/store/
//
// The 1 GiB snapshot benchmark builds its database first (about 20 s, 1 GiB
// of disk, plus a transient 1 GiB copy); CERTSRV_BENCH_DIR=DIR keeps the
// database in DIR between runs.
package store
