package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

// viewPageSize is how many rows view asks the server for at a time. It is
// the server's default page, which every server serves whole.
const viewPageSize = 1000

// viewFlags are the view command's options as typed.
type viewFlags struct {
	filters                                            []string
	status, serial, subject, before, after, format, id string
	limit                                              int
}

// query checks the flags and merges --filter and the single-purpose flags
// into one selection. Every mistake is a usage error, found before any
// connection is made.
func (f viewFlags) query() (certadm.ViewFilter, error) {
	switch f.format {
	case "table", "json", "csv":
	default:
		return certadm.ViewFilter{}, usagef("--format %q: want table, json or csv", f.format)
	}
	if f.limit < 0 {
		return certadm.ViewFilter{}, usagef("--limit %d: must not be negative (0 lists every row)", f.limit)
	}
	var conds []condition
	flag := func(name, field, op, value string) {
		if value != "" {
			conds = append(conds, condition{name: fmt.Sprintf("%s %q", name, value), field: field, op: op, value: value})
		}
	}
	if s := strings.ToLower(f.status); s != "any" {
		flag("--status", "status", "=", f.status)
	}
	flag("--id", "id", "=", f.id)
	flag("--serial", "serial", "=", f.serial)
	flag("--subject-contains", "subject", "~", f.subject)
	flag("--expires-before", "expires", "<", f.before)
	flag("--expires-after", "expires", ">", f.after)
	for _, s := range f.filters {
		cs, err := parseFilter(s)
		if err != nil {
			return certadm.ViewFilter{}, err
		}
		conds = append(conds, cs...)
	}
	var q viewQuery
	for _, c := range conds {
		if err := q.add(c); err != nil {
			return certadm.ViewFilter{}, err
		}
	}
	return q.filter(), nil
}

const viewLong = `List certificate requests and their certificates in request-id order, as
an aligned table (default), JSON or CSV. Roles: Officer, Auditor, Reader.

Every matching row is listed (--limit 0, the default): certadm asks the
server page by page until none is left. --limit N stops after N rows; when
more rows match, a note on standard error says so, and standard output
still holds only the rows.

--filter selects rows, like certutil -restrict. Its value is a list of
conditions FIELD OP VALUE separated by commas; --filter may be given more
than once; a row is listed when every condition holds.

  id=N                  the request with id N
  serial=HEX            the certificate with this serial number: hex in any
                        case, colons and leading zeros allowed
  subject~TEXT          the request's or the certificate's subject contains
                        TEXT (case-sensitive), e.g. subject~CN=www
  requester=NAME        requests submitted by the principal NAME
  status=STATUS         pending, issued, denied or revoked (any case):
                        issued leaves out revoked certificates, revoked
                        includes certificates on hold
  expires<T             the certificate's NotAfter is before T
  expires<=T            ... at or before T
  expires>T             ... after T
  expires>=T            ... at or after T

T is RFC 3339 (2027-01-01T12:00:00Z) or a date (2027-01-01 means
2027-01-01T00:00:00Z), compared to the microsecond. expires conditions
select certificates only, so they leave out pending and denied requests.
Field names are case-insensitive; spaces around FIELD, OP and VALUE are
ignored. A comma inside a value is written \, as a subject shows it
(RFC 4514, as certadm view prints it): subject~O=Example\, Inc. matches the
subject CN=x,O=Example\, Inc.

The same field may appear twice if the conditions agree: two upper or two
lower expiry bounds keep the stricter one, and of two subject texts where
one contains the other the longer is kept. Anything else, an unknown
field, an operator a field does not take (subject=, expires=, !=), a bad
value, or conditions no row can meet (status=issued,status=revoked;
expires>2027-01-01,expires<2026-01-01; status=pending with an expires
condition) is a usage error (exit status 2).

--status, --id, --serial, --subject-contains, --expires-before and
--expires-after are the same as status=, id=, serial=, subject~, expires<
and expires>, and combine with --filter in the same way.

STATUS is pending, issued, denied or revoked, the values status= selects:
a revoked certificate, on hold included, is "revoked". The table shows a
certificate on hold as "revoked (certificateHold)", the one revocation
"certadm unrevoke" can undo, and the revocation time under REVOKED. JSON
and CSV also give "revoked" (true or false), "revoked_at" and
"revocation_reason" (the RFC 5280 code: 6 is certificateHold).`

const viewExample = `  certadm view --filter status=revoked
  certadm view --filter 'expires<2027-01-01' --format csv > expiring.csv
  certadm view --filter 'subject~example.com,status=issued'
  certadm view --filter status=issued --filter 'expires>=2026-12-01,expires<2027-01-01'
  certadm view --filter 'subject~O=Example\, Inc.' --format json
  certadm view --filter requester=alice --limit 20`

func newViewCmd(a *app) *cobra.Command {
	var f viewFlags
	cmd := &cobra.Command{
		Use:     "view [--filter COND[,COND...]]... [--format table|json|csv] [--limit N]",
		Short:   "List requests and certificates (Officer, Auditor, Reader)",
		Long:    viewLong,
		Example: viewExample,
		Args:    cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			filter, err := f.query()
			if err != nil {
				return err
			}
			return a.withClient(ctx, func(c *certadm.Client) error {
				rows, more, err := fetchView(ctx, c.View, filter, f.limit)
				if err != nil {
					return err
				}
				if err := writeView(a.stdout, f.format, rows); err != nil {
					return err
				}
				if more {
					fmt.Fprintf(a.stderr, "certadm: view: showing %d of at least %d matching rows; --limit 0 lists them all\n",
						len(rows), len(rows)+1)
				}
				return nil
			})
		}),
	}
	f.bind(cmd)
	return cmd
}

// bind defines the view command's flags on cmd, storing into f.
func (f *viewFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.filters, "filter", nil, "conditions FIELD OP VALUE, comma-separated, repeatable (see above)")
	fl.StringVar(&f.status, "status", "", "pending, issued, denied or revoked (as status=)")
	fl.StringVar(&f.serial, "serial", "", "the certificate with this serial number, hex (as serial=)")
	fl.StringVar(&f.id, "id", "", "the request with this id (as id=)")
	fl.StringVar(&f.subject, "subject-contains", "", "subjects containing this text (as subject~)")
	fl.StringVar(&f.before, "expires-before", "", "certificates expiring before this time, RFC 3339 or YYYY-MM-DD (as expires<)")
	fl.StringVar(&f.after, "expires-after", "", "certificates expiring after this time, RFC 3339 or YYYY-MM-DD (as expires>)")
	fl.StringVar(&f.format, "format", "table", "output format: table, json or csv")
	fl.IntVar(&f.limit, "limit", 0, "at most this many rows (0: every matching row)")
}

// viewFunc asks the server for one page of rows: (*certadm.Client).View.
type viewFunc func(context.Context, certadm.ViewFilter) ([]*certadm.Request, error)

// fetchView returns the rows f selects in request-id order, asking the
// server for one page after another (f.Limit and f.AfterID are set here).
// limit 0 means every row. Otherwise fetchView returns at most limit rows
// and more reports whether further rows match: it asks for one row beyond
// limit to know.
//
// Paging ends with an empty page, not with a short one, so a server that
// serves smaller pages than asked loses no rows. A server too old to page
// ignores AfterID and sends the first page again: after a short page that
// page was the whole answer; after a full one the rest cannot be had,
// which is an error rather than a short list.
func fetchView(ctx context.Context, view viewFunc, f certadm.ViewFilter, limit int) (rows []viewRow, more bool, err error) {
	want := limit + 1
	short := false // the previous page held fewer rows than asked
	for {
		f.Limit = viewPageSize
		if limit > 0 && want-len(rows) < f.Limit {
			f.Limit = want - len(rows)
		}
		page, err := view(ctx, f)
		if err != nil {
			return nil, false, err
		}
		if len(page) == 0 {
			break
		}
		if page[0].ID <= f.AfterID {
			if short {
				break
			}
			return nil, false, fmt.Errorf("view: the server sent request %d again after request %d: it cannot list more than one page of %d rows (upgrade it): %w",
				page[0].ID, f.AfterID, viewPageSize, certadm.ErrInvalidData)
		}
		for _, r := range page {
			if r.ID <= f.AfterID {
				return nil, false, fmt.Errorf("view: the server sent request %d after request %d, out of order: %w", r.ID, f.AfterID, certadm.ErrInvalidData)
			}
			f.AfterID = r.ID
			rows = append(rows, rowOf(r))
		}
		if limit > 0 && len(rows) >= want {
			break
		}
		short = len(page) < f.Limit
	}
	if limit > 0 && len(rows) > limit {
		return rows[:limit], true, nil
	}
	return rows, false, nil
}
