package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const refundCols = "out_refund_no, lot_id, account_id, credits, fen, status, created_at, resolved_at, version"

func scanRefund(rows pgx.Rows) (ledger.Refund, error) {
	var r ledger.Refund
	var account, status string
	var credits, fen int64
	var resolved *time.Time
	err := rows.Scan(&r.OutRefundNo, &r.LotID, &account, &credits, &fen, &status, &r.CreatedAt, &resolved, &r.Version)
	r.Account, r.Credits, r.Fen, r.Status = tollgate.AccountID(account), tollgate.Credits(credits), tollgate.Fen(fen), ledger.RefundStatus(status)
	r.CreatedAt, r.ResolvedAt = r.CreatedAt.UTC(), fromNull(resolved)
	return r, err
}

// Refunds returns the refunds with the given out_refund_no values, locked
// in an Update.
func (t *txn) Refunds(ctx context.Context, outRefundNos []string) ([]ledger.Refund, error) {
	if len(outRefundNos) == 0 {
		return nil, nil
	}
	var out []ledger.Refund
	err := t.query(ctx, "postgres: read refunds",
		"SELECT "+refundCols+" FROM refunds WHERE out_refund_no = ANY($1) ORDER BY out_refund_no"+t.lockClause(),
		[]any{outRefundNos}, func(rows pgx.Rows) error {
			r, err := scanRefund(rows)
			out = append(out, r)
			return err
		})
	return out, err
}
