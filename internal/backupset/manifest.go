package backupset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certsrv/certsrv/internal/wal"
)

// ManifestFormat is the manifest format version this package writes. It
// reads every format from 1 to ManifestFormat: format 2 added chunk_size
// and the per-chunk digests of large files (chunk_sha256); a format-1
// manifest is a format-2 one without them.
const ManifestFormat = 2

// Chunk sizes a manifest may record: a power of two from MinChunkSize to
// MaxChunkSize. DefaultChunkSize is the one a new set is written with.
const (
	MinChunkSize     = 1 << 20
	MaxChunkSize     = 1 << 30
	DefaultChunkSize = 16 << 20
)

// chunkSize is the chunk size a new set is written with; tests lower it to
// exercise chunked files without writing large ones.
var chunkSize int64 = DefaultChunkSize

// Names of the files and directories of a set (doc.go describes them).
const (
	ManifestFile = "manifest.json"
	VerifiedFile = "verified.json"
	// VerifiedTmpFile is the temporary file a verifier writes
	// verified.json through; a crash can leave it behind.
	VerifiedTmpFile = VerifiedFile + ".tmp"
	DatabaseDir     = "DataBase"
	DynamicDir      = "Dynamic"
	ConfigDir       = "Config"
	ConfigFile      = "certsrv.json"
	// PartSuffix marks a file being written.
	PartSuffix = ".part"
)

// Kind says what a file of a set is.
type Kind string

// The kinds of file in a set.
const (
	KindDatabase   Kind = "database"    // DataBase/<CA>.db, the snapshot
	KindLog        Kind = "log"         // DataBase/<base><8 hex>.log
	KindRestoreMap Kind = "restore-map" // DataBase/certbkxp.dat
	KindDynamic    Kind = "dynamic"     // Dynamic/<name>
	KindConfig     Kind = "config"      // Config/certsrv.json
	KindKey        Kind = "key"         // <name>.p12
)

// BackupType is the type of one backup in a set's chain.
type BackupType string

// The backup types.
const (
	BackupFull     BackupType = "full"
	BackupLogsOnly BackupType = "logs-only"
)

// Manifest is manifest.json. doc.go states every field's meaning and the
// checksum rule.
type Manifest struct {
	Format int `json:"format"`
	// ChunkSize is the size of the pieces whose digests ChunkSHA256 lists
	// (format 2; 0 in format 1).
	ChunkSize int64       `json:"chunk_size,omitempty"`
	CA        CAIdentity  `json:"ca"`
	Backups   []Backup    `json:"backups"`
	Files     []FileEntry `json:"files"`
	Notes     []string    `json:"notes"`
	Checksum  string      `json:"checksum"`
}

// CAIdentity names the CA and database a set belongs to.
type CAIdentity struct {
	Name         string `json:"name"`
	CertSHA256   string `json:"certificate_sha256"`
	DBSignature  string `json:"db_signature"`
	LogSignature string `json:"log_signature"`
	LogBase      string `json:"log_base"`
}

// Backup is one backup of a set's chain: the full backup first, then each
// logs-only backup appended to it.
type Backup struct {
	Type           BackupType `json:"type"`
	FirstGen       uint32     `json:"first_generation"`
	LastGen        uint32     `json:"last_generation"`
	FirstLSN       uint64     `json:"first_lsn"`
	LastLSN        uint64     `json:"last_lsn"`
	SnapshotLSN    uint64     `json:"snapshot_lsn"`
	Time           time.Time  `json:"time"`
	Server         string     `json:"server"`
	CertsrvVersion string     `json:"certsrv_version"`
}

// FileEntry is one file of a set. Path is relative to the set directory and
// slash-separated; Backup is the index in Manifest.Backups of the backup
// that wrote the file. A file carries either SHA256, the digest of the
// whole file, or, when it is larger than the manifest's chunk size,
// ChunkSHA256, the digest of each ChunkSize bytes in order (the last piece
// shorter), which a verifier can check on several cores at once. A set
// Derive describes carries neither.
type FileEntry struct {
	Path        string   `json:"path"`
	Kind        Kind     `json:"kind"`
	Size        int64    `json:"size"`
	SHA256      string   `json:"sha256,omitempty"`
	ChunkSHA256 []string `json:"chunk_sha256,omitempty"`
	Backup      int      `json:"backup"`
}

// setDigests records the digests writeFile returned for e: one digest is
// the whole file's, several are its chunks'.
func (e *FileEntry) setDigests(sums []string) {
	e.SHA256, e.ChunkSHA256 = "", nil
	if len(sums) == 1 {
		e.SHA256 = sums[0]
	} else {
		e.ChunkSHA256 = sums
	}
}

// chunks returns how many pieces of chunk bytes a file of size bytes has
// (at least one: an empty file is one empty piece).
func chunks(size, chunk int64) int {
	if size <= chunk {
		return 1
	}
	return int((size + chunk - 1) / chunk)
}

// cloneFiles returns a deep copy of files.
func cloneFiles(files []FileEntry) []FileEntry {
	c := slices.Clone(files)
	for i := range c {
		c[i].ChunkSHA256 = slices.Clone(c[i].ChunkSHA256)
	}
	return c
}

// DigestBytes returns the bytes of the files whose digests Verify checks:
// every file of a set with a manifest, none of a derived set (Derive),
// whose files carry no digest. A progress display's total.
func (m *Manifest) DigestBytes() int64 {
	var n int64
	for _, f := range m.Files {
		if f.SHA256 != "" || len(f.ChunkSHA256) > 0 {
			n += f.Size
		}
	}
	return n
}

// clone returns a deep copy of m.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Backups = append([]Backup(nil), m.Backups...)
	c.Files = cloneFiles(m.Files)
	c.Notes = append([]string(nil), m.Notes...)
	return &c
}

// LastBackup returns the newest backup of the chain.
func (m *Manifest) LastBackup() Backup { return m.Backups[len(m.Backups)-1] }

// readableFormat reports whether f is a format this package reads, 1 to
// ManifestFormat.
func readableFormat(f json.Number) bool {
	n, err := strconv.Atoi(f.String())
	return err == nil && n >= 1 && n <= ManifestFormat
}

// manifestChecksum returns the checksum of the manifest whose JSON is b:
// the lower-case hex SHA-256 of the RFC 8785 serialization of the decoded
// JSON with the top-level "checksum" member set to "". It also returns the
// checksum the JSON records.
func manifestChecksum(b []byte) (computed, recorded string, err error) {
	v, err := decodeGeneric(b)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return "", "", fmt.Errorf("%w: not a JSON object", ErrManifestFormat)
	}
	if f, ok := obj["format"].(json.Number); !ok || !readableFormat(f) {
		return "", "", fmt.Errorf("%w: format %v, want 1 to %d", ErrManifestFormat, obj["format"], ManifestFormat)
	}
	recorded, ok = obj["checksum"].(string)
	if !ok {
		return "", "", fmt.Errorf("%w: no string member \"checksum\"", ErrManifestFormat)
	}
	obj["checksum"] = ""
	c, err := canonicalJSON(nil, obj)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), recorded, nil
}

// marshalManifest sets m.Checksum and returns the file content: indented
// JSON with a final line feed.
func marshalManifest(m *Manifest) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	m.Checksum = ""
	if m.Notes == nil {
		m.Notes = []string{} // an empty array, not null
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	sum, _, err := manifestChecksum(raw)
	if err != nil {
		return nil, err
	}
	m.Checksum = sum
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(out, '\n'), nil
}

// parseManifest decodes manifest.json: the format version, the checksum
// (ErrManifestChecksum), then the fields, strictly, and their consistency
// (ErrManifestFormat).
func parseManifest(b []byte) (*Manifest, error) {
	computed, recorded, err := manifestChecksum(b)
	if err != nil {
		return nil, err
	}
	if !isHexDigest(recorded) {
		return nil, fmt.Errorf("%w: checksum %q is not 64 lower-case hex digits", ErrManifestFormat, recorded)
	}
	if computed != recorded {
		return nil, fmt.Errorf("%w: manifest records %s, its content has %s", ErrManifestChecksum, recorded, computed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// validate checks the manifest's own consistency: values well-formed, the
// chain typed full then logs-only, paths fitting the layout, one database
// and one restore map. It does not look at the files. Errors match
// ErrManifestFormat (or ErrBadPath for a path, which also matches it).
func (m *Manifest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrManifestFormat, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Format < 1 || m.Format > ManifestFormat:
		return bad("format %d, want 1 to %d", m.Format, ManifestFormat)
	case m.Format == 1 && m.ChunkSize != 0:
		return bad("chunk_size in a format-1 manifest")
	case m.Format >= 2 && (m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize || m.ChunkSize&(m.ChunkSize-1) != 0):
		return bad("chunk_size %d is not a power of two from %d to %d", m.ChunkSize, MinChunkSize, MaxChunkSize)
	case m.CA.Name == "":
		return bad("empty CA name")
	case !isHexDigest(m.CA.CertSHA256):
		return bad("certificate_sha256 %q is not 64 lower-case hex digits", m.CA.CertSHA256)
	case !isHexN(m.CA.DBSignature, 16) || !isHexN(m.CA.LogSignature, 16):
		return bad("signatures must be 32 lower-case hex digits")
	case m.CA.LogBase == "" || strings.ContainsAny(m.CA.LogBase, "/\x00"):
		return bad("log base %q", m.CA.LogBase)
	case len(m.Backups) == 0:
		return bad("no backups")
	}
	for i, b := range m.Backups {
		want := BackupLogsOnly
		if i == 0 {
			want = BackupFull
		}
		n := i + 1 // messages number backups from 1
		switch {
		case b.Type != want:
			return bad("backup %d has type %q, want %q (a set is one full backup followed by logs-only backups)", n, b.Type, want)
		case b.FirstGen == 0 || b.LastGen < b.FirstGen:
			return bad("backup %d has generations %d..%d", n, b.FirstGen, b.LastGen)
		case b.FirstLSN == 0 || b.LastLSN+1 < b.FirstLSN:
			return bad("backup %d has LSNs %d..%d", n, b.FirstLSN, b.LastLSN)
		case b.Type == BackupLogsOnly && b.SnapshotLSN != 0:
			return bad("logs-only backup %d has a snapshot LSN", n)
		case b.Time.IsZero():
			return bad("backup %d has no time", n)
		case b.LastLSN > maxSafeInteger || b.SnapshotLSN > maxSafeInteger:
			return bad("backup %d has an LSN above 2^53-1", n)
		}
	}
	seen := map[string]bool{}
	count := map[Kind]int{}
	for _, f := range m.Files {
		if err := checkLayout(f.Kind, f.Path, m.CA.LogBase); err != nil {
			return fmt.Errorf("%w: %w", ErrManifestFormat, err)
		}
		switch {
		case seen[f.Path]:
			return bad("%s listed twice", f.Path)
		case f.Size < 0 || f.Size > maxSafeInteger:
			return bad("%s has size %d", f.Path, f.Size)
		case f.SHA256 == "" && len(f.ChunkSHA256) == 0:
			return bad("%s has no digest", f.Path)
		case f.SHA256 != "" && len(f.ChunkSHA256) > 0:
			return bad("%s has both a digest and chunk digests", f.Path)
		case f.SHA256 != "" && !isHexDigest(f.SHA256):
			return bad("%s has digest %q, not 64 lower-case hex digits", f.Path, f.SHA256)
		case len(f.ChunkSHA256) > 0 && m.Format < 2:
			return bad("%s has chunk digests in a format-1 manifest", f.Path)
		case len(f.ChunkSHA256) > 0 && (f.Size <= m.ChunkSize || len(f.ChunkSHA256) != chunks(f.Size, m.ChunkSize)):
			return bad("%s has %d chunk digests; %d bytes in chunks of %d need %s", f.Path, len(f.ChunkSHA256), f.Size, m.ChunkSize,
				chunkCount(f.Size, m.ChunkSize))
		case !allHexDigests(f.ChunkSHA256):
			return bad("%s has a chunk digest that is not 64 lower-case hex digits", f.Path)
		case f.Backup < 0 || f.Backup >= len(m.Backups):
			return bad("%s has backup index %d; the manifest lists %s (indexes 0..%d)", f.Path, f.Backup, countOf(int64(len(m.Backups)), "backup", "backups"), len(m.Backups)-1)
		case f.Backup > 0 && f.Kind != KindLog:
			return bad("%s (%s) written by logs-only backup %d", f.Path, f.Kind, f.Backup+1)
		}
		seen[f.Path] = true
		count[f.Kind]++
	}
	switch {
	case count[KindDatabase] != 1:
		return bad("%d database files, want 1", count[KindDatabase])
	case count[KindRestoreMap] != 1:
		return bad("%d restore maps, want 1", count[KindRestoreMap])
	case count[KindConfig] > 1:
		return bad("%d configuration files, want at most 1", count[KindConfig])
	case count[KindLog] == 0:
		return bad("no log generations")
	}
	return nil
}

// checkLayout checks that rel is where the layout puts a file of kind k.
// It fails with ErrBadPath.
func checkLayout(k Kind, rel, logBase string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s %q: %s", ErrBadPath, k, rel, why) }
	if rel == "" || strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, 0) || path.Clean(rel) != rel {
		return bad("not a clean relative path")
	}
	for _, e := range strings.Split(rel, "/") {
		if e == "" || e == "." || e == ".." || strings.HasPrefix(e, ".") {
			return bad("empty, dot or hidden path element")
		}
	}
	if strings.HasSuffix(rel, PartSuffix) {
		return bad("names ending in " + PartSuffix + " are reserved for files being written")
	}
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	switch k {
	case KindDatabase:
		if dir != DatabaseDir || !strings.HasSuffix(name, ".db") {
			return bad("want " + DatabaseDir + "/<CA name>.db")
		}
	case KindLog:
		gen, ok := wal.ParseFileName(logBase, name)
		if dir != DatabaseDir || !ok || name != wal.FileName(logBase, gen) {
			return bad("want " + DatabaseDir + "/" + wal.FileName(logBase, 1) + " and so on")
		}
	case KindRestoreMap:
		if rel != DatabaseDir+"/"+RestoreMapFile {
			return bad("want " + DatabaseDir + "/" + RestoreMapFile)
		}
	case KindDynamic:
		if dir != DynamicDir {
			return bad("want " + DynamicDir + "/<name>")
		}
	case KindConfig:
		if rel != ConfigDir+"/"+ConfigFile {
			return bad("want " + ConfigDir + "/" + ConfigFile)
		}
	case KindKey:
		if dir != "" || !strings.HasSuffix(name, ".p12") {
			return bad("want <CA name>.p12 at the top of the set")
		}
	default:
		return bad("unknown kind")
	}
	return nil
}

// chunkCount says how many chunk digests a file of size bytes needs.
func chunkCount(size, chunk int64) string {
	if size <= chunk {
		return "none (one sha256 for the whole file)"
	}
	return strconv.Itoa(chunks(size, chunk))
}

// allHexDigests reports whether every element of l is a SHA-256 in
// lower-case hex.
func allHexDigests(l []string) bool {
	for _, s := range l {
		if !isHexDigest(s) {
			return false
		}
	}
	return true
}

// isHexDigest reports whether s is a SHA-256 in lower-case hex.
func isHexDigest(s string) bool { return isHexN(s, sha256.Size) }

// isHexN reports whether s is n bytes in lower-case hex.
func isHexN(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
