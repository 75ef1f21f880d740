package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const lotCols = "id, account_id, out_trade_no, transaction_id, fen, granted, used, left_credits, " +
	"refunding, refunded, refunded_fen, created_at, version"

func scanLot(rows pgx.Rows) (ledger.Lot, error) {
	var l ledger.Lot
	var account string
	var fen, granted, used, left, refunding, refunded, refundedFen int64
	err := rows.Scan(&l.ID, &account, &l.OutTradeNo, &l.TransactionID, &fen, &granted, &used, &left,
		&refunding, &refunded, &refundedFen, &l.CreatedAt, &l.Version)
	l.Account, l.Fen, l.Granted, l.Used, l.Left = tollgate.AccountID(account), tollgate.Fen(fen),
		tollgate.Credits(granted), tollgate.Credits(used), tollgate.Credits(left)
	l.Refunding, l.Refunded, l.RefundedFen = tollgate.Credits(refunding), tollgate.Credits(refunded), tollgate.Fen(refundedFen)
	l.CreatedAt = l.CreatedAt.UTC()
	return l, err
}

func (t *txn) lots(ctx context.Context, op, where string, args ...any) ([]ledger.Lot, error) {
	var out []ledger.Lot
	err := t.query(ctx, op, "SELECT "+lotCols+" FROM lots WHERE "+where+" ORDER BY id"+t.lockClause(), args,
		func(rows pgx.Rows) error {
			l, err := scanLot(rows)
			out = append(out, l)
			return err
		})
	return out, err
}

// SpendableLots returns the lots with credit left of the given accounts,
// in id (draw-down) order, locked in an Update.
func (t *txn) SpendableLots(ctx context.Context, accounts []tollgate.AccountID) ([]ledger.Lot, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	if lots, ok := t.pre.spendable(accounts); ok {
		return lots, nil
	}
	return t.lots(ctx, "postgres: read spendable lots", "account_id = ANY($1) AND left_credits > 0", accountStrings(accounts))
}

// Lots returns the lots with the given ids, locked in an Update.
func (t *txn) Lots(ctx context.Context, ids []int64) ([]ledger.Lot, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return t.lots(ctx, "postgres: read lots", "id = ANY($1)", ids)
}

// LotsByPayment returns the lots of the given orders or WeChat Pay
// transactions, in id order, locked in an Update.
func (t *txn) LotsByPayment(ctx context.Context, outTradeNos, transactionIDs []string) ([]ledger.Lot, error) {
	if len(outTradeNos) == 0 && len(transactionIDs) == 0 {
		return nil, nil
	}
	if outTradeNos == nil {
		outTradeNos = []string{}
	}
	if transactionIDs == nil {
		transactionIDs = []string{}
	}
	return t.lots(ctx, "postgres: read lots by payment",
		"out_trade_no = ANY($1) OR transaction_id = ANY($2)", outTradeNos, transactionIDs)
}

// LotsByAccount returns every lot of one account, in id order, locked in an
// Update.
func (t *txn) LotsByAccount(ctx context.Context, account tollgate.AccountID) ([]ledger.Lot, error) {
	return t.lots(ctx, "postgres: read lots of account", "account_id = $1", string(account))
}

// PaidVolume returns the fen paid by lots created in [from, to).
func (t *txn) PaidVolume(ctx context.Context, from, to time.Time) (tollgate.Fen, error) {
	var sum int64
	err := t.query(ctx, "postgres: read paid volume",
		"SELECT COALESCE(SUM(fen), 0)::BIGINT FROM lots WHERE created_at >= $1 AND created_at < $2",
		[]any{from.UTC(), to.UTC()}, func(rows pgx.Rows) error { return rows.Scan(&sum) })
	return tollgate.Fen(sum), err
}

// RecentLots returns up to limit lots of one account, newest first: the
// lots_account index walked backwards, never locked (the admin API reads
// it in a View).
func (t *txn) RecentLots(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Lot, error) {
	var out []ledger.Lot
	err := t.query(ctx, "postgres: read recent lots of account",
		"SELECT "+lotCols+" FROM lots WHERE account_id = $1 ORDER BY id DESC LIMIT $2", []any{string(account), limit},
		func(rows pgx.Rows) error {
			l, err := scanLot(rows)
			out = append(out, l)
			return err
		})
	return out, err
}
