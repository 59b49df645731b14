package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// CheckPages passes a healthy database and fails, with the way out in the
// message, one whose file has a damaged page; the damaged database then
// refuses every call.
func TestCheckPagesFailsADamagedDatabase(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := createDB(t, opts)
	for i := range 400 {
		_, _, err := d.Enroll(ctx, testRequest(fmt.Sprint("p", i)), testCert(fmt.Sprint("p", i)))
		mustf(t, err, "enroll")
	}
	if _, err := d.CheckPages(ctx); err != nil {
		t.Fatalf("healthy database: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Overwrite a page in the middle of the file (page size 4096).
	b, err := os.ReadFile(opts.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(b) / 4096
	if pages < 20 {
		t.Fatalf("database of %d pages: too small for the test", pages)
	}
	page := pages / 2
	for i := page * 4096; i < (page+1)*4096; i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(opts.DBPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d = openDB(t, opts)
	_, err = d.CheckPages(ctx)
	if !errors.Is(err, ErrIntegrity) || !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "certsrv restore") {
		t.Fatalf("damaged page %d of %d: %v, want ErrIntegrity and ErrFailed naming the restore", page, pages, err)
	}
	if !errors.Is(d.failure(), ErrIntegrity) {
		t.Errorf("failure() = %v", d.failure())
	}
	if _, err := d.SubmitRequest(ctx, testRequest("after")); !errors.Is(err, ErrFailed) {
		t.Errorf("a write after the damage was found: %v", err)
	}
}
