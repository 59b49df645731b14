package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsrv/certsrv/internal/backupset"
)

func TestParseRate(t *testing.T) {
	good := map[string]int64{
		"":           0,
		"0":          0,
		"0MB":        0,
		"200MB":      200e6,
		"200mb/s":    200e6,
		"1.5GiB/s":   3 << 29,
		"250000000":  250e6,
		"2M":         2e6,
		"64MiB":      64 << 20,
		" 3 GB ":     3e9,
		"1048576B/s": 1 << 20,
		"1024KiB":    1 << 20,
	}
	for in, want := range good {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-5MB", "1MB", "1000KiB", "12XB", "NaN", "Inf", "1e30GB", "MB"} {
		_, err := parseRate(in)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseRate(%q) = %v, want a usage error", in, err)
		}
	}
}

// TestPacerKeepsRate: a paced stream of 1 MiB at 4 MiB/s takes at least a
// quarter of a second and still delivers every byte, through WriteTo (the
// backup path) and through Read.
func TestPacerKeepsRate(t *testing.T) {
	data := bytes.Repeat([]byte("certsrv"), 1<<20/7+1)[:1<<20]
	for _, via := range []string{"WriteTo", "Read"} {
		t.Run(via, func(t *testing.T) {
			src := paced(context.Background(), bytes.NewReader(data), newPacer(4<<20))
			if via == "Read" {
				src = io.MultiReader(struct{ io.Reader }{src}) // hides WriteTo
			}
			var got bytes.Buffer
			start := time.Now()
			if _, err := io.Copy(&got, src); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < 240*time.Millisecond {
				t.Fatalf("1 MiB at 4 MiB/s took %v, want at least 250ms", el)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("paced copy differs from the source")
			}
		})
	}
	if newPacer(0) != nil || paced(context.Background(), bytes.NewReader(data), nil) == nil {
		t.Fatal("rate 0 must mean no pacer, and no pacer the source itself")
	}
}

// TestPacerStopsWithContext: a wait for the rate ends when the context
// does, with its error.
func TestPacerStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	src := paced(ctx, bytes.NewReader(make([]byte, 64<<20)), newPacer(1<<20))
	start := time.Now()
	_, err := io.Copy(io.Discard, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("copy returned %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the cancelled copy took %v", el)
	}
}

// TestBackupMaxRate: certadm backup --max-rate copies no faster than asked
// (the database and the logs together), says so in its summary, and the
// set verifies; a bad value is a usage error before anything happens.
func TestBackupMaxRate(t *testing.T) {
	isolate(t)
	srv := startServer(t)
	c := client(t, srv.Addr, srv.CredsDir)
	issueCerts(t, c, 20, "rate")
	conn := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	dir := filepath.Join(t.TempDir(), "set")
	const rate = 1 << 20
	start := time.Now()
	code, out, errOut := cli(t, append(conn, "backup", dir, "--max-rate", "1MiB/s")...)
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("backup --max-rate: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, ", limited to 1.0 MB/s)") {
		t.Errorf("summary does not state the limit: %q", out)
	}
	set, err := backupset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Verify(context.Background()); err != nil {
		t.Fatalf("the set does not verify: %v", err)
	}
	var paced int64
	for _, f := range set.Manifest().Files {
		if f.Kind == backupset.KindDatabase || f.Kind == backupset.KindLog {
			paced += f.Size
		}
	}
	if min := time.Duration(float64(paced) / rate * float64(time.Second)); elapsed < min {
		t.Fatalf("copied %d bytes in %v at --max-rate 1MiB/s, want at least %v", paced, elapsed, min)
	}
	code, _, errOut = cli(t, append(conn, "backup", filepath.Join(t.TempDir(), "other"), "--max-rate", "10kB")...)
	if code != exitUsage || !strings.Contains(errOut, "below the minimum") {
		t.Fatalf("--max-rate 10kB: exit %d, %q; want a usage error", code, errOut)
	}
}

// sizesWriter records the size of every write.
type sizesWriter struct{ sizes []int }

func (w *sizesWriter) Write(b []byte) (int, error) {
	w.sizes = append(w.sizes, len(b))
	return len(b), nil
}

// TestPacedChunkArrivesInSlices: a paced chunk of several MiB reaches the
// set (and the progress line) in slices of at most pacedSlice bytes, each
// paid for in turn, rather than at once and then a long wait.
func TestPacedChunkArrivesInSlices(t *testing.T) {
	var w sizesWriter
	chunk := make([]byte, 4<<20-1<<10)
	src := paced(context.Background(), bytes.NewReader(chunk), newPacer(1<<30))
	n, err := src.(io.WriterTo).WriteTo(&w)
	if err != nil || n != int64(len(chunk)) {
		t.Fatalf("copied %d bytes, %v", n, err)
	}
	total := 0
	for _, s := range w.sizes {
		if s > pacedSlice {
			t.Fatalf("a write of %d bytes, more than %d", s, pacedSlice)
		}
		total += s
	}
	if total != len(chunk) || len(w.sizes) < len(chunk)/pacedSlice {
		t.Fatalf("%d writes of %d bytes in all", len(w.sizes), total)
	}
}
