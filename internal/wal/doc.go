// Package wal is certsrv's transaction log: a set of numbered generation
// files holding typed records, appended durably with group commit, rolled at
// a size limit or on demand, and read back from any LSN with every byte
// verified.
//
// # Files
//
// A log set lives in one directory. Generation g is the file
// <base><g as 8 upper-case hexadecimal digits>.log, for example
// ca0000001A.log for base "ca" and generation 26. Readers accept lower-case
// digits too. Generations are numbered from 1 and a log set's files are
// consecutive: only the oldest may be missing (deleted by DeleteThrough). The
// newest generation is the current one, written by Append; every other is
// sealed and never written again.
//
// A new generation is created durably: its header is written to
// <name>.tmp, fsynced, renamed to <name>, and the directory fsynced. Open
// removes stray <name>.tmp files.
//
// # Header
//
// Every generation starts with a 64-byte header. All integers are
// little-endian; times are signed nanoseconds since the Unix epoch.
//
//	offset size field
//	     0    8 magic "CSRVLOG\x00" (43 53 52 56 4C 4F 47 00)
//	     8    4 format version, uint32, 1
//	    12   16 log-set signature, random, the same in every generation of a set
//	    28    4 generation number, uint32, equal to the one in the file name
//	    32    8 creation time of this generation, int64, not 0
//	    40    8 creation time of generation-1, int64; 0 for generation 1
//	    48    4 final checksum of generation-1, uint32; 0 for generation 1
//	    52    8 first LSN: the LSN the generation's first record has or would
//	            have, uint64; 1 for generation 1
//	    60    4 CRC-32C of bytes 0..59
//
// A reader checks the magic, then the version (another version is ErrVersion,
// whatever the rest holds), then the header CRC, then that the generation
// number, creation time and first LSN are not 0, that generation 1 has first
// LSN 1 and zero predecessor fields, and that a later generation has a
// non-zero predecessor creation time. A generation's creation time is later
// than its predecessor's.
//
// # Records
//
// Records follow the header back to back, with no padding and no trailer:
//
//	offset size field
//	     0    4 length L, uint32: the number of bytes after this field and
//	            the CRC field, i.e. 17 + payload size; 17 <= L <= 17 + MaxPayload
//	     4    4 CRC-32C of bytes 8 .. 8+L-1 (type, LSN, time, payload)
//	     8    1 record type; 0 is invalid
//	     9    8 LSN, uint64
//	    17    8 append time (wall clock when Append was called), int64
//	    25  L-17 payload
//
// LSNs are contiguous across the whole log set: the first record of a
// generation has the LSN in its header's first-LSN field, every next record
// the LSN before plus one, and a generation's first LSN is the LSN after the
// previous generation's last record (or the previous generation's first LSN
// if it has no records). The first record of a log set has LSN 1.
//
// Every CRC in the format is CRC-32C: the Castagnoli polynomial (0x1EDC6F41,
// reversed 0x82F63B78), initial value and final XOR 0xFFFFFFFF, as computed
// by Go's crc32.Checksum with crc32.MakeTable(crc32.Castagnoli).
//
// # Chain
//
// The final checksum of a generation is the CRC-32C of all of its bytes from
// offset 64 (the end of the header) to the end of its last record: every
// record's length, CRC, type, LSN, time and payload. It is 0 for a
// generation without records. When a generation is sealed its final checksum
// and creation time are written into the header of the next generation, so
// a generation that was truncated, extended, altered or swapped for another
// after sealing is found when the next one is read (ErrChain), even if each
// of its records still has a valid CRC.
//
// # Verification and damage
//
// Open, ReadFrom, ReadDir, ScanDir, VerifyGeneration and
// VerifyGenerationBytes verify: the header;
// that the header's generation number is the file name's (a renamed file is
// corruption); that every generation has the expected signature
// (ErrSignature); that generation numbers have no gap (ErrMissingGeneration,
// naming the missing number); the chain (ErrChain); every record's length,
// CRC, type and LSN. Damage is reported as a *CorruptError naming the file,
// the generation and the byte offset; it matches ErrCorrupt and its specific
// sentinel with errors.Is.
//
// Only the newest generation may end in a torn tail, the trace of a crash
// during an append. Reading its records in order, the first bytes that are
// not a whole valid record start a torn tail if they are:
//   - all zero to the end of the file (a zeroed tail), or
//   - fewer than 8 bytes, or a record whose valid length field (17 to
//     17+MaxPayload) runs past the end of the file (a partial record), as
//     long as the part present is a plausible prefix: if the type and LSN
//     fields are present the type is not 0 and the LSN is the expected one,
//     and no whole valid record with the next LSN appears after it, or
//   - a whole record with a bad CRC that is followed only by zero bytes or
//     by nothing (a bad last record).
//
// Open cuts a torn tail: it truncates the file at the end of the last whole
// record, fsyncs it and logs a warning with the offset, the number of bytes
// cut and the reason, unless the cut would leave the log ending before
// Options.MinLastLSN (records the caller knows were acknowledged: the
// database applied them), which makes the bytes damage rather than a torn
// tail: Open then fails with ErrCorrupt and cuts nothing. ReadDir and
// ScanDir treat a torn tail as the end of the log and leave the file alone. Anything else is corruption: a bad record
// followed by bytes that are not all zero, a length field out of range
// followed by bytes that are not all zero, a record of type 0 or with an
// unexpected LSN even though its CRC is valid, and any damage at all in a
// generation that is not the newest.
//
// A newest generation that is empty or shorter than a header, or all zero,
// is a torn creation (a crash while a generation was being created, on a file
// system that lost the header): when an older generation precedes it and
// verifies, Open removes it and creates it again from the older one, and
// ReadDir ignores it. When it is the only generation, or when an older
// generation has a short header, it is corruption.
//
// # Writing
//
// Append queues the encoded record; one writer goroutine takes everything
// queued, writes it with one write per generation touched and one fsync, and
// then wakes every appender whose record is durable (group commit). A record
// that would take the current generation past Options.SegmentSize (default
// DefaultSegmentSize, 4 MiB) first rolls to a new generation; a record larger
// than the segment size goes alone into a fresh generation. A failed write,
// fsync or generation creation fails the Log: every later Append returns the
// error, since after a failed fsync the file's state is unknown. Open repairs
// whatever such a failure left. The exception is a full file system (ENOSPC,
// EDQUOT) reported by a write or by the creation of a generation, never by
// an fsync: the writer truncates the current generation back to its last
// fsynced size, fsyncs that, drops every record not yet durable (their
// Appends, and a Roll whose generation was not created, return
// ErrNoSpace), hands their LSNs out again, and goes on; an Append after
// space was freed succeeds.
//
// # Reading
//
// ReadFrom (on an open Log) and ReadDir (read-only, on a directory) call a
// function for every record from a given LSN on. A Record's Payload is
// never reused by the package; the receiver may keep it. ScanDir and
// VerifyGeneration return GenInfo values, for offline checks and for
// verifying generations one by one. VerifyGenerationBytes and DecodeHeader
// make the same checks as VerifyGeneration and ReadHeader on bytes already
// in memory (the file readers are thin wrappers over them), so a backup
// verifies exactly the bytes it sends.
//
// # Cutting the log
//
// TruncateAfter makes a closed log set end after a given record, for a
// point-in-time restore. The generation that will take the next record (the
// newest whose first LSN is at most that LSN plus one) is truncated after
// the record and fsynced; every later generation file is moved, newest
// first, into a directory the caller names, never deleted. The truncated
// generation is then the newest: exactly like a newest generation whose torn
// tail was cut, its records are appended to and its final checksum goes into
// the next generation's header at the next roll. The header of the cut
// generation is not rewritten, so the file format and the chain are those
// above; a crash part way leaves a contiguous log that still verifies and
// ends at or after the cut point, and repeating the call completes it.
//
// # Tests
//
// The crash test re-runs the test binary as a child that appends from 16
// goroutines and is killed with SIGKILL at a random moment, then checks every
// acknowledged record after reopening. It runs 20 rounds; set
// CERTSRV_CRASH_ROUNDS=N for N rounds.
package wal
