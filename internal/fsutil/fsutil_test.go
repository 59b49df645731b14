package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestWriteAtomicErrorKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileAtomic(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteAtomic(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Fatalf("target changed to %q", b)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestWithin(t *testing.T) {
	for _, bad := range []string{"", "..", "../x", "a/../../x", "/etc/passwd"} {
		if _, err := Within("/root", bad); !errors.Is(err, ErrOutsideRoot) {
			t.Errorf("Within(%q) = %v, want ErrOutsideRoot", bad, err)
		}
	}
	got, err := Within("/root", "a/./b")
	if err != nil || got != "/root/a/b" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, v := range map[string]string{"top": "1", "a/mid": "22", "a/b/deep": "333"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
	for p, v := range map[string]string{"top": "1", "a/mid": "22", "a/b/deep": "333"} {
		b, err := os.ReadFile(filepath.Join(dst, p))
		if err != nil || string(b) != v {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "a", "link")); !os.IsNotExist(err) {
		t.Errorf("the symbolic link was copied: %v", err)
	}
	if err := CopyTree(dst, filepath.Join(src, "missing")); err == nil {
		t.Error("copying a missing tree succeeded")
	}
}
