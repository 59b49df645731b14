package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestDumpFileCompactAndEachCertificate checks that the two halves
// together are DumpFile: the dump without DER equals the whole dump with
// the CSRs and certificates' DER removed, and EachCertificate yields every
// certificate with its DER, in request order, and stops at fn's error.
func TestDumpFileCompactAndEachCertificate(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := createDB(t, opts)
	for i := range 6 {
		if _, _, err := d.Enroll(ctx, testRequest("host"+string(rune('a'+i))), testCert("host")); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := d.SubmitRequest(ctx, testRequest("pending"))
	mustf(t, err, "submit")
	denied, err := d.SubmitRequest(ctx, testRequest("denied"))
	mustf(t, err, "submit")
	_, _, err = d.DenyRequest(ctx, denied.ID, "no")
	mustf(t, err, "deny")
	rs, err := d.Requests(ctx, Filter{})
	mustf(t, err, "requests")
	mustf(t, errOnly(d.Revoke(ctx, rs[0].Certificate.Serial, 1, time.Now())), "revoke")
	mustf(t, d.Checkpoint(ctx), "checkpoint")
	mustf(t, d.Close(), "close")

	whole, err := DumpFile(ctx, opts.DBPath)
	mustf(t, err, "DumpFile")
	light, err := DumpFileCompact(ctx, opts.DBPath)
	mustf(t, err, "DumpFileCompact")
	var ders [][]byte
	for i := range whole.Requests {
		r := &whole.Requests[i]
		if r.ID == pending.ID && r.Certificate != nil {
			t.Errorf("pending request %d has a certificate", r.ID)
		}
		if len(r.SANs) == 0 {
			t.Errorf("request %d has no SANs in the whole dump", r.ID)
		}
		r.CSR, r.SANs = nil, nil
		if r.Certificate != nil {
			ders = append(ders, r.Certificate.DER)
			r.Certificate.DER = nil
		}
	}
	if !deepEqual(whole, light) {
		t.Fatalf("the compact dump differs from the whole dump with the bulk removed:\n%+v\n%+v", whole, light)
	}

	var got [][]byte
	var serials []string
	err = EachCertificate(ctx, opts.DBPath, func(c *Certificate) error {
		got = append(got, bytes.Clone(c.DER))
		serials = append(serials, c.Serial)
		return nil
	})
	mustf(t, err, "EachCertificate")
	if len(got) != 6 || len(got) != len(ders) {
		t.Fatalf("%d certificates, the dump has %d", len(got), len(ders))
	}
	for i := range got {
		if !bytes.Equal(got[i], ders[i]) || len(got[i]) == 0 {
			t.Errorf("certificate %d (%s): DER differs from the dump's", i, serials[i])
		}
	}
	stop := errors.New("enough")
	n := 0
	err = EachCertificate(ctx, opts.DBPath, func(*Certificate) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("EachCertificate after fn's error: %v, %d calls", err, n)
	}
}
