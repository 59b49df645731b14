package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"time"

	"github.com/certsrv/certsrv/internal/fsutil"
)

// Checkpoint is the content of the checkpoint file: the database's state is
// durable at least up to LSN, and crash recovery never needs a generation
// below Gen. doc.go gives the byte layout.
type Checkpoint struct {
	Signatures
	LSN             uint64        // every record <= LSN is durable in the database file
	Gen             uint32        // generation holding (or to hold) record LSN+1
	Written         time.Time     // when the file was written
	LastFull        *BackupRecord // last completed full backup, nil if none
	LastIncremental *BackupRecord // last completed logs-only backup, nil if none
}

// Checkpoint file layout constants (see doc.go).
const (
	checkpointVersion = 1
	checkpointSize    = 136
	backupSlotSize    = 34
)

var (
	checkpointMagic = [8]byte{'C', 'S', 'R', 'V', 'C', 'H', 'K', 0}
	castagnoli      = crc32.MakeTable(crc32.Castagnoli)
)

// encodeCheckpoint returns the checkpointSize bytes of c.
func encodeCheckpoint(c Checkpoint) []byte {
	b := make([]byte, checkpointSize)
	copy(b[0:8], checkpointMagic[:])
	binary.LittleEndian.PutUint32(b[8:12], checkpointVersion)
	copy(b[12:28], c.Database[:])
	copy(b[28:44], c.Log[:])
	binary.LittleEndian.PutUint64(b[44:52], c.LSN)
	binary.LittleEndian.PutUint32(b[52:56], c.Gen)
	binary.LittleEndian.PutUint64(b[56:64], uint64(c.Written.UnixNano()))
	encodeBackupSlot(b[64:64+backupSlotSize], c.LastFull)
	encodeBackupSlot(b[98:98+backupSlotSize], c.LastIncremental)
	binary.LittleEndian.PutUint32(b[132:136], crc32.Checksum(b[0:132], castagnoli))
	return b
}

func encodeBackupSlot(b []byte, r *BackupRecord) {
	if r == nil {
		return // all zero: absent
	}
	b[0] = 1
	b[1] = byte(r.Type)
	binary.LittleEndian.PutUint32(b[2:6], r.FirstGen)
	binary.LittleEndian.PutUint32(b[6:10], r.LastGen)
	binary.LittleEndian.PutUint64(b[10:18], r.FirstLSN)
	binary.LittleEndian.PutUint64(b[18:26], r.LastLSN)
	binary.LittleEndian.PutUint64(b[26:34], uint64(timeMicros(r.Time)))
}

// decodeCheckpoint decodes a checkpoint file's bytes; the error says what is
// wrong and at which offset.
func decodeCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) != checkpointSize {
		return Checkpoint{}, fmt.Errorf("size %d bytes, want %d", len(b), checkpointSize)
	}
	if !bytes.Equal(b[0:8], checkpointMagic[:]) {
		return Checkpoint{}, errors.New("bad magic at offset 0")
	}
	if v := binary.LittleEndian.Uint32(b[8:12]); v != checkpointVersion {
		return Checkpoint{}, fmt.Errorf("format version %d at offset 8, want %d", v, checkpointVersion)
	}
	if got, want := crc32.Checksum(b[0:132], castagnoli), binary.LittleEndian.Uint32(b[132:136]); got != want {
		return Checkpoint{}, fmt.Errorf("checksum %08x, stored %08x at offset 132", got, want)
	}
	var c Checkpoint
	copy(c.Database[:], b[12:28])
	copy(c.Log[:], b[28:44])
	c.LSN = binary.LittleEndian.Uint64(b[44:52])
	c.Gen = binary.LittleEndian.Uint32(b[52:56])
	c.Written = time.Unix(0, int64(binary.LittleEndian.Uint64(b[56:64]))).UTC()
	var err error
	if c.LastFull, err = decodeBackupSlot(b[64 : 64+backupSlotSize]); err != nil {
		return Checkpoint{}, fmt.Errorf("last full backup at offset 64: %w", err)
	}
	if c.LastIncremental, err = decodeBackupSlot(b[98 : 98+backupSlotSize]); err != nil {
		return Checkpoint{}, fmt.Errorf("last incremental backup at offset 98: %w", err)
	}
	if c.Gen == 0 {
		return Checkpoint{}, errors.New("generation 0 at offset 52")
	}
	return c, nil
}

func decodeBackupSlot(b []byte) (*BackupRecord, error) {
	switch b[0] {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("presence byte %d", b[0])
	}
	r := &BackupRecord{
		Type:     BackupType(b[1]),
		FirstGen: binary.LittleEndian.Uint32(b[2:6]),
		LastGen:  binary.LittleEndian.Uint32(b[6:10]),
		FirstLSN: binary.LittleEndian.Uint64(b[10:18]),
		LastLSN:  binary.LittleEndian.Uint64(b[18:26]),
		Time:     fromMicros(int64(binary.LittleEndian.Uint64(b[26:34]))),
	}
	if r.Type != BackupFull && r.Type != BackupLogsOnly {
		return nil, fmt.Errorf("backup type %d", b[1])
	}
	return r, nil
}

// readCheckpoint reads and decodes the checkpoint file at path. A missing
// file is a *CheckpointError matching ErrCheckpointMissing, an undecodable
// one matches ErrCheckpointCorrupt.
func readCheckpoint(path string) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Checkpoint{}, &CheckpointError{Path: path, Reason: "no such file", Err: ErrCheckpointMissing}
		}
		return Checkpoint{}, &CheckpointError{Path: path, Reason: "read", Err: err}
	}
	c, err := decodeCheckpoint(b)
	if err != nil {
		return Checkpoint{}, &CheckpointError{Path: path, Reason: err.Error(), Err: ErrCheckpointCorrupt}
	}
	return c, nil
}

// checkCheckpointSignatures compares a checkpoint's signatures with the
// database's; a difference is a *SignatureError matching
// ErrCheckpointMismatch.
func checkCheckpointSignatures(path string, c Checkpoint, db Signatures) error {
	if c.Database != db.Database {
		return &SignatureError{Which: "checkpoint", Path: path, Want: db.Database, Got: c.Database, Err: ErrCheckpointMismatch}
	}
	if c.Log != db.Log {
		return &SignatureError{Which: "checkpoint", Path: path, Want: db.Log, Got: c.Log, Err: ErrCheckpointMismatch}
	}
	return nil
}

// writeCheckpoint replaces the checkpoint file durably (fsutil.WriteFileAtomic:
// temp file, fsync, rename, fsync directory). A crash leaves either the old
// or the new checkpoint, plus at most a stray .tmp file.
func writeCheckpoint(path string, c Checkpoint) error {
	if err := fsutil.WriteFileAtomic(path, encodeCheckpoint(c), 0o600); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
