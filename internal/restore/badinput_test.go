package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/ca"
	"github.com/certsrv/certsrv/internal/datadir"
	"github.com/certsrv/certsrv/internal/service"
	"github.com/certsrv/certsrv/internal/wal"
)

// treeDigest maps every file under root (but the lock file) to its
// SHA-256, so a test can prove a refused restore changed nothing.
func treeDigest(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "certsrv.lock" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	must(t, err, "digest "+root)
	return out
}

func sameTree(t testing.TB, before, after map[string]string) {
	t.Helper()
	var diff []string
	for k, v := range before {
		if after[k] != v {
			diff = append(diff, "changed or removed: "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diff = append(diff, "added: "+k)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		t.Fatalf("the refused restore changed the data directory:\n%s", strings.Join(diff, "\n"))
	}
}

// manifestEdit rewrites DIR/manifest.json after edit changed its decoded
// form, with a correct checksum (RFC 8785 over the object with an empty
// checksum), as a forger with the format description would.
func manifestEdit(t testing.TB, dir string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, backupset.ManifestFile)
	b, err := os.ReadFile(p)
	must(t, err, "read manifest")
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	must(t, dec.Decode(&m), "decode manifest")
	edit(m)
	m["checksum"] = ""
	sum := sha256.Sum256(jcs(t, m))
	m["checksum"] = hex.EncodeToString(sum[:])
	out, err := json.MarshalIndent(m, "", "  ")
	must(t, err, "encode manifest")
	must(t, os.WriteFile(p, out, 0o600), "write manifest")
}

// jcs serializes a decoded JSON value canonically (RFC 8785) for the ASCII
// strings and integers a manifest holds.
func jcs(t testing.TB, v any) []byte {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b bytes.Buffer
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(jcs(t, k))
			b.WriteByte(':')
			b.Write(jcs(t, x[k]))
		}
		b.WriteByte('}')
		return b.Bytes()
	case []any:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(jcs(t, e))
		}
		b.WriteByte(']')
		return b.Bytes()
	case json.Number:
		return []byte(x.String())
	case string:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		must(t, enc.Encode(x), "encode string")
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	default:
		b, err := json.Marshal(x)
		must(t, err, "encode value")
		return b
	}
}

// files returns the manifest's file entries.
func files(m map[string]any) []map[string]any {
	var out []map[string]any
	for _, f := range m["files"].([]any) {
		out = append(out, f.(map[string]any))
	}
	return out
}

// refresh sets a file entry's size and digest to the file's.
func refresh(t testing.TB, dir string, f map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f["path"].(string))))
	must(t, err, "read set file")
	sum := sha256.Sum256(b)
	f["size"] = json.Number(fmt.Sprint(len(b)))
	f["sha256"] = hex.EncodeToString(sum[:])
}

// dropFiles removes the entries (and files) whose path satisfies drop.
func dropFiles(t testing.TB, dir string, m map[string]any, drop func(path string) bool) {
	t.Helper()
	var keep []any
	for _, f := range files(m) {
		if drop(f["path"].(string)) {
			must(t, os.Remove(filepath.Join(dir, filepath.FromSlash(f["path"].(string)))), "remove set file")
			continue
		}
		keep = append(keep, f)
	}
	m["files"] = keep
}

// badSets builds a valid set (a full backup and two incrementals, with
// the key) of one CA, and a second CA whose files a forger swaps in.
type badSets struct {
	src, other *source
	set        string // the valid set
	otherSet   string // a full backup of the other CA
	gens       []uint32
}

func newBadSets(t *testing.T) *badSets {
	t.Helper()
	b := &badSets{src: newSource(t), other: newSource(t)}
	b.set = filepath.Join(t.TempDir(), "set")
	b.otherSet = filepath.Join(t.TempDir(), "other")
	b.src.workload(2)
	b.src.fullBackup(b.set, backupOptions{withKey: true})
	b.src.workload(10)
	b.src.incrementalBackup(b.set)
	b.src.workload(10)
	m := b.src.incrementalBackup(b.set)
	for g := m.Backups[0].FirstGen; g <= m.LastBackup().LastGen; g++ {
		b.gens = append(b.gens, g)
	}
	if len(b.gens) < 3 || b.gens[0] != 1 || len(m.Backups) != 3 {
		t.Fatalf("the set should hold generations 1.. in three backups, has %v in %d", b.gens, len(m.Backups))
	}
	b.other.workload(30)
	b.other.fullBackup(b.otherSet, backupOptions{})
	return b
}

func logRel(gen uint32) string { return backupset.DatabaseDir + "/" + wal.FileName("ca", gen) }

// TestBadBackupSets damages a backup set one way at a time and checks that
// restore refuses it with the matching error before changing anything in
// the data directory it was asked to restore over.
func TestBadBackupSets(t *testing.T) {
	b := newBadSets(t)
	ctx := context.Background()
	dbRel := backupset.DatabaseDir + "/" + b.src.name + ".db"
	mid := b.gens[1]
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   error
	}{
		{"extra file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, backupset.DatabaseDir, "notes.txt"), []byte("x"), 0o600), "write")
		}, backupset.ErrExtraFile},
		{"missing file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, filepath.FromSlash(logRel(mid)))), "remove")
		}, backupset.ErrMissingFile},
		{"byte appended", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(dbRel)), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err, "open")
			f.Write([]byte{0})
			f.Close()
		}, backupset.ErrSizeMismatch},
		{"file truncated to zero", func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, filepath.FromSlash(logRel(b.gens[0]))), 0), "truncate")
		}, backupset.ErrTruncated},
		{"same-length change", func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.FromSlash(logRel(mid)))
			data, err := os.ReadFile(p)
			must(t, err, "read")
			data[len(data)/2] ^= 0x01
			must(t, os.WriteFile(p, data, 0o600), "write")
		}, backupset.ErrDigestMismatch},
		{"manifest edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, backupset.ManifestFile)
			data, err := os.ReadFile(p)
			must(t, err, "read")
			data = bytes.Replace(data, []byte(`"type": "logs-only"`), []byte(`"type": "full"`), 1)
			must(t, os.WriteFile(p, data, 0o600), "write")
		}, backupset.ErrManifestChecksum},
		{"manifest checksum wrong", func(t *testing.T, dir string) {
			p := filepath.Join(dir, backupset.ManifestFile)
			data, err := os.ReadFile(p)
			must(t, err, "read")
			i := bytes.Index(data, []byte(`"checksum": "`)) + len(`"checksum": "`)
			data[i] = map[bool]byte{true: 'b', false: 'a'}[data[i] == 'a']
			must(t, os.WriteFile(p, data, 0o600), "write")
		}, backupset.ErrManifestChecksum},
		{"database of another CA", func(t *testing.T, dir string) {
			other, err := os.ReadFile(filepath.Join(b.otherSet, filepath.FromSlash(dbRel)))
			must(t, err, "read other database")
			must(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(dbRel)), other, 0o600), "write")
			manifestEdit(t, dir, func(m map[string]any) {
				for _, f := range files(m) {
					if f["path"] == dbRel {
						refresh(t, dir, f)
					}
				}
			})
		}, backupset.ErrForeignDatabase},
		{"generation missing in the middle", func(t *testing.T, dir string) {
			manifestEdit(t, dir, func(m map[string]any) {
				dropFiles(t, dir, m, func(p string) bool { return p == logRel(mid) })
			})
		}, backupset.ErrChainGap},
		{"log of another log set", func(t *testing.T, dir string) {
			other, err := os.ReadFile(filepath.Join(b.otherSet, filepath.FromSlash(logRel(b.gens[0]))))
			must(t, err, "read other log")
			must(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(logRel(b.gens[0]))), other, 0o600), "write")
			manifestEdit(t, dir, func(m map[string]any) {
				for _, f := range files(m) {
					if f["path"] == logRel(b.gens[0]) {
						refresh(t, dir, f)
					}
				}
			})
		}, backupset.ErrForeignLog},
		{"logs out of order", func(t *testing.T, dir string) {
			p1 := filepath.Join(dir, filepath.FromSlash(logRel(b.gens[0])))
			p2 := filepath.Join(dir, filepath.FromSlash(logRel(mid)))
			d1, _ := os.ReadFile(p1)
			d2, _ := os.ReadFile(p2)
			must(t, os.WriteFile(p1, d2, 0o600), "write")
			must(t, os.WriteFile(p2, d1, 0o600), "write")
			manifestEdit(t, dir, func(m map[string]any) {
				for _, f := range files(m) {
					if f["path"] == logRel(b.gens[0]) || f["path"] == logRel(mid) {
						refresh(t, dir, f)
					}
				}
			})
		}, backupset.ErrLogCorrupt},
		{"incremental that does not continue the chain", func(t *testing.T, dir string) {
			manifestEdit(t, dir, func(m map[string]any) {
				backups := m["backups"].([]any)
				m["backups"] = []any{backups[0], backups[2]}
				dropFiles(t, dir, m, func(p string) bool {
					for _, f := range files(m) {
						if f["path"] == p {
							return f["backup"].(json.Number).String() == "1"
						}
					}
					return false
				})
				for _, f := range files(m) {
					if f["backup"].(json.Number).String() == "2" {
						f["backup"] = json.Number("1")
					}
				}
			})
		}, backupset.ErrChainGap},
	}

	// The data directory restored over: the source CA's own, stopped, with
	// its database intact.
	b.src.stop()
	b.other.stop()
	target := b.src.dir
	before := treeDigest(t, target.Root)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "set")
			copyTree(t, dir, b.set)
			tc.damage(t, dir)
			_, err := Restore(ctx, Options{SetDir: dir, Dir: target, Force: true, Password: testPassword, RecoverNow: true})
			if !errors.Is(err, tc.want) {
				t.Fatalf("restore of a set with %s: %v, want %v", tc.name, err, tc.want)
			}
			t.Logf("refused: %v", err)
			sameTree(t, before, treeDigest(t, target.Root))
			if rec, err := Pending(target); rec != nil || err != nil {
				t.Fatalf("a refused restore left a record: %+v, %v", rec, err)
			}
		})
	}
	// The undamaged set restores over the same directory.
	_, err := Restore(ctx, Options{SetDir: b.set, Dir: target, Force: true, RecoverNow: true})
	must(t, err, "restore of the undamaged set")
}

// TestRestoreRefusals covers what restore refuses about the target and the
// key, each with its own error and without changing anything.
func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	set := filepath.Join(t.TempDir(), "set")
	noKey := filepath.Join(t.TempDir(), "nokey")
	src.workload(3)
	src.fullBackup(set, backupOptions{withKey: true})
	src.fullBackup(noKey, backupOptions{})

	t.Run("CA running", func(t *testing.T) {
		before := treeDigest(t, src.dir.Root)
		_, err := Restore(ctx, Options{SetDir: set, Dir: src.dir, Force: true})
		if !errors.Is(err, ErrCARunning) || !errors.Is(err, datadir.ErrLocked) {
			t.Fatalf("restore while the CA runs: %v", err)
		}
		if _, err := Prepare(src.dir); !errors.Is(err, ErrCARunning) {
			t.Fatalf("prepare while the CA runs: %v", err)
		}
		if _, err := Cancel(src.dir); !errors.Is(err, ErrCARunning) {
			t.Fatalf("cancel while the CA runs: %v", err)
		}
		sameTree(t, before, treeDigest(t, src.dir.Root))
	})
	t.Run("another CA", func(t *testing.T) {
		other := newSource(t)
		other.stop()
		before := treeDigest(t, other.dir.Root)
		_, err := Restore(ctx, Options{SetDir: set, Dir: other.dir, Force: true, Password: testPassword})
		if !errors.Is(err, ErrForeignTarget) {
			t.Fatalf("restore over another CA: %v", err)
		}
		sameTree(t, before, treeDigest(t, other.dir.Root))
	})
	t.Run("no key anywhere", func(t *testing.T) {
		target := newTarget(t)
		if _, err := Restore(ctx, Options{SetDir: noKey, Dir: target}); !errors.Is(err, ErrNoKey) {
			t.Fatalf("restore without a key: %v", err)
		}
		if what := leftover(t, target); what != "" {
			t.Fatalf("left %s behind", what)
		}
	})
	t.Run("key installed first", func(t *testing.T) {
		// What the ErrNoKey message says to do: `certsrv key restore` into
		// the new directory, then the same restore again, without --force.
		target := newTarget(t)
		p12s, err := filepath.Glob(filepath.Join(set, "*.p12"))
		if err != nil || len(p12s) != 1 {
			t.Fatalf("the set's key file: %v, %v", p12s, err)
		}
		p12, err := os.ReadFile(p12s[0])
		must(t, err, "read key file")
		must(t, service.KeyRestore(ctx, target, p12, testPassword), "key restore")
		rep, err := Restore(ctx, Options{SetDir: noKey, Dir: target, RecoverNow: true, Logger: testLogger(t)})
		must(t, err, "restore into a directory holding only the CA key")
		if !rep.NewHost || rep.KeyRestored || len(rep.Replaced) != 0 {
			t.Fatalf("report: new host %v, key restored %v, replaced %v", rep.NewHost, rep.KeyRestored, rep.Replaced)
		}
		openRestored(t, target)

		// Another CA's key in the directory is refused as another CA, not
		// taken for an empty directory.
		other := newSource(t)
		other.stop()
		foreign := newTarget(t)
		must(t, os.MkdirAll(foreign.KeysDir(), 0o700), "keys dir")
		for _, p := range []string{other.dir.CAKeyPath(), other.dir.CACertPath()} {
			b, err := os.ReadFile(p)
			must(t, err, "read")
			must(t, os.WriteFile(filepath.Join(foreign.KeysDir(), filepath.Base(p)), b, 0o600), "write")
		}
		before := treeDigest(t, foreign.Root)
		if _, err := Restore(ctx, Options{SetDir: noKey, Dir: foreign}); !errors.Is(err, ErrForeignTarget) {
			t.Fatalf("restore into a directory holding another CA's key: %v, want ErrForeignTarget", err)
		}
		sameTree(t, before, treeDigest(t, foreign.Root))
	})
	t.Run("no password", func(t *testing.T) {
		if _, err := Restore(ctx, Options{SetDir: set, Dir: newTarget(t)}); !errors.Is(err, ErrPasswordRequired) {
			t.Fatalf("restore without the key password: %v", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		if _, err := Restore(ctx, Options{SetDir: set, Dir: newTarget(t), Password: "not the password"}); !errors.Is(err, ca.ErrPassphrase) {
			t.Fatalf("restore with a wrong key password: %v", err)
		}
	})
	t.Run("not a set", func(t *testing.T) {
		if _, err := Restore(ctx, Options{SetDir: t.TempDir(), Dir: newTarget(t)}); !errors.Is(err, backupset.ErrNoManifest) {
			t.Fatalf("restore of an empty directory: %v", err)
		}
	})
	t.Run("key kept from the target", func(t *testing.T) {
		// The CA's own directory holds the key: a set without one restores.
		src.stop()
		rep, err := Restore(ctx, Options{SetDir: noKey, Dir: src.dir, Force: true, RecoverNow: true})
		must(t, err, "restore with the target's key")
		if rep.KeyRestored || !slices.ContainsFunc(rep.Replaced, func(p string) bool { return strings.HasSuffix(p, ".db") }) {
			t.Fatalf("report: key restored %v, replaced %v", rep.KeyRestored, rep.Replaced)
		}
		for _, p := range rep.Replaced {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("the replaced database file %s is gone: %v", p, err)
			}
		}
	})
}
