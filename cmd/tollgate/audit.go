package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

const auditSummary = "check the ledger's invariants and print every violation"

const auditHelp = `Check the ledger's invariants (ledger.Audit: per-lot and total conservation,
refunds, materialised balances, holds, grants, usage, unique constraints) and
print every violation. Reads the SQLite ledger under --data, or PostgreSQL at
--database-url. It streams the ledger (big tables are read a row at a time or
summed in SQL), so its memory does not grow with lots, holds or usage records.

By default the whole ledger is checked. --from and --to (Beijing dates,
YYYY-MM-DD, inclusive; either may be left out) limit it to the rows created
on those days: the per-row checks (lots and their refunds, holds, grants,
adjustments, the lots' total) run over those rows, each with what it needs
from other days; the per-account checks (balances, usage against settled
holds, debt origin, one live grant) need every row of an account and are
skipped, as the output says.

Exit status: 0 when every invariant holds, 1 when any is violated, 2 on
errors (bad flags, no ledger, database unreachable).`

func init() {
	register("audit", auditSummary, runAudit)
}

// exitStatusError is an error that asks for a process exit status: 1 when a
// check found problems, 2 when the command failed. main exits with
// ExitCode() for errors that have one.
type exitStatusError struct {
	code int
	err  error
}

func (e *exitStatusError) Error() string { return e.err.Error() }
func (e *exitStatusError) Unwrap() error { return e.err }

// ExitCode is the process exit status the error asks for.
func (e *exitStatusError) ExitCode() int { return e.code }

// failed marks err as a command failure (exit status 2), keeping flag.ErrHelp
// as it is so that --help still exits 0.
func failed(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitStatusError{code: 2, err: err}
}

// ledgerFlags are the flags that locate the ledger, named as serve's.
type ledgerFlags struct {
	data        *string
	databaseURL *string
}

func addLedgerFlags(fs *flag.FlagSet) ledgerFlags {
	return ledgerFlags{
		data:        fs.String("data", filepath.Dir(sqlite.DefaultPath), "data directory of the SQLite ledger (ignored with --database-url)"),
		databaseURL: fs.String("database-url", "", "PostgreSQL URL (postgres://...) of a shared ledger"),
	}
}

// open opens the ledger. Unlike serve it never creates an empty SQLite
// ledger: checking an empty database would report a clean ledger that is
// not the one meant.
func (f ledgerFlags) open(ctx context.Context) (ledger.Store, error) {
	if *f.databaseURL != "" {
		st, err := postgres.Open(ctx, *f.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres ledger: %w", err)
		}
		return st, nil
	}
	path := filepath.Join(*f.data, sqlite.FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no ledger at %s (pass --data DIR or --database-url URL): %w", path, err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger: %w", err)
	}
	return st, nil
}

// checkFormat refuses a --format other than text or json.
func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("--format must be text or json, got %q", format)
	}
	return nil
}

// auditViolation is a ledger.Violation as the JSON output spells it.
type auditViolation struct {
	Check   string `json:"check"`
	Subject string `json:"subject"`
	Detail  string `json:"detail"`
}

// auditFlags are audit's settings.
type auditFlags struct {
	ledger   ledgerFlags
	format   *string
	grace    *time.Duration
	from, to *string
}

func auditFlagSet() (*flag.FlagSet, auditFlags) {
	fs := newFlagSet("audit", auditHelp)
	return fs, auditFlags{
		ledger: addLedgerFlags(fs),
		format: fs.String("format", "text", "output format: text or json"),
		grace:  fs.Duration("hold-grace", 0, "also report holds still active this long past their expiry (0: skip the hold-age check)"),
		from:   fs.String("from", "", "check only rows created on or after this Beijing date, YYYY-MM-DD (default: the whole ledger)"),
		to:     fs.String("to", "", "check only rows created on or before this Beijing date, YYYY-MM-DD, inclusive"),
	}
}

func init() {
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { fs, _ := auditFlagSet(); return fs })
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := auditFlagSet()
	fs.SetOutput(stderr)
	lf, format, grace := f.ledger, f.format, f.grace
	if err := parseFlags(fs, args); err != nil {
		return failed(err)
	}
	if err := checkFormat(*format); err != nil {
		return failed(fmt.Errorf("audit: %w", err))
	}
	period, err := auditPeriod(*f.from, *f.to)
	if err != nil {
		return failed(fmt.Errorf("audit: %w", err))
	}
	st, err := lf.open(ctx)
	if err != nil {
		return failed(fmt.Errorf("audit: %w", err))
	}
	defer st.Close()
	opt := ledger.AuditOptions{Period: period}
	if *grace > 0 {
		opt.Now, opt.Grace = time.Now(), *grace
	}
	vs, err := ledger.Audit(ctx, st, opt)
	if err != nil {
		return failed(fmt.Errorf("audit: %w", err))
	}
	if err := writeAudit(stdout, *format, vs, *f.from, *f.to); err != nil {
		return failed(fmt.Errorf("audit: %w", err))
	}
	if len(vs) > 0 {
		return &exitStatusError{code: 1, err: fmt.Errorf("audit: %d violation(s) found", len(vs))}
	}
	return nil
}

// auditPeriod turns --from and --to (Beijing dates, inclusive) into a
// ledger.Period; both empty is the whole ledger.
func auditPeriod(from, to string) (ledger.Period, error) {
	var p ledger.Period
	if from != "" {
		d, err := time.ParseInLocation(time.DateOnly, from, tollgate.Beijing)
		if err != nil {
			return p, fmt.Errorf("--from must be YYYY-MM-DD, got %q", from)
		}
		p.From = d
	}
	if to != "" {
		d, err := time.ParseInLocation(time.DateOnly, to, tollgate.Beijing)
		if err != nil {
			return p, fmt.Errorf("--to must be YYYY-MM-DD, got %q", to)
		}
		p.To = d.AddDate(0, 0, 1)
	}
	if !p.From.IsZero() && !p.To.IsZero() && !p.From.Before(p.To) {
		return p, fmt.Errorf("--from %s is after --to %s", from, to)
	}
	return p, nil
}

// auditScope says what an audit of from..to covered; "" for the whole
// ledger.
func auditScope(from, to string) string {
	if from == "" && to == "" {
		return ""
	}
	return fmt.Sprintf("Rows created %s to %s (Beijing dates) checked: %s. Skipped, as they need every row of an account: %s.",
		cmp.Or(from, "the beginning"), cmp.Or(to, "today"),
		strings.Join(ledger.PeriodChecks, ", "), strings.Join(ledger.SkippedInPeriod, ", "))
}

func writeAudit(w io.Writer, format string, vs []ledger.Violation, from, to string) error {
	scope := auditScope(from, to)
	if format == "json" {
		out := struct {
			Clean      bool             `json:"clean"`
			From       string           `json:"from,omitempty"`
			To         string           `json:"to,omitempty"`
			Checked    []string         `json:"checked,omitempty"`
			Skipped    []string         `json:"skipped,omitempty"`
			Violations []auditViolation `json:"violations"`
		}{Clean: len(vs) == 0, Violations: []auditViolation{}}
		if scope != "" {
			out.From, out.To, out.Checked, out.Skipped = from, to, ledger.PeriodChecks, ledger.SkippedInPeriod
		}
		for _, v := range vs {
			out.Violations = append(out.Violations, auditViolation{v.Check, v.Subject, v.Detail})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	for _, v := range vs {
		if _, err := fmt.Fprintln(w, v.String()); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if scope != "" {
		if _, err := fmt.Fprintln(w, scope); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	var err error
	if len(vs) == 0 {
		_, err = fmt.Fprintln(w, "Clean: every ledger invariant holds.")
	} else {
		_, err = fmt.Fprintf(w, "%d violation(s) found.\n", len(vs))
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
