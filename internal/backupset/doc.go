// Package backupset reads, writes and verifies a certsrv backup set: the
// directory `certadm backup DIR` writes and `certsrv restore DIR` and
// `certadm verify DIR` read. It works on local files only; copying from a
// server is the caller's business.
//
// # Layout
//
//	DIR/manifest.json            the manifest (below); written last
//	DIR/DataBase/<CA>.db         the database snapshot (kind "database")
//	DIR/DataBase/<base><8 hex>.log  log generations, for example
//	                             ca0000001A.log (kind "log"); a logs-only
//	                             backup adds its generations here
//	DIR/DataBase/certbkxp.dat    the restore map (kind "restore-map", below)
//	DIR/Dynamic/<name>           CA certificates and CRLs (kind "dynamic")
//	DIR/Config/certsrv.json      the CA's configuration (kind "config")
//	DIR/<CA>.p12                 CA key and chain, PKCS#12 (kind "key"),
//	                             only when asked for
//	DIR/verified.json            written by a verifier; not in the manifest
//
// Nothing else belongs in a set. Names starting with "." and names ending in
// ".part" are never set files. Files are created with mode 0600 and
// directories with mode 0700, since the database and the key file are
// confidential.
//
// # Writing
//
// Every file is written as <name>.part, its SHA-256 computed from the bytes
// as they are written, fsynced, renamed to <name>, and its directory
// fsynced. The manifest is written the same way (manifest.json.part), after
// every other file, and only once the files were checked. So a set is
// either complete (a manifest whose files all match) or visibly incomplete:
// no manifest.json, or a *.part file (ErrIncomplete). A full backup goes
// into an empty directory (Clear empties one that holds a set). A logs-only
// backup is appended to a complete set: AppendIncremental checks, before any
// file is copied, that it comes from the same CA and log set and continues
// the chain, and its Commit replaces the manifest atomically; until then
// the old manifest stays valid, and Abort removes the new logs.
//
// # manifest.json (format 1)
//
// A JSON object with exactly these members (unknown members are an error):
//
//	format    1
//	ca        object:
//	  name                the CA's name
//	  certificate_sha256  SHA-256 of the CA certificate's DER, 64 lower-case hex digits
//	  db_signature        the database signature, 32 lower-case hex digits
//	  log_signature       the log-set signature, 32 lower-case hex digits
//	  log_base            the log file name base, e.g. "ca"
//	backups   array, oldest first: one "full" backup, then "logs-only" ones:
//	  type                "full" or "logs-only"
//	  first_generation    the first log generation the backup copied
//	  last_generation     the last one
//	  first_lsn           the first LSN the first generation holds or would
//	                      hold (its header's first-LSN field)
//	  last_lsn            the LSN of the last record of the last generation
//	                      (first_lsn-1 when the generations hold no record)
//	  snapshot_lsn        full: the LSN the database snapshot reflects (its
//	                      meta.applied_lsn), S; logs-only: 0
//	  time                when the backup ended, RFC 3339 UTC
//	  server              the address it was taken from
//	  certsrv_version     the server's version
//	files     array, one object per file of the set:
//	  path                relative to DIR, "/"-separated, e.g. "DataBase/ca00000003.log"
//	  kind                database | log | restore-map | dynamic | config | key
//	  size                bytes
//	  sha256              64 lower-case hex digits
//	  backup              index in backups of the backup that wrote the file
//	notes     array of strings: what a reader should know (for example that
//	          the configuration could not be included)
//	checksum  64 lower-case hex digits, defined below
//
// Every number in the manifest is an integer from 0 to 2^53-1. A set has one
// database file and one restore map, written by the full backup, and at most
// one configuration file; logs-only backups write only logs.
//
// The checksum is computed as follows: decode manifest.json as JSON; set the
// top-level member "checksum" to the empty string; serialize the result as
// RFC 8785 JSON Canonicalization Scheme (members sorted by the UTF-16 code
// units of their names, no insignificant white space, integers in decimal,
// strings with only '"', '\', and U+0000..U+001F escaped, as \b \t \n \f \r
// or \u00xx with lower-case hex); the checksum is the lower-case hex SHA-256
// of those bytes. The file itself may be formatted in any way (the writer
// indents it). Because the JSON is decoded first, any edit of a member's
// name or value, an added or removed member, or a reordered array changes
// the checksum; re-indenting or reordering an object's members does not.
//
// The chain of backups is continuous: the full backup's logs continue its
// snapshot (first_lsn <= snapshot_lsn+1 <= last_lsn+1), and each logs-only
// backup starts at the previous backup's last_generation+1 and last_lsn+1.
// The log generations in the set are exactly those of the backups' ranges,
// every one carries the log-set signature, and each chains to the one
// before (internal/wal's header chain).
//
// # certbkxp.dat (restore map, version 1)
//
// The restore map exactly as RestoreGetDatabaseLocations returned it, as
// UTF-8 text, every line ending in a line feed (0x0A), no carriage returns:
//
//	certsrv-restore-map 1
//	44 /var/lib/certsrv/db/Example CA.db
//	82 /var/lib/certsrv/log
//	83 /var/lib/certsrv/sys
//	sha256 6f1c...(64 lower-case hex digits)
//
// The first line is the version line. Each entry line is the certbcli.h tag
// as two hexadecimal digits (written upper-case, read in either case), one
// space, and the absolute path on the CA host up to the end of the line (it
// may contain spaces; it may not contain a line feed, carriage return or
// NUL). Entries keep the server's order. Version 1 holds exactly one entry
// each for tags 44 (the database file, 'D'), 82 (the log directory) and 83
// (the checkpoint directory). The last line is "sha256 " and the SHA-256, in
// lower-case hex, of every byte of the file before that line (the version
// line and the entry lines with their line feeds). Nothing follows it.
//
// The format needs nothing but the public certadm API and a SHA-256 to
// write, so a third-party backup program (see examples/backup-scenario)
// can write DataBase/, Dynamic/ and certbkxp.dat without a manifest; such a
// set without manifest.json is a "raw" set, which a later reader will accept
// by recomputing what the manifest would hold.
//
// # Reading the database snapshot
//
// ReadDBMeta opens the snapshot read-only and immutable (SQLite takes no
// lock and creates no -wal or -shm file in the set) and reads
// meta.db_signature, meta.log_signature and meta.applied_lsn.
//
// # Tests
//
// The tests build real log generations with internal/wal and real SQLite
// databases, write sets, and damage them one way at a time. The benchmark
// BenchmarkAddFile measures writing a file into a set; set
// CERTSRV_BACKUPSET_BENCH_MB to change its size (default 256).
package backupset
