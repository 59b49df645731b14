package service

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// TestEveryChangeIsLoggedWithItsLSN: each change an operator may need to
// find again (to choose certsrv restore --until) writes one log line naming
// it and the LSN of its record: issuance (automatic and approved), a pending
// request, a denial, a revocation, a release from hold, a CRL.
func TestEveryChangeIsLoggedWithItsLSN(t *testing.T) {
	dir := initDir(t, pendingProfiles())
	var buf bytes.Buffer
	c, err := Open(context.Background(), dir, OpenOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()

	auto, err := c.Submit(ctx, "alice", serverCSR(t, "auto.example.test"), "tls-server")
	if err != nil {
		t.Fatal(err)
	}
	pending, err := c.Submit(ctx, "bob", serverCSR(t, "manual.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	approved, err := c.Approve(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	toDeny, err := c.Submit(ctx, "bob", serverCSR(t, "denied.example.test"), "manual")
	if err != nil {
		t.Fatal(err)
	}
	denied, err := c.Deny(ctx, toDeny.ID, "not our host")
	if err != nil {
		t.Fatal(err)
	}
	held, err := c.Revoke(ctx, auto.Certificate.Serial, "certificateHold", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	released, err := c.Unrevoke(ctx, auto.Certificate.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCRL(ctx, false); err != nil {
		t.Fatal(err)
	}

	type line struct {
		Msg     string  `json:"msg"`
		LSN     *uint64 `json:"lsn"`
		Request int64   `json:"request"`
		Serial  string  `json:"serial"`
		How     string  `json:"how"`
	}
	var lines []line
	for _, raw := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if l.LSN != nil {
			lines = append(lines, l)
		}
	}
	want := []struct {
		msg string
		lsn uint64
		ok  func(line) bool
	}{
		{"certificate issued", auto.Certificate.IssuedLSN, func(l line) bool {
			return l.How == "enrolled" && l.Request == auto.ID && l.Serial == auto.Certificate.Serial
		}},
		{"request pending", pending.SubmittedLSN, func(l line) bool { return l.Request == pending.ID }},
		{"certificate issued", approved.Certificate.IssuedLSN, func(l line) bool {
			return l.How == "approved" && l.Request == pending.ID && l.Serial == approved.Certificate.Serial
		}},
		{"request pending", toDeny.SubmittedLSN, func(l line) bool { return l.Request == toDeny.ID }},
		{"request denied", denied.ResolvedLSN, func(l line) bool { return l.Request == toDeny.ID }},
		{"certificate revoked", held.RevokedLSN, func(l line) bool { return l.Serial == auto.Certificate.Serial }},
		{"certificate released from hold", released.RevokedLSN, func(l line) bool { return l.Serial == auto.Certificate.Serial }},
		{"CRL published", c.Store().LastLSN(), func(line) bool { return true }},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines with an LSN, want %d: %s", len(lines), len(want), buf.String())
	}
	var prev uint64
	for i, w := range want {
		l := lines[i]
		if l.Msg != w.msg || *l.LSN != w.lsn || !w.ok(l) {
			t.Errorf("line %d = %+v (lsn %d), want %q with lsn %d", i, l, *l.LSN, w.msg, w.lsn)
		}
		if *l.LSN <= prev {
			t.Errorf("line %d: lsn %d does not follow %d", i, *l.LSN, prev)
		}
		prev = *l.LSN
	}
}

// TestChangeLinesNameTheActor: a change made on behalf of a principal
// (WithActor, as the admin API does for its caller) logs "by" with it; one
// the CA makes by itself logs none.
func TestChangeLinesNameTheActor(t *testing.T) {
	dir := initDir(t)
	var buf bytes.Buffer
	c, err := Open(context.Background(), dir, OpenOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, err := c.Submit(WithActor(context.Background(), "alice"), "alice", serverCSR(t, "actor.example.test"), "tls-server")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(WithActor(context.Background(), "officer-bob"), r.Certificate.Serial, "superseded", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCRL(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, raw := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var l struct {
			Msg string  `json:"msg"`
			By  *string `json:"by"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		if l.By != nil {
			by[l.Msg] = *l.By
		} else if _, seen := by[l.Msg]; !seen {
			by[l.Msg] = ""
		}
	}
	if by["certificate issued"] != "alice" || by["certificate revoked"] != "officer-bob" || by["CRL published"] != "" {
		t.Fatalf("by: %v", by)
	}
}
