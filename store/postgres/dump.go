package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate/ledger"
)

// Dump returns every row of every ledger table, each in key order, and the
// single-column unique constraints in force on them, as "table.column".
// Rows are not locked. It is meant for Audit and tests.
func (t *txn) Dump(ctx context.Context) (*ledger.Dump, error) {
	d := &ledger.Dump{}
	all := func(table, cols, order string, scan func(pgx.Rows) error) error {
		return t.query(ctx, "postgres: dump "+table, "SELECT "+cols+" FROM "+table+" ORDER BY "+order, nil, scan)
	}
	steps := []func() error{
		func() error {
			return all("accounts", accountCols, "id", func(rows pgx.Rows) error {
				a, err := scanAccount(rows)
				d.Accounts = append(d.Accounts, a)
				return err
			})
		},
		func() error {
			return all("lots", lotCols, "id", func(rows pgx.Rows) error {
				l, err := scanLot(rows)
				d.Lots = append(d.Lots, l)
				return err
			})
		},
		func() error {
			return all("holds", holdCols, "id", func(rows pgx.Rows) error {
				h, err := scanHold(rows)
				d.Holds = append(d.Holds, h)
				return err
			})
		},
		func() error {
			return all("grants", grantCols, "id", func(rows pgx.Rows) error {
				g, err := scanGrant(rows)
				d.Grants = append(d.Grants, g)
				return err
			})
		},
		func() error {
			return all("refunds", refundCols, "out_refund_no", func(rows pgx.Rows) error {
				r, err := scanRefund(rows)
				d.Refunds = append(d.Refunds, r)
				return err
			})
		},
		func() error {
			return all("usage_records", usageCols, "request_id", func(rows pgx.Rows) error {
				u, err := scanUsage(rows)
				d.Usage = append(d.Usage, u)
				return err
			})
		},
		func() error {
			return all("adjustments", adjustCols, "id", func(rows pgx.Rows) error {
				a, err := scanAdjustment(rows)
				d.Adjustments = append(d.Adjustments, a)
				return err
			})
		},
		func() error {
			var err error
			d.Constraints, err = t.uniqueConstraints(ctx)
			return err
		},
		func() error {
			st, err := t.rollupState(ctx)
			if err != nil || !st.PrunedBefore.After(time.Unix(0, 0)) { // the initial 1970-01-01 Beijing: nothing pruned
				return err
			}
			d.PrunedBefore = st.PrunedBefore
			d.PrunedUsage, err = t.prunedUsage(ctx, st)
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// uniqueConstraintsSQL lists the valid, non-partial, single-column unique
// indexes (primary keys and UNIQUE constraints create them) of the tables in
// the current schema. A partial index such as grants_one_live does not
// make a column unique, so it is left out.
const uniqueConstraintsSQL = `
SELECT c.relname || '.' || a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE i.indisunique AND i.indisvalid AND i.indnkeyatts = 1 AND i.indpred IS NULL
	AND n.nspname = current_schema()
ORDER BY 1`

func (t *txn) uniqueConstraints(ctx context.Context) ([]string, error) {
	var out []string
	err := t.query(ctx, "postgres: read unique constraints", uniqueConstraintsSQL, nil, func(rows pgx.Rows) error {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("scan constraint: %w", err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}
