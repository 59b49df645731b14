package backupset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// File type tags of a restore map, with the values of certbcli.h.
const (
	// TagDatabase is CSBFT_CERTSERVER_DATABASE, 'D' (0x44): the database
	// file.
	TagDatabase byte = 0x44
	// TagLog is CSBFT_LOG, '!' (0x21): a log generation. It appears in
	// backup file lists, not in restore maps.
	TagLog byte = 0x21
	// TagLogDir is CSBFT_LOG_DIR (0x82): the log directory.
	TagLogDir byte = 0x82
	// TagCheckpointDir is CSBFT_CHECKPOINT_DIR (0x83): the checkpoint
	// directory.
	TagCheckpointDir byte = 0x83
)

// RestoreMapFile is the restore map's file name inside DataBase/.
const RestoreMapFile = "certbkxp.dat"

// restoreMapHeader is the first line of a version-1 restore map.
const restoreMapHeader = "certsrv-restore-map 1"

// maxRestoreMap bounds the size of a restore map a reader accepts.
const maxRestoreMap = 64 << 10

// RestoreEntry is one entry of a restore map: a certbcli.h tag and an
// absolute path on the CA host.
type RestoreEntry struct {
	Tag  byte
	Path string
}

// RestoreMap is the restore map exactly as RestoreGetDatabaseLocations
// returned it: entries in the server's order. doc.go gives its file form.
type RestoreMap struct {
	Entries []RestoreEntry
}

// lookup returns the path of the entry tagged tag, or "".
func (m RestoreMap) lookup(tag byte) string {
	for _, e := range m.Entries {
		if e.Tag == tag {
			return e.Path
		}
	}
	return ""
}

// Database returns the database file path (tag 0x44), or "" when absent.
func (m RestoreMap) Database() string { return m.lookup(TagDatabase) }

// LogDir returns the log directory (tag 0x82), or "" when absent.
func (m RestoreMap) LogDir() string { return m.lookup(TagLogDir) }

// CheckpointDir returns the checkpoint directory (tag 0x83), or "" when
// absent.
func (m RestoreMap) CheckpointDir() string { return m.lookup(TagCheckpointDir) }

// Equal reports whether m and o have the same entries in the same order.
func (m RestoreMap) Equal(o RestoreMap) bool {
	if len(m.Entries) != len(o.Entries) {
		return false
	}
	for i := range m.Entries {
		if m.Entries[i] != o.Entries[i] {
			return false
		}
	}
	return true
}

// Validate checks what a restore needs: exactly one entry each for the
// database (0x44), the log directory (0x82) and the checkpoint directory
// (0x83), no other tag, and every path absolute, non-empty valid UTF-8
// without line breaks or NUL. It returns an error matching
// ErrBadRestoreMap.
func (m RestoreMap) Validate() error {
	seen := map[byte]bool{}
	for i, e := range m.Entries {
		switch e.Tag {
		case TagDatabase, TagLogDir, TagCheckpointDir:
		default:
			return fmt.Errorf("%w: entry %d has tag 0x%02X; a restore map holds only 0x44, 0x82 and 0x83", ErrBadRestoreMap, i, e.Tag)
		}
		if seen[e.Tag] {
			return fmt.Errorf("%w: tag 0x%02X appears twice", ErrBadRestoreMap, e.Tag)
		}
		seen[e.Tag] = true
		if err := checkMapPath(e.Path); err != nil {
			return fmt.Errorf("%w: entry %d (tag 0x%02X): %v", ErrBadRestoreMap, i, e.Tag, err)
		}
	}
	for _, t := range []byte{TagDatabase, TagLogDir, TagCheckpointDir} {
		if !seen[t] {
			return fmt.Errorf("%w: no entry with tag 0x%02X", ErrBadRestoreMap, t)
		}
	}
	return nil
}

func checkMapPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case !utf8.ValidString(p):
		return fmt.Errorf("path is not valid UTF-8")
	case strings.ContainsAny(p, "\r\n\x00"):
		return fmt.Errorf("path %q contains a line break or NUL", p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	}
	return nil
}

// Marshal returns the file form of m (see doc.go). It fails with
// ErrBadRestoreMap when m does not Validate.
func (m RestoreMap) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(restoreMapHeader + "\n")
	for _, e := range m.Entries {
		fmt.Fprintf(&b, "%02X %s\n", e.Tag, e.Path)
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString("sha256 " + hex.EncodeToString(sum[:]) + "\n")
	return b.Bytes(), nil
}

// ParseRestoreMap decodes the file form of a restore map and checks its
// checksum and content (Validate). Every failure matches ErrBadRestoreMap.
func ParseRestoreMap(b []byte) (RestoreMap, error) {
	if len(b) > maxRestoreMap {
		return RestoreMap{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadRestoreMap, len(b), maxRestoreMap)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return RestoreMap{}, fmt.Errorf("%w: does not end with a line feed", ErrBadRestoreMap)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) < 2 {
		return RestoreMap{}, fmt.Errorf("%w: too short", ErrBadRestoreMap)
	}
	if lines[0] != restoreMapHeader {
		if strings.HasPrefix(lines[0], "certsrv-restore-map ") {
			return RestoreMap{}, fmt.Errorf("%w: unknown version line %q", ErrBadRestoreMap, lines[0])
		}
		return RestoreMap{}, fmt.Errorf("%w: first line %q is not %q", ErrBadRestoreMap, lines[0], restoreMapHeader)
	}
	last := lines[len(lines)-1]
	sumHex, ok := strings.CutPrefix(last, "sha256 ")
	if !ok {
		return RestoreMap{}, fmt.Errorf("%w: last line is not \"sha256 <hex>\"", ErrBadRestoreMap)
	}
	want, err := hex.DecodeString(sumHex)
	if err != nil || len(want) != sha256.Size || strings.ToLower(sumHex) != sumHex {
		return RestoreMap{}, fmt.Errorf("%w: checksum %q is not 64 lower-case hex digits", ErrBadRestoreMap, sumHex)
	}
	body := b[:len(b)-len(last)-1]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], want) {
		return RestoreMap{}, fmt.Errorf("%w: checksum mismatch: file says %s, content has %x", ErrBadRestoreMap, sumHex, got)
	}
	var m RestoreMap
	for i, l := range lines[1 : len(lines)-1] {
		tagHex, path, ok := strings.Cut(l, " ")
		if !ok || len(tagHex) != 2 {
			return RestoreMap{}, fmt.Errorf("%w: line %d is not \"<2 hex digits> <path>\"", ErrBadRestoreMap, i+2)
		}
		tag, err := strconv.ParseUint(tagHex, 16, 8)
		if err != nil {
			return RestoreMap{}, fmt.Errorf("%w: line %d: tag %q is not hexadecimal", ErrBadRestoreMap, i+2, tagHex)
		}
		m.Entries = append(m.Entries, RestoreEntry{Tag: byte(tag), Path: path})
	}
	if err := m.Validate(); err != nil {
		return RestoreMap{}, err
	}
	return m, nil
}

// ReadRestoreMap reads and parses the restore map file at path.
func ReadRestoreMap(path string) (RestoreMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RestoreMap{}, fmt.Errorf("read restore map %s: %w", path, err)
	}
	m, err := ParseRestoreMap(b)
	if err != nil {
		return RestoreMap{}, fmt.Errorf("read restore map %s: %w", path, err)
	}
	return m, nil
}
