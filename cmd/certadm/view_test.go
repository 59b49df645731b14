package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

// viewQueryOf parses view flags as the command does and returns the
// selection they make.
func viewQueryOf(t *testing.T, args ...string) (certadm.ViewFilter, error) {
	t.Helper()
	var f viewFlags
	cmd := &cobra.Command{}
	f.bind(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.query()
}

func TestViewFilterSyntax(t *testing.T) {
	day := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	us := time.Microsecond
	cases := []struct {
		args []string
		want certadm.ViewFilter
	}{
		{nil, certadm.ViewFilter{}},
		{[]string{"--filter", "status=revoked"}, certadm.ViewFilter{RevokedOnly: true}},
		{[]string{"--filter", "STATUS = Issued"}, certadm.ViewFilter{Status: certadm.StatusIssued}},
		{[]string{"--filter", "status=pending"}, certadm.ViewFilter{Status: certadm.StatusPending}},
		{[]string{"--filter", "status=denied"}, certadm.ViewFilter{Status: certadm.StatusDenied}},
		{[]string{"--filter", "id=42"}, certadm.ViewFilter{RequestID: 42}},
		{[]string{"--filter", "serial=0a:bc"}, certadm.ViewFilter{Serial: "0ABC"}},
		{[]string{"--filter", "requester=alice"}, certadm.ViewFilter{Requester: "alice"}},
		{[]string{"--filter", "subject~CN=www"}, certadm.ViewFilter{SubjectContains: "CN=www"}},
		{[]string{"--filter", `subject~O=Example\, Inc.\\x`}, certadm.ViewFilter{SubjectContains: `O=Example\, Inc.\\x`}},
		{[]string{"--filter", `subject~a\b`}, certadm.ViewFilter{SubjectContains: `a\b`}},
		// The server compares NotAfter strictly, to the microsecond.
		{[]string{"--filter", "expires<2027-01-01"}, certadm.ViewFilter{ExpiresBefore: day}},
		{[]string{"--filter", "expires<=2027-01-01"}, certadm.ViewFilter{ExpiresBefore: day.Add(us)}},
		{[]string{"--filter", "expires>2027-01-01T00:00:00Z"}, certadm.ViewFilter{ExpiresAfter: day}},
		{[]string{"--filter", "expires>=2027-01-01T01:00:00+01:00"}, certadm.ViewFilter{ExpiresAfter: day.Add(-us)}},
		{[]string{"--filter", "expires<2027-01-01T00:00:00.0000001Z"}, certadm.ViewFilter{ExpiresBefore: day.Add(us)}},
		{[]string{"--filter", "expires<=2027-01-01T00:00:00.0000001Z"}, certadm.ViewFilter{ExpiresBefore: day.Add(us)}},
		{[]string{"--filter", "expires>=2027-01-01T00:00:00.0000001Z"}, certadm.ViewFilter{ExpiresAfter: day}},
		// AND: conditions in one value, over several --filter, and with the
		// single-purpose flags; the stricter of two agreeing ones is kept.
		{[]string{"--filter", "subject~example.com,status=issued"}, certadm.ViewFilter{SubjectContains: "example.com", Status: certadm.StatusIssued}},
		{[]string{"--filter", "status=issued", "--filter", "expires>=2026-12-01,expires<2027-01-01"},
			certadm.ViewFilter{Status: certadm.StatusIssued, ExpiresAfter: day.AddDate(0, -1, 0).Add(-us), ExpiresBefore: day}},
		{[]string{"--filter", "expires<2028-01-01,expires<2027-01-01,expires<2029-01-01"}, certadm.ViewFilter{ExpiresBefore: day}},
		{[]string{"--filter", "expires>2025-01-01,expires>2026-01-01"}, certadm.ViewFilter{ExpiresAfter: day.AddDate(-1, 0, 0)}},
		{[]string{"--filter", "subject~example,subject~www.example.com,subject~.com"}, certadm.ViewFilter{SubjectContains: "www.example.com"}},
		{[]string{"--filter", "status=revoked", "--status", "REVOKED"}, certadm.ViewFilter{RevokedOnly: true}},
		{[]string{"--filter", "id=7,id=7", "--id", "7"}, certadm.ViewFilter{RequestID: 7}},
		{[]string{"--filter", "serial=ABC", "--serial", "0x0abc"}, certadm.ViewFilter{Serial: "0ABC"}},
		{[]string{"--status", "any", "--subject-contains", " spaced ", "--expires-before", "2027-01-01", "--expires-after", "2026-01-01"},
			certadm.ViewFilter{SubjectContains: " spaced ", ExpiresBefore: day, ExpiresAfter: day.AddDate(-1, 0, 0)}},
		{[]string{"--filter", "expires>2026-12-31T23:59:59.999998Z,expires<2027-01-01"},
			certadm.ViewFilter{ExpiresAfter: day.Add(-2 * us), ExpiresBefore: day}},
	}
	for _, c := range cases {
		got, err := viewQueryOf(t, c.args...)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !got.ExpiresBefore.Equal(c.want.ExpiresBefore) || !got.ExpiresAfter.Equal(c.want.ExpiresAfter) {
			t.Errorf("%q: expires (%v, %v), want (%v, %v)", c.args, got.ExpiresAfter, got.ExpiresBefore, c.want.ExpiresAfter, c.want.ExpiresBefore)
		}
		got.ExpiresBefore, got.ExpiresAfter = c.want.ExpiresBefore, c.want.ExpiresAfter
		if got != c.want {
			t.Errorf("%q: filter %+v, want %+v", c.args, got, c.want)
		}
	}
}

// TestViewFilterUsageErrors checks that every --filter mistake exits 2
// before connecting, naming the condition and saying what is accepted.
func TestViewFilterUsageErrors(t *testing.T) {
	isolate(t)
	const accepted = "id=N, serial=HEX, subject~TEXT, requester=NAME, status=pending|issued|denied|revoked, expires<T"
	cases := []struct {
		args []string
		want []string // all in stderr
	}{
		{[]string{"--filter", "color=red"}, []string{`"color=red"`, `unknown field "color"`, accepted}},
		{[]string{"--filter", "status!=revoked"}, []string{`"status!=revoked"`, `status does not take "!="`, accepted}},
		{[]string{"--filter", "status~rev"}, []string{`"status~rev"`, "status=pending|issued|denied|revoked"}},
		{[]string{"--filter", "id<5"}, []string{`"id<5"`, "id=N"}},
		{[]string{"--filter", "subject=CN=www"}, []string{`"subject=CN=www"`, "substring", "subject~TEXT"}},
		{[]string{"--filter", "expires=2027-01-01"}, []string{`"expires=2027-01-01"`, "<, <=, > and >=", accepted}},
		{[]string{"--filter", "expires<tomorrow"}, []string{`"expires<tomorrow"`, `"tomorrow" is not a time`, "RFC 3339"}},
		{[]string{"--filter", "expires<2027-13-01"}, []string{`"expires<2027-13-01"`, "not a time"}},
		{[]string{"--filter", "expires<0001-01-01"}, []string{`"expires<0001-01-01"`, "out of range"}},
		{[]string{"--filter", "expires>=0001-01-01T00:00:00Z"}, []string{`"expires>=0001-01-01T00:00:00Z"`, "out of range"}},
		{[]string{"--filter", "expires<=9999-12-31T23:59:59.9999999Z"}, []string{"out of range"}},
		{[]string{"--filter", "status=lost"}, []string{`"status=lost"`, `unknown status "lost"`, "pending|issued|denied|revoked"}},
		{[]string{"--filter", "id=0"}, []string{`"id=0"`, "positive request id"}},
		{[]string{"--filter", "id=abc"}, []string{`"id=abc"`, "positive request id"}},
		{[]string{"--filter", "serial=xyz"}, []string{`"serial=xyz"`, "hex"}},
		{[]string{"--filter", "status="}, []string{`"status="`, "no value", accepted}},
		{[]string{"--filter", "=revoked"}, []string{`"=revoked"`, "FIELD OP VALUE", accepted}},
		{[]string{"--filter", "status"}, []string{`"status"`, "FIELD OP VALUE", accepted}},
		{[]string{"--filter", "revoked"}, []string{`"revoked"`, "FIELD OP VALUE", accepted}},
		{[]string{"--filter", ""}, []string{"empty condition", accepted}},
		{[]string{"--filter", "status=issued,"}, []string{"empty condition", accepted}},
		{[]string{"--filter"}, []string{"--filter"}},
		// Contradictions, within one --filter, across several, and with the
		// single-purpose flags.
		{[]string{"--filter", "status=issued,status=revoked"}, []string{`"status=revoked" contradicts --filter condition "status=issued"`}},
		{[]string{"--filter", "status=pending,expires<2027-03-01"}, []string{`"expires<2027-03-01" contradicts --filter condition "status=pending"`, "no expiry"}},
		{[]string{"--filter", "expires>2027-03-01", "--status", "denied"}, []string{"contradicts", "a denied request has no certificate"}},
		{[]string{"--status", "issued", "--filter", "status=revoked"}, []string{`"status=revoked" contradicts --status "issued"`}},
		{[]string{"--filter", "id=1", "--filter", "id=2"}, []string{`"id=2" contradicts --filter condition "id=1"`}},
		{[]string{"--serial", "0A", "--filter", "serial=0B"}, []string{`"serial=0B" contradicts --serial "0A"`}},
		{[]string{"--filter", "requester=alice,requester=bob"}, []string{`"requester=bob" contradicts`}},
		{[]string{"--filter", "subject~alpha,subject~beta"}, []string{`"subject~beta" contradicts --filter condition "subject~alpha"`, "one subject text"}},
		{[]string{"--filter", "expires>2027-01-01,expires<2026-01-01"}, []string{`"expires<2026-01-01" contradicts --filter condition "expires>2027-01-01"`}},
		{[]string{"--filter", "expires<2027-01-01,expires>=2027-01-01"}, []string{`"expires>=2027-01-01" contradicts --filter condition "expires<2027-01-01"`}},
		{[]string{"--expires-after", "2027-01-01", "--filter", "expires<=2027-01-01"}, []string{`"expires<=2027-01-01" contradicts --expires-after "2027-01-01"`}},
		// The single-purpose flags are checked the same way.
		{[]string{"--status", "lost"}, []string{`--status "lost"`, `unknown status "lost"`}},
		{[]string{"--expires-before", "next tuesday"}, []string{`--expires-before "next tuesday"`, "not a time"}},
		{[]string{"--serial", "g1"}, []string{`--serial "g1"`, "hex"}},
		{[]string{"--id", "-3"}, []string{`--id "-3"`, "positive"}},
		{[]string{"--id", "0"}, []string{`--id "0"`, "positive"}},
		{[]string{"--id", "x"}, []string{`--id "x"`, "positive"}},
		{[]string{"--limit", "-1"}, []string{"--limit -1"}},
	}
	for _, c := range cases {
		args := append([]string{"view"}, c.args...)
		code, out, errOut := cli(t, args...)
		if code != exitUsage || out != "" {
			t.Errorf("certadm %q: exit %d, want 2\n%s%s", args, code, out, errOut)
			continue
		}
		if !strings.HasPrefix(errOut, "certadm: ") || strings.Contains(errOut, "HRESULT") {
			t.Errorf("certadm %q: stderr %q", args, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("certadm %q: stderr lacks %q:\n%s", args, w, errOut)
			}
		}
	}
}

func TestViewHelpDescribesFilter(t *testing.T) {
	isolate(t)
	out := mustCLI(t, "view", "--help")
	for _, want := range []string{
		"--filter", "FIELD OP VALUE", "status=revoked", "expires<2027-01-01", "subject~example.com,status=issued",
		"expires<=T", "expires>=T", "requester=NAME", "serial=HEX", "id=N", `\,`, "--limit 0", "exit status 2",
		"revoked (certificateHold)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("view --help lacks %q:\n%s", want, out)
		}
	}
}

// viewIDs runs view --format json with args and returns the request ids.
func viewIDs(t *testing.T, g []string, args ...string) []int64 {
	t.Helper()
	var rows []viewRow
	out := mustCLI(t, append(append(append([]string{}, g...), "view", "--format", "json"), args...)...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("view %q: %v\n%s", args, err, out)
	}
	ids := []int64{}
	for _, r := range rows {
		ids = append(ids, r.RequestID)
	}
	return ids
}

// TestViewFilterOnServer runs each kind of condition against a real server
// and checks which requests come back.
func TestViewFilterOnServer(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	submit := func(name string, extra ...string) (int64, string) {
		out := mustCLI(t, append(append(g, "submit", writeCSR(t, work, name)), extra...)...)
		m := requestLine.FindStringSubmatch(out)
		serial := ""
		if s := serialLine.FindStringSubmatch(out); s != nil {
			serial = s[1]
		}
		return atoi(t, m[1]), serial
	}
	www, wwwSerial := submit("www.example.com")
	mail, mailSerial := submit("mail.example.com")
	held, heldSerial := submit("vpn.example.org")
	other, _ := submit("www.example.org")
	pending, _ := submit("pending.example.com", "--profile", manualProfile)
	denied, _ := submit("denied.example.com", "--profile", manualProfile)
	mustCLI(t, append(g, "deny", fmt.Sprint(denied))...)
	mustCLI(t, append(g, "revoke", mailSerial, "--reason", "keyCompromise")...)
	mustCLI(t, append(g, "revoke", heldSerial, "--reason", "certificateHold")...)

	// Expiry is compared to each certificate's NotAfter, to the second.
	c := client(t, srv.Addr, srv.CredsDir)
	notAfter := map[int64]time.Time{}
	for _, id := range []int64{www, mail, held, other} {
		r, err := c.GetRequest(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		notAfter[id] = r.Certificate.NotAfter
	}
	at := notAfter[www].UTC().Format(time.RFC3339)
	expiring := func(keep func(time.Time) bool) []int64 {
		out := []int64{}
		for _, id := range []int64{www, mail, held, other} {
			if keep(notAfter[id]) {
				out = append(out, id)
			}
		}
		return out
	}
	colon := strings.TrimSuffix(strings.ToLower(regexp.MustCompile("..").ReplaceAllString(wwwSerial, "$0:")), ":")

	cases := []struct {
		args []string
		want []int64
	}{
		{nil, []int64{www, mail, held, other, pending, denied}},
		{[]string{"--filter", "status=revoked"}, []int64{mail, held}},
		{[]string{"--filter", "status=issued"}, []int64{www, other}},
		{[]string{"--filter", "status=pending"}, []int64{pending}},
		{[]string{"--filter", "status=denied"}, []int64{denied}},
		{[]string{"--filter", fmt.Sprintf("id=%d", other)}, []int64{other}},
		{[]string{"--filter", "serial=" + colon}, []int64{www}},
		{[]string{"--filter", "subject~example.com"}, []int64{www, mail, pending, denied}},
		{[]string{"--filter", "subject~example.com,status=issued"}, []int64{www}},
		{[]string{"--filter", "subject~www", "--filter", "status=issued"}, []int64{www, other}},
		{[]string{"--filter", "subject~.org,subject~example.org"}, []int64{held, other}},
		{[]string{"--filter", "requester=admin,status=pending"}, []int64{pending}},
		{[]string{"--filter", "requester=nobody"}, []int64{}},
		// Expiry selects certificates only.
		{[]string{"--filter", "expires>2000-01-01"}, []int64{www, mail, held, other}},
		{[]string{"--filter", "expires<9999-01-01,status=revoked"}, []int64{mail, held}},
		{[]string{"--filter", "expires<" + at}, expiring(func(n time.Time) bool { return n.Before(notAfter[www]) })},
		{[]string{"--filter", "expires<=" + at}, expiring(func(n time.Time) bool { return !n.After(notAfter[www]) })},
		{[]string{"--filter", "expires>=" + at}, expiring(func(n time.Time) bool { return !n.Before(notAfter[www]) })},
		{[]string{"--filter", "expires>" + at}, expiring(func(n time.Time) bool { return n.After(notAfter[www]) })},
		{[]string{"--filter", "expires>=" + at + ",expires<=" + at}, expiring(func(n time.Time) bool { return n.Equal(notAfter[www]) })},
		// The single-purpose flags still work, alone and with --filter.
		{[]string{"--status", "revoked"}, []int64{mail, held}},
		{[]string{"--status", "issued", "--filter", "subject~.org"}, []int64{other}},
		{[]string{"--subject-contains", "vpn", "--filter", "status=revoked"}, []int64{held}},
		{[]string{"--expires-after", "2000-01-01", "--filter", "status=issued"}, []int64{www, other}},
	}
	for _, c := range cases {
		if got := viewIDs(t, g, c.args...); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q: ids %v, want %v", c.args, got, c.want)
		}
	}
	// The bounds are exact: www is in at-or-before and at-or-after its own
	// NotAfter, and in neither strict comparison.
	if got := viewIDs(t, g, "--filter", "expires>="+at+",expires<="+at+",id="+fmt.Sprint(www)); len(got) != 1 {
		t.Errorf("expires>=%s,expires<=%s leaves out request %d", at, at, www)
	}
	for _, op := range []string{"<", ">"} {
		if got := viewIDs(t, g, "--filter", "expires"+op+at+",id="+fmt.Sprint(www)); len(got) != 0 {
			t.Errorf("expires%s%s lists request %d", op, at, www)
		}
	}
}

// TestViewRevokedStatus checks that a revoked certificate shows as
// "revoked" in every format, as status=revoked selects it, and that the
// revocation fields scripts read are still there.
func TestViewRevokedStatus(t *testing.T) {
	srv := startServer(t)
	work := isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	var serials []string
	for _, name := range []string{"ok.test", "gone.test", "held.test"} {
		out := mustCLI(t, append(g, "submit", writeCSR(t, work, name))...)
		serials = append(serials, serialLine.FindStringSubmatch(out)[1])
	}
	mustCLI(t, append(g, "revoke", serials[1], "--reason", "superseded")...)
	mustCLI(t, append(g, "revoke", serials[2], "--reason", "certificateHold")...)

	var rows []viewRow
	if err := json.Unmarshal([]byte(mustCLI(t, append(g, "view", "--format", "json")...)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("rows %+v", rows)
	}
	for i, want := range []struct {
		status  string
		revoked bool
		reason  int
	}{{"issued", false, -1}, {"revoked", true, 4}, {"revoked", true, 6}} {
		r := rows[i]
		if r.Status != want.status || r.Revoked != want.revoked || (want.revoked && (r.RevokedAt == "" || r.RevocationReason == nil || *r.RevocationReason != want.reason)) ||
			(!want.revoked && (r.RevokedAt != "" || r.RevocationReason != nil)) {
			t.Errorf("json row %d: %+v, want status %s revoked %v reason %d", i, r, want.status, want.revoked, want.reason)
		}
	}
	// The raw JSON keeps every field a script may read.
	raw := mustCLI(t, append(g, "view", "--format", "json", "--filter", "status=revoked")...)
	for _, want := range []string{`"status": "revoked"`, `"revoked": true`, `"revoked_at": "`, `"revocation_reason": 4`, `"revocation_reason": 6`} {
		if !strings.Contains(raw, want) {
			t.Errorf("json lacks %s:\n%s", want, raw)
		}
	}
	// The status agrees with the filter that selected the row.
	for _, status := range []string{"issued", "revoked"} {
		var rs []viewRow
		if err := json.Unmarshal([]byte(mustCLI(t, append(g, "view", "--format", "json", "--filter", "status="+status)...)), &rs); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Status != status {
				t.Errorf("status=%s lists request %d with status %q", status, r.RequestID, r.Status)
			}
		}
	}

	records, err := csv.NewReader(strings.NewReader(mustCLI(t, append(g, "view", "--format", "csv")...))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 4 || strings.Join(records[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("csv %q", records)
	}
	for i, want := range [][]string{{"issued", "false", "", ""}, {"revoked", "true", "x", "4"}, {"revoked", "true", "x", "6"}} {
		rec := records[i+1]
		if rec[1] != want[0] || rec[11] != want[1] || (want[2] == "") != (rec[12] == "") || rec[13] != want[3] {
			t.Errorf("csv row %d: %q, want status %s revoked %s reason %q", i+1, rec, want[0], want[1], want[3])
		}
	}

	table := strings.Split(strings.TrimSpace(mustCLI(t, append(g, "view")...)), "\n")
	if len(table) != 4 {
		t.Fatalf("table:\n%s", strings.Join(table, "\n"))
	}
	col := strings.Index(table[0], "STATUS")
	serialCol := strings.Index(table[0], "SERIAL")
	for i, want := range []string{"issued", "revoked", "revoked (certificateHold)"} {
		line := table[i+1]
		if got := strings.TrimSpace(line[col:serialCol]); got != want {
			t.Errorf("table row %d STATUS %q, want %q:\n%s", i+1, got, want, strings.Join(table, "\n"))
		}
		if strings.Index(line, serials[i]) != serialCol {
			t.Errorf("table not aligned:\n%s", strings.Join(table, "\n"))
		}
	}
	// Released from hold, the certificate is issued again.
	mustCLI(t, append(g, "unrevoke", serials[2])...)
	if got := viewIDs(t, g, "--filter", "status=issued"); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("issued after release: %v", got)
	}
}

// TestViewListsEveryRow issues more certificates than the server returns
// in one answer and checks that view lists them all in every format, that
// --limit caps the list and says so on standard error, and that a server
// that cannot page is an error, not a short list.
func TestViewListsEveryRow(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	const n = viewPageSize + 5
	mustCLI(t, append(g, "bench", "issue", "-n", fmt.Sprint(n), "-c", "16")...)

	run := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := cli(t, append(append([]string{}, g...), args...)...)
		if code != exitOK {
			t.Fatalf("certadm %q: exit %d\n%s", args, code, errOut)
		}
		return out, errOut
	}
	out, errOut := run("view", "--format", "json")
	var rows []viewRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n || errOut != "" {
		t.Fatalf("json: %d rows, want %d; stderr %q", len(rows), n, errOut)
	}
	for i, r := range rows {
		if r.RequestID != int64(i+1) || r.Status != "issued" {
			t.Fatalf("json row %d: %+v", i, r)
		}
	}
	out, errOut = run("view", "--format", "csv")
	if records, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(records) != n+1 || errOut != "" {
		t.Fatalf("csv: %d records (%v), want %d; stderr %q", len(records), err, n+1, errOut)
	}
	out, errOut = run("view")
	if lines := strings.Count(out, "\n"); lines != n+1 || errOut != "" {
		t.Fatalf("table: %d lines, want %d; stderr %q", lines, n+1, errOut)
	}
	if ids := viewIDs(t, g, "--filter", fmt.Sprintf("status=issued,expires>%s", time.Now().UTC().Format(time.RFC3339))); len(ids) != n {
		t.Fatalf("filtered: %d rows, want %d", len(ids), n)
	}

	// --limit caps across pages and says so on stderr only.
	for _, c := range []struct {
		limit, rows int
		note        string
	}{
		{1, 1, "showing 1 of at least 2 matching rows; --limit 0 lists them all\n"},
		{viewPageSize, viewPageSize, fmt.Sprintf("showing %d of at least %d matching rows", viewPageSize, viewPageSize+1)},
		{n - 2, n - 2, fmt.Sprintf("showing %d of at least %d matching rows", n-2, n-1)},
		{n, n, ""},
		{n + 1, n, ""},
	} {
		for _, format := range []string{"json", "csv", "table"} {
			out, errOut := run("view", "--format", format, "--limit", fmt.Sprint(c.limit))
			got := 0
			switch format {
			case "json":
				var rs []viewRow
				if err := json.Unmarshal([]byte(out), &rs); err != nil {
					t.Fatalf("--limit %d json: %v", c.limit, err)
				}
				got = len(rs)
			default:
				got = strings.Count(out, "\n") - 1
			}
			if got != c.rows {
				t.Errorf("--limit %d --format %s: %d rows, want %d", c.limit, format, got, c.rows)
			}
			if c.note == "" && errOut != "" || c.note != "" && (!strings.HasPrefix(errOut, "certadm: view: ") || !strings.Contains(errOut, c.note)) {
				t.Errorf("--limit %d --format %s: stderr %q, want %q", c.limit, format, errOut, c.note)
			}
		}
	}

	// A server too old to page ignores AfterID: its first answer is whole
	// when short, and an error when full.
	cl := client(t, srv.Addr, srv.CredsDir)
	old := func(ctx context.Context, f certadm.ViewFilter) ([]*certadm.Request, error) {
		f.AfterID = 0
		return cl.View(ctx, f)
	}
	ctx := context.Background()
	if rs, more, err := fetchView(ctx, old, certadm.ViewFilter{SubjectContains: "bench"}, 0); !errors.Is(err, certadm.ErrInvalidData) {
		t.Fatalf("old server, full page: %d rows, more %v, err %v; want ErrInvalidData", len(rs), more, err)
	}
	if rs, more, err := fetchView(ctx, old, certadm.ViewFilter{RequestID: 7}, 0); err != nil || len(rs) != 1 || more || rs[0].RequestID != 7 {
		t.Fatalf("old server, short page: %+v, more %v, err %v", rs, more, err)
	}
	if rs, more, err := fetchView(ctx, old, certadm.ViewFilter{}, 3); err != nil || len(rs) != 3 || !more {
		t.Fatalf("old server, --limit 3: %d rows, more %v, err %v", len(rs), more, err)
	}
}

// TestViewFilterSubjectWithComma: a subject whose value holds a comma is
// shown in RFC 4514 form (O=Example\, Inc.), and the same text in a
// --filter condition finds it.
func TestViewFilterSubjectWithComma(t *testing.T) {
	srv := startServer(t)
	isolate(t)
	g := []string{"--server", srv.Addr, "--creds", srv.CredsDir}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "comma.example.test", Organization: []string{"Example, Inc."}},
		DNSNames: []string{"comma.example.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := filepath.Join(t.TempDir(), "comma.csr")
	if err := os.WriteFile(csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, append(g, "submit", csr)...)
	mustCLI(t, append(g, "submit", writeCSR(t, t.TempDir(), "plain.example.test"))...)
	out := mustCLI(t, append(g, "view", "--filter", `subject~O=Example\, Inc.`, "--format", "csv")...)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 2 || !strings.Contains(rows[1], "comma.example.test") {
		t.Fatalf("view of the subject with a comma:\n%s", out)
	}
	// The tls-server profile keeps only the CN: view shows what was
	// issued, and JSON and get also what was asked for.
	var js []viewRow
	if err := json.Unmarshal([]byte(mustCLI(t, append(g, "view", "--filter", `subject~O=Example\, Inc.`, "--format", "json")...)), &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 || js[0].Subject != "CN=comma.example.test" || js[0].RequestedSubject != `CN=comma.example.test,O=Example\, Inc.` {
		t.Fatalf("JSON subjects: %+v", js)
	}
	got := mustCLI(t, append(g, "get", strconv.FormatInt(js[0].RequestID, 10))...)
	if !strings.Contains(got, "subject: CN=comma.example.test\n") || !strings.Contains(got, "requested subject: CN=comma.example.test,O=Example\\, Inc.\n") {
		t.Fatalf("get:\n%s", got)
	}
}
