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
//	DIR/verified.json.tmp        what a verifier interrupted while writing
//	                             verified.json leaves; not in the manifest
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
// # manifest.json (format 2)
//
// A JSON object with exactly these members (unknown members are an error):
//
//	format      2 (1 is still read: no chunk_size, no chunk_sha256)
//	chunk_size  the size of the pieces chunk_sha256 lists digests of, a
//	            power of two from 1 MiB to 1 GiB (the Writer: 16 MiB)
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
//	  sha256              for a file of at most chunk_size bytes (format 1:
//	                      every file): its SHA-256, 64 lower-case hex digits
//	  chunk_sha256        for a larger file, instead: the SHA-256 of each
//	                      chunk_size bytes in order (the last piece shorter),
//	                      ceil(size/chunk_size) of them; Verify hashes them
//	                      on several cores and names the damaged range
//	  backup              index in backups of the backup that wrote the file
//	notes     array of strings: what a reader should know (for example that
//	          the configuration could not be included)
//	checksum  64 lower-case hex digits, defined below
//
// Every number in the manifest is an integer from 0 to 2^53-1. A set has one
// database file and one restore map, written by the full backup, and at most
// one configuration file; logs-only backups write only logs. A logs-only
// backup appended to a format-1 set makes its manifest format 2 with a
// chunk_size of 16 MiB; the older files keep their whole-file digests.
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
// write, so a third-party backup program (see examples/backup-scenario and
// examples/c/backup_scenario.c) can write DataBase/, Dynamic/ and
// certbkxp.dat without a manifest (below).
//
// # Sets without a manifest
//
// Derive describes a set that has no manifest.json from its files, and
// Load opens a set with Open when it has a manifest and with Derive when it
// has none. The description has the manifest's form (Set.Manifest;
// HasManifest is false):
//
//   - the database snapshot is the one DataBase/*.db file (of several, the
//     one the restore map names, else the first by name; the others are
//     extra files); its name without ".db" is the CA's name; its meta row
//     gives the database and log-set signatures and S;
//   - the log base is the configuration's when Config/certsrv.json parses
//     and the set holds logs of that base, else the only base present,
//     else "ca" when present, else the first by name; logs of other bases
//     are extra files. Only names exactly as internal/wal writes them
//     (<base><8 upper-case hex digits>.log) are log generations;
//   - one full backup covers the generations present: first_lsn from the
//     first one's header, last_lsn from the last one (read and verified by
//     itself), snapshot_lsn S;
//   - the files are those that fit the layout (DataBase/<CA>.db, the log
//     generations, DataBase/certbkxp.dat, Dynamic/<name>,
//     Config/certsrv.json, <name>.p12 at the top), with their sizes and no
//     digests;
//   - the CA certificate's SHA-256 is that of the certificate in Dynamic/
//     (DER, or PEM "CERTIFICATE" blocks) that is a CA certificate whose
//     subject common name is the CA's name, Dynamic/<CA>.crt first; empty
//     when there is none.
//
// Verify of a derived set checks what the files show: the layout (extra and
// *.part files), that every file found is still there with its size, the
// restore map (present, checksum, and its database entry names the set's
// database file), the configuration when present (it names the set's CA
// and log base), the database (as long as its SQLite header says, its
// signatures and S unchanged, and SQLite's PRAGMA quick_check), and the
// log generations as one chain: no gap, each holding the generation its
// name says, carrying the database's log-set signature, every record and
// the header chain intact, continuing the snapshot (first LSN <= S+1, last
// LSN >= S). What only a manifest can show is not checked: file digests
// (content that SQLite's structure checks do not cover, dynamic files, the
// key file), a missing last generation (the chain just ends earlier), the
// split of the chain into backups, and the CA certificate's identity beyond
// its name. A logs-only backup is never appended to a derived set.
//
// # Reading the database snapshot
//
// ReadDBMeta opens the snapshot read-only and immutable (SQLite takes no
// lock and creates no -wal or -shm file in the set) and reads
// meta.db_signature, meta.log_signature and meta.applied_lsn. Verify also
// reads the 100-byte SQLite header: page size (bytes 16-17, big-endian; 1
// means 65536), file change counter (24-27), database size in pages
// (28-31) and version-valid-for number (92-95). When the size is not zero
// and the last two numbers agree, a file shorter than page size times
// pages was truncated (ErrTruncated); a file that is not a whole number of
// pages was cut or extended (ErrSizeMismatch).
//
// # Tests
//
// The tests build real log generations with internal/wal and real SQLite
// databases, write sets (with and without a manifest), and damage them one
// way at a time. The benchmark
// BenchmarkAddFile measures writing a file into a set; set
// CERTSRV_BACKUPSET_BENCH_MB to change its size (default 256).
package backupset
