package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
)

// TestChunkDigestsEndToEnd backs up a CA whose database spans several
// 16 MiB chunks with the real certadm, checks the manifest's chunk digests
// against GNU split's (the hand check docs/formats.md gives), verifies the
// set, then damages one byte in the second chunk: certadm verify names the
// file, the chunk and its byte range, and certsrv restore refuses the set
// without creating the target.
func TestChunkDigestsEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("split"); err != nil {
		t.Fatalf("GNU split is needed (coreutils): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := t.TempDir()
	dir := initCA(t, filepath.Join(root, "ca"), nil)
	s := startCA(t, dir)
	growDatabase(ctx, t, s, 2*backupset.DefaultChunkSize+1<<20)

	set := filepath.Join(root, "set")
	if out, err := s.certadm(ctx, "backup", set); err != nil {
		t.Fatalf("certadm backup: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(set, backupset.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	// The manifest read as any program would, from the documented format.
	type file struct {
		Path        string   `json:"path"`
		Kind        string   `json:"kind"`
		Size        int64    `json:"size"`
		SHA256      string   `json:"sha256"`
		ChunkSHA256 []string `json:"chunk_sha256"`
	}
	var m struct {
		Format    int    `json:"format"`
		ChunkSize int64  `json:"chunk_size"`
		Files     []file `json:"files"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Format != 2 || m.ChunkSize != backupset.DefaultChunkSize {
		t.Fatalf("manifest format %d, chunk size %d", m.Format, m.ChunkSize)
	}
	i := slices.IndexFunc(m.Files, func(f file) bool { return f.Kind == "database" })
	db := m.Files[i]
	n := int((db.Size + m.ChunkSize - 1) / m.ChunkSize)
	if db.SHA256 != "" || len(db.ChunkSHA256) != n || n < 3 {
		t.Fatalf("database of %d bytes: sha256 %q, %d chunk digests, want %d", db.Size, db.SHA256, len(db.ChunkSHA256), n)
	}
	dbPath := filepath.Join(set, filepath.FromSlash(db.Path))
	cmd := exec.CommandContext(ctx, "split", "-b", strconv.FormatInt(m.ChunkSize, 10), "--filter=sha256sum", dbPath)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	var split []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		split = append(split, strings.Fields(l)[0])
	}
	if !slices.Equal(split, db.ChunkSHA256) {
		t.Fatalf("split's chunk digests %v\nmanifest's %v", split, db.ChunkSHA256)
	}
	if out, err := s.certadm(ctx, "verify", "--no-write", set); err != nil {
		t.Fatalf("certadm verify: %v\n%s", err, out)
	}

	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := m.ChunkSize + 4096 + 17
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out2, err := s.certadm(ctx, "verify", "--no-write", set)
	want := db.Path + ": file digest mismatch: expected SHA-256 " + db.ChunkSHA256[1] + " of bytes " +
		strconv.FormatInt(m.ChunkSize, 10) + " to " + strconv.FormatInt(2*m.ChunkSize-1, 10) + " (chunk 2 of " + strconv.Itoa(n) + ")"
	var ce *cmdError
	if !errors.As(err, &ce) || !strings.Contains(out2, want) {
		t.Fatalf("certadm verify of the damaged set: %v\nwant a line with %q in\n%s", err, want, out2)
	}
	target := filepath.Join(root, "restored")
	rcmd := exec.CommandContext(ctx, certsrvBinary(t), "restore", set, "--data", target)
	rout, err := rcmd.CombinedOutput()
	if err == nil || !strings.Contains(string(rout), "(chunk 2 of "+strconv.Itoa(n)+")") {
		t.Fatalf("certsrv restore of the damaged set: %v\n%s", err, rout)
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		t.Errorf("restore refused but left %d entries in %s", len(entries), target)
	}
}
