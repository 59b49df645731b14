package backupset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/certsrv/certsrv/internal/fsutil"
	"github.com/certsrv/certsrv/internal/wal"
)

// Incremental describes a logs-only backup about to be appended to a set,
// as the server presented it before any file was copied.
type Incremental struct {
	// CAName and CACertSHA256 identify the server's CA; each is compared
	// with the set's when it is not the zero value.
	CAName       string
	CACertSHA256 [32]byte
	// RestoreMap is the server's restore map for this session; it must
	// equal the set's.
	RestoreMap RestoreMap
	// Logs are the names of the listed log generations, in the listed
	// order. Only the last path element is used, so absolute server paths
	// are accepted.
	Logs []string
	// FirstLogHeader holds at least the first wal.HeaderSize bytes of
	// Logs[0]: its header, which carries the log-set signature and the
	// first LSN.
	FirstLogHeader []byte
}

// Appender adds one logs-only backup to a set: AddLog for each listed log,
// in order, then Commit; or Abort. An Appender is for one goroutine at a
// time, and nothing else may write to the set meanwhile.
type Appender struct {
	set    *Set
	names  []string // file names expected, in order
	gens   []uint32
	added  []FileEntry
	closed bool
}

// AppendIncremental checks, before anything is copied into the set, that a
// logs-only backup can continue it, and returns an Appender for its logs.
// It fails with ErrForeignSet when the server's restore map differs from
// the set's, when the first log's log-set signature is not the set's, or
// when CAName or CACertSHA256 are given and differ; with ErrChainGap when
// the listed generations are not consecutive or the first is not the
// set's last generation plus one, or its first LSN not the set's last LSN
// plus one; with ErrBadPath when a name is not a log file name of the set's
// base; and with ErrNoManifest for a derived set (Derive), whose chain no
// manifest records. The set itself is not modified.
func (s *Set) AppendIncremental(ctx context.Context, inc Incremental) (*Appender, error) {
	m := s.m
	fail := func(err error) (*Appender, error) {
		return nil, fmt.Errorf("append to backup set %s: %w", s.dir, err)
	}
	if !s.HasManifest() {
		return fail(fmt.Errorf("%w: a logs-only backup continues a set with a manifest; take a full backup into a new set", ErrNoManifest))
	}
	if err := s.checkCA(inc.CAName, inc.CACertSHA256); err != nil {
		return fail(err)
	}
	have, err := s.RestoreMap()
	if err != nil {
		return fail(err)
	}
	if !have.Equal(inc.RestoreMap) {
		return fail(fmt.Errorf("%w: the server's restore map (database %s) differs from the set's (database %s)",
			ErrForeignSet, inc.RestoreMap.Database(), have.Database()))
	}
	if len(inc.Logs) == 0 {
		return fail(fmt.Errorf("%w: the backup lists no log generation", ErrChainGap))
	}
	a := &Appender{set: s}
	for i, n := range inc.Logs {
		name := path.Base(filepath.ToSlash(n))
		gen, ok := wal.ParseFileName(m.CA.LogBase, name)
		if !ok || name != wal.FileName(m.CA.LogBase, gen) {
			return fail(fmt.Errorf("%w: %q is not a log generation of base %q", ErrBadPath, n, m.CA.LogBase))
		}
		if i > 0 && gen != a.gens[i-1]+1 {
			return fail(chainErr(ErrChainGap, len(m.Backups), gen, "listed after generation %d", a.gens[i-1]))
		}
		a.names = append(a.names, name)
		a.gens = append(a.gens, gen)
	}
	h, err := decodeLogHeader(inc.FirstLogHeader)
	if err != nil {
		return fail(fmt.Errorf("%w: first log %s: %w", ErrLogCorrupt, a.names[0], err))
	}
	if got := hex.EncodeToString(h.Signature[:]); got != m.CA.LogSignature {
		return fail(fmt.Errorf("%w: the server's log set is %s, the set's %s", ErrForeignSet, got, m.CA.LogSignature))
	}
	last := m.LastBackup()
	switch {
	case h.Gen != a.gens[0]:
		return fail(chainErr(ErrLogCorrupt, len(m.Backups), a.gens[0], "the header says generation %d", h.Gen))
	case a.gens[0] != last.LastGen+1:
		return fail(chainErr(ErrChainGap, len(m.Backups), a.gens[0],
			"the backup starts at generation %d but the set ends at generation %d; take a full backup into a new set",
			a.gens[0], last.LastGen))
	case h.FirstLSN != last.LastLSN+1:
		return fail(chainErr(ErrChainGap, len(m.Backups), a.gens[0],
			"the backup starts at LSN %d but the set ends at LSN %d; take a full backup into a new set", h.FirstLSN, last.LastLSN))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckCA fails with ErrForeignSet unless the set belongs to the CA named
// caName whose certificate has SHA-256 certSHA256. A caller can check this
// before it starts a backup session; AppendIncremental checks it again,
// with the restore map and the log-set signature.
func (s *Set) CheckCA(caName string, certSHA256 [32]byte) error {
	if err := s.checkCA(caName, certSHA256); err != nil {
		return fmt.Errorf("backup set %s: %w", s.dir, err)
	}
	return nil
}

// checkCA compares the CA's name and certificate digest with the set's; a
// zero value is not compared, nor is the digest of a derived set that
// holds no CA certificate.
func (s *Set) checkCA(caName string, certSHA256 [32]byte) error {
	m := s.m
	if caName != "" && caName != m.CA.Name {
		return fmt.Errorf("%w: the server's CA is %q, the set's %q", ErrForeignSet, caName, m.CA.Name)
	}
	if certSHA256 != ([32]byte{}) && m.CA.CertSHA256 != "" {
		if got := hex.EncodeToString(certSHA256[:]); got != m.CA.CertSHA256 {
			return fmt.Errorf("%w: the server's CA certificate has SHA-256 %s, the set's %s", ErrForeignSet, got, m.CA.CertSHA256)
		}
	}
	return nil
}

// chunkSize returns the chunk size of the set's manifest, or the one a new
// set gets when the manifest (format 1) records none.
func (a *Appender) chunkSize() int64 {
	if a.set.m.ChunkSize != 0 {
		return a.set.m.ChunkSize
	}
	return chunkSize
}

// Generations returns the generations the Appender expects, in order.
func (a *Appender) Generations() []uint32 { return append([]uint32(nil), a.gens...) }

// AddLog copies the next expected log generation, name (as listed; only
// its last element is used), of exactly size bytes from r into the set.
// Logs must be added in the listed order.
func (a *Appender) AddLog(ctx context.Context, name string, r io.Reader, size int64) (FileEntry, error) {
	if a.closed {
		return FileEntry{}, ErrClosed
	}
	if len(a.added) == len(a.names) {
		return FileEntry{}, fmt.Errorf("%w: %s: every listed log was already added", ErrBadPath, name)
	}
	want := a.names[len(a.added)]
	if base := path.Base(filepath.ToSlash(name)); base != want {
		return FileEntry{}, fmt.Errorf("%w: %s added, %s expected next", ErrBadPath, base, want)
	}
	rel := DatabaseDir + "/" + want
	sums, err := writeFile(ctx, a.set.dir, rel, r, size, a.chunkSize())
	if err != nil {
		return FileEntry{}, err
	}
	e := FileEntry{Path: rel, Kind: KindLog, Size: size, Backup: len(a.set.m.Backups)}
	e.setDigests(sums)
	a.added = append(a.added, e)
	return e, nil
}

// Commit verifies the added logs (every one listed must have been added),
// their chain to the set's last generation and their signature, then
// rewrites the manifest with the new backup and files, atomically. On
// failure the manifest is unchanged and the added files stay until Abort.
func (a *Appender) Commit(ctx context.Context, info BackupInfo) (*Manifest, error) {
	if a.closed {
		return nil, ErrClosed
	}
	if len(a.added) != len(a.names) {
		return nil, fmt.Errorf("commit incremental backup: %w: %d of the %s listed added", ErrChainGap, len(a.added), countOf(int64(len(a.names)), "log", "logs"))
	}
	s := a.set
	m := s.m
	var sig wal.Signature
	if b, err := hex.DecodeString(m.CA.LogSignature); err == nil {
		copy(sig[:], b)
	}
	last := m.LastBackup()
	prev, err := wal.VerifyGeneration(filepath.Join(s.dir, DatabaseDir, wal.FileName(m.CA.LogBase, last.LastGen)), nil)
	if err != nil {
		return nil, fmt.Errorf("commit incremental backup: the set's last generation: %w", &ChainError{Backup: len(m.Backups) - 1, Gen: last.LastGen, Err: ErrLogCorrupt, Cause: err})
	}
	var problems collect
	infos, err := logChain(ctx, s.dir, m.CA.LogBase, sig, a.gens, &prev, nil, problems.add)
	if err != nil {
		return nil, fmt.Errorf("commit incremental backup: %w", err)
	}
	if err := problems.err(); err != nil {
		return nil, fmt.Errorf("commit incremental backup: %w", err)
	}
	first, end := infos[a.gens[0]], infos[a.gens[len(a.gens)-1]]
	nm := m.clone()
	// A format-1 set becomes a format-2 one: its files keep their digests.
	nm.Format, nm.ChunkSize = ManifestFormat, a.chunkSize()
	nm.Backups = append(nm.Backups, Backup{
		Type:           BackupLogsOnly,
		FirstGen:       first.Gen,
		LastGen:        end.Gen,
		FirstLSN:       first.BaseLSN,
		LastLSN:        endLSN(end),
		Time:           backupTime(info.Time),
		Server:         info.Server,
		CertsrvVersion: info.CertsrvVersion,
	})
	nm.Files = append(nm.Files, a.added...)
	raw, err := writeManifest(s.dir, nm)
	if err != nil {
		return nil, fmt.Errorf("commit incremental backup: %w", err)
	}
	a.closed = true
	s.m, s.raw = nm, raw
	return nm.clone(), nil
}

// Abort removes the logs the Appender added, leaving the set as it was
// before AppendIncremental (a failed AddLog already removed its .part
// file; files the Appender did not create are never touched). Abort after Commit
// or Abort does nothing.
func (a *Appender) Abort() error {
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, e := range a.added {
		if err := os.Remove(filepath.Join(a.set.dir, filepath.FromSlash(e.Path))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := fsutil.SyncDir(filepath.Join(a.set.dir, DatabaseDir)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("abort incremental backup: %w", err)
	}
	return nil
}
