package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/payment"
	"tollgate/store/internal/payrows"
)

// The PostgreSQL store is also the payment.Store (migration
// 0004_payments.sql). UpdateOrder locks the row (SELECT … FOR UPDATE) for
// its read-modify-write; LeaseDueOrders claims due orders with FOR UPDATE
// SKIP LOCKED inside one UPDATE … RETURNING, so instances polling at once
// never claim the same order.
var _ payment.Store = (*Store)(nil)

// pgPayTx runs fn in one READ COMMITTED transaction on the pool.
func (s *Store) pgPayTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return mapError(op+": begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		if commitRolledBack(err) {
			return mapError(op+": commit", err)
		}
		// The connection broke with COMMIT in flight: the order or
		// refund record may exist. Say so, as Update does.
		return unknownCommit(op+": commit", err)
	}
	return nil
}

type pgQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateOrder implements payment.Store.
func (s *Store) CreateOrder(ctx context.Context, o payment.Order, key *payment.IdempotencyKey) (payment.IdempotencyKey, bool, error) {
	const op = "postgres.CreateOrder"
	var stored payment.IdempotencyKey
	created := false
	err := s.pgPayTx(ctx, op, func(tx pgx.Tx) (err error) {
		stored, created, err = pgCreateOrder(ctx, tx, o, key)
		return err
	})
	if errors.Is(err, errKeyTaken) {
		k, err := pgGetKey(ctx, s.pool, key.Account, key.Key, key.CreatedAt)
		return k, false, err
	}
	if err != nil {
		return payment.IdempotencyKey{}, false, err
	}
	return stored, created, nil
}

// errKeyTaken says that another order holds the idempotency key: the
// order's insert is rolled back and the stored key read.
var errKeyTaken = errors.New("key taken")

// pgCreateOrder is CreateOrder's work inside tx; errKeyTaken asks the
// caller to roll back and read the stored key.
func pgCreateOrder(ctx context.Context, tx pgx.Tx, o payment.Order, key *payment.IdempotencyKey) (payment.IdempotencyKey, bool, error) {
	const op = "postgres.CreateOrder"
	if key != nil {
		if _, err := tx.Exec(ctx, `DELETE FROM payment_idempotency_keys WHERE account_id = $1 AND key = $2 AND expires_at <= $3`,
			string(key.Account), key.Key, payrows.Micros(key.CreatedAt)); err != nil {
			return payment.IdempotencyKey{}, false, mapError(op, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO payment_orders (`+payrows.OrderColumns+`) VALUES
		($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,$30)`, payrows.OrderArgs(&o)...); err != nil {
		if sqlState(err) == codeUniqueViolation {
			return payment.IdempotencyKey{}, false, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "out_trade_no already exists", Err: err}
		}
		return payment.IdempotencyKey{}, false, mapError(op, err)
	}
	var stored payment.IdempotencyKey
	if key != nil {
		tag, err := tx.Exec(ctx, `INSERT INTO payment_idempotency_keys
			(account_id, key, request_hash, out_trade_no, created_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6)
			ON CONFLICT (account_id, key) DO NOTHING`,
			string(key.Account), key.Key, key.RequestHash, key.OutTradeNo, payrows.Micros(key.CreatedAt), payrows.Micros(key.ExpiresAt))
		if err != nil {
			return payment.IdempotencyKey{}, false, mapError(op, err)
		}
		if tag.RowsAffected() == 0 {
			return payment.IdempotencyKey{}, false, errKeyTaken // roll the order back
		}
		stored = *key
	}
	return stored, true, nil
}

// WriteOrders implements payment.Store: one READ COMMITTED transaction,
// with synchronous_commit off when every item is relaxed, each item in a
// savepoint (pgx's nested transaction) rolled back when it fails, which
// also clears the transaction's aborted state. Items run in out_trade_no
// order, whatever their order in ws: two committers' batches then lock
// the rows they update in the same order and never deadlock.
func (s *Store) WriteOrders(ctx context.Context, ws []payment.OrderWrite) []error {
	const op = "postgres.WriteOrders"
	errs := make([]error, len(ws))
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	no := func(w *payment.OrderWrite) string {
		if w.Create != nil {
			return w.Create.OutTradeNo
		}
		return w.OutTradeNo
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(no(&ws[a]), no(&ws[b])) })
	err := s.pgPayTx(ctx, op, func(tx pgx.Tx) error {
		if !payment.StrictBatch(ws) {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
				return mapError(op, err)
			}
		}
		for _, i := range order {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return mapError(op+": savepoint", err)
			}
			if errs[i] = pgWriteItem(ctx, sp, &ws[i]); errs[i] == nil {
				if err := sp.Commit(ctx); err != nil {
					return mapError(op+": release savepoint", err)
				}
				continue
			}
			if err := sp.Rollback(ctx); err != nil {
				return mapError(op+": rollback to savepoint", err)
			}
			if errors.Is(errs[i], errKeyTaken) {
				w := &ws[i]
				w.Stored, errs[i] = pgGetKey(ctx, tx, w.Key.Account, w.Key.Key, w.Key.CreatedAt)
				w.Created = false
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// pgWriteItem runs one item of WriteOrders in tx, filling its results.
func pgWriteItem(ctx context.Context, tx pgx.Tx, w *payment.OrderWrite) (err error) {
	if w.Create != nil {
		w.Stored, w.Created, err = pgCreateOrder(ctx, tx, *w.Create, w.Key)
		return err
	}
	w.Before, w.Order, err = pgUpdateOrder(ctx, tx, w.OutTradeNo, w.Fn)
	return err
}

func pgGetKey(ctx context.Context, q pgQueryer, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	k := payment.IdempotencyKey{Account: account, Key: key}
	var created, expires int64
	err := q.QueryRow(ctx, `SELECT request_hash, out_trade_no, created_at, expires_at
		FROM payment_idempotency_keys WHERE account_id = $1 AND key = $2 AND expires_at > $3`,
		string(account), key, payrows.Micros(now)).Scan(&k.RequestHash, &k.OutTradeNo, &created, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, payrows.NotFound("postgres.IdempotencyKey", "idempotency key")
	}
	if err != nil {
		return k, mapError("postgres.IdempotencyKey", err)
	}
	k.CreatedAt, k.ExpiresAt = payrows.FromMicros(created), payrows.FromMicros(expires)
	return k, nil
}

// IdempotencyKey implements payment.Store.
func (s *Store) IdempotencyKey(ctx context.Context, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	return pgGetKey(ctx, s.pool, account, key, now)
}

// DeleteExpiredKeys implements payment.Store.
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM payment_idempotency_keys WHERE expires_at <= $1`, payrows.Micros(now))
	if err != nil {
		return 0, mapError("postgres.DeleteExpiredKeys", err)
	}
	return int(tag.RowsAffected()), nil
}

// Order implements payment.Store.
func (s *Store) Order(ctx context.Context, outTradeNo string) (payment.Order, error) {
	return pgGetOrder(ctx, s.pool, "out_trade_no", outTradeNo, "")
}

// OrderByTokenHash implements payment.Store.
func (s *Store) OrderByTokenHash(ctx context.Context, tokenHash string) (payment.Order, error) {
	if tokenHash == "" {
		return payment.Order{}, payrows.NotFound("postgres.OrderByTokenHash", "order")
	}
	return pgGetOrder(ctx, s.pool, "token_hash", tokenHash, "")
}

func pgGetOrder(ctx context.Context, q pgQueryer, col, v, suffix string) (payment.Order, error) {
	o, err := payrows.ScanOrder(q.QueryRow(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders WHERE `+col+` = $1`+suffix, v))
	if errors.Is(err, pgx.ErrNoRows) {
		return o, payrows.NotFound("postgres.Order", "order")
	}
	if err != nil {
		return o, mapError("postgres.Order", err)
	}
	return o, nil
}

// OrdersByNo implements payment.Store.
func (s *Store) OrdersByNo(ctx context.Context, outTradeNos []string) ([]payment.Order, error) {
	if len(outTradeNos) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders
		WHERE out_trade_no = ANY($1) ORDER BY out_trade_no`, outTradeNos)
	if err != nil {
		return nil, mapError("postgres.OrdersByNo", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Order, error) { return payrows.ScanOrder(r) })
	if err != nil {
		return nil, mapError("postgres.OrdersByNo", err)
	}
	return out, nil
}

// ListOrders implements payment.Store.
func (s *Store) ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]payment.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders
		WHERE account_id = $1 ORDER BY created_at DESC, out_trade_no DESC LIMIT $2`, string(account), limit)
	if err != nil {
		return nil, mapError("postgres.ListOrders", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Order, error) { return payrows.ScanOrder(r) })
	if err != nil {
		return nil, mapError("postgres.ListOrders", err)
	}
	return out, nil
}

// UpdateOrder implements payment.Store.
func (s *Store) UpdateOrder(ctx context.Context, outTradeNo string, fn func(*payment.Order) error) (payment.Order, error) {
	const op = "postgres.UpdateOrder"
	var out payment.Order
	err := s.pgPayTx(ctx, op, func(tx pgx.Tx) (err error) {
		_, out, err = pgUpdateOrder(ctx, tx, outTradeNo, fn)
		return err
	})
	return out, err
}

// pgUpdateOrder is UpdateOrder's work inside tx: it returns the order as
// read (locked) and as written.
func pgUpdateOrder(ctx context.Context, tx pgx.Tx, outTradeNo string, fn func(*payment.Order) error) (old, o payment.Order, err error) {
	const op = "postgres.UpdateOrder"
	old, err = pgGetOrder(ctx, tx, "out_trade_no", outTradeNo, " FOR UPDATE")
	if err != nil {
		return old, o, err
	}
	o = old
	if err := fn(&o); err != nil {
		return old, o, err
	}
	o.OutTradeNo = old.OutTradeNo
	args := payrows.OrderArgs(&o)[:payrows.OrderUpdated]
	if _, err := tx.Exec(ctx, `UPDATE payment_orders SET account_id = $2, fen = $3, credits = $4, package_id = $5,
		api_version = $6, sign_type = $7, status = $8, code_url = $9, transaction_id = $10, device_fingerprint = $11,
		client_ip = $12, token_hash = $13, token_expires_at = $14, grant_cap = $15, expires_at = $16, created_at = $17,
		updated_at = $18, next_poll_at = $19, poll_attempts = $20, lease_owner = $21, lease_until = $22, review = $23,
		fee_fen = $24, method = $25, openid = $26, h5_url = $27, prepay_id = $28,
		h5_issued_at = $29 WHERE out_trade_no = $1`, args...); err != nil {
		return old, o, mapError(op, err)
	}
	if e, ok, err := payment.ClosedEvent(old, o); err != nil {
		return old, o, err
	} else if ok {
		if _, err := tx.Exec(ctx, appendEventSQL, eventArgs(e)...); err != nil {
			return old, o, mapError(op+": webhook event", err)
		}
	}
	return old, o, nil
}

// LeaseDueOrders implements payment.Store.
func (s *Store) LeaseDueOrders(ctx context.Context, owner string, now, until time.Time, limit int) ([]payment.Order, error) {
	rows, err := s.pool.Query(ctx, `UPDATE payment_orders SET lease_owner = $1, lease_until = $2
		WHERE out_trade_no IN (SELECT out_trade_no FROM payment_orders
			WHERE status IN ('NOTPAY', 'USERPAYING') AND next_poll_at <= $3 AND lease_until <= $3
			ORDER BY next_poll_at, out_trade_no LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING `+payrows.OrderColumns, owner, payrows.Micros(until), payrows.Micros(now), limit)
	if err != nil {
		return nil, mapError("postgres.LeaseDueOrders", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Order, error) { return payrows.ScanOrder(r) })
	if err != nil {
		return nil, mapError("postgres.LeaseDueOrders", err)
	}
	return out, nil
}

// CreateRefund implements payment.Store.
func (s *Store) CreateRefund(ctx context.Context, r payment.RefundRecord) (payment.RefundRecord, error) {
	const op = "postgres.CreateRefund"
	if _, err := s.pool.Exec(ctx, `INSERT INTO payment_refunds (`+payrows.RefundColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT (out_refund_no) DO NOTHING`, payrows.RefundArgs(&r)...); err != nil {
		return payment.RefundRecord{}, mapError(op, err)
	}
	got, err := s.Refund(ctx, r.OutRefundNo)
	if err != nil {
		return got, err
	}
	if got.OutTradeNo != r.OutTradeNo {
		return payment.RefundRecord{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "refund number belongs to another order"}
	}
	return got, nil
}

func pgGetRefund(ctx context.Context, q pgQueryer, no, suffix string) (payment.RefundRecord, error) {
	r, err := payrows.ScanRefund(q.QueryRow(ctx, `SELECT `+payrows.RefundColumns+` FROM payment_refunds WHERE out_refund_no = $1`+suffix, no))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, payrows.NotFound("postgres.Refund", "refund")
	}
	if err != nil {
		return r, mapError("postgres.Refund", err)
	}
	return r, nil
}

// Refund implements payment.Store.
func (s *Store) Refund(ctx context.Context, outRefundNo string) (payment.RefundRecord, error) {
	return pgGetRefund(ctx, s.pool, outRefundNo, "")
}

func (s *Store) pgQueryRefunds(ctx context.Context, op, q string, args ...any) ([]payment.RefundRecord, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.RefundRecord, error) { return payrows.ScanRefund(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	return out, nil
}

// RefundsByOrder implements payment.Store.
func (s *Store) RefundsByOrder(ctx context.Context, outTradeNo string) ([]payment.RefundRecord, error) {
	return s.pgQueryRefunds(ctx, "postgres.RefundsByOrder", `SELECT `+payrows.RefundColumns+` FROM payment_refunds
		WHERE out_trade_no = $1 ORDER BY created_at, out_refund_no`, outTradeNo)
}

// UpdateRefund implements payment.Store.
func (s *Store) UpdateRefund(ctx context.Context, outRefundNo string, fn func(*payment.RefundRecord) error) (payment.RefundRecord, error) {
	const op = "postgres.UpdateRefund"
	var out payment.RefundRecord
	err := s.pgPayTx(ctx, op, func(tx pgx.Tx) error {
		old, err := pgGetRefund(ctx, tx, outRefundNo, " FOR UPDATE")
		if err != nil {
			return err
		}
		r := old
		if err := fn(&r); err != nil {
			return err
		}
		r.OutRefundNo = old.OutRefundNo
		if _, err := tx.Exec(ctx, `UPDATE payment_refunds SET out_trade_no = $2, account_id = $3, fen = $4,
			credits = $5, status = $6, created_at = $7, updated_at = $8, next_poll_at = $9, poll_attempts = $10,
			lease_owner = $11, lease_until = $12 WHERE out_refund_no = $1`, payrows.RefundArgs(&r)[:payrows.RefundUpdated]...); err != nil {
			return mapError(op, err)
		}
		out = r
		return nil
	})
	return out, err
}

// LeaseDueRefunds implements payment.Store.
func (s *Store) LeaseDueRefunds(ctx context.Context, owner string, now, until time.Time, limit int) ([]payment.RefundRecord, error) {
	return s.pgQueryRefunds(ctx, "postgres.LeaseDueRefunds", `UPDATE payment_refunds SET lease_owner = $1, lease_until = $2
		WHERE out_refund_no IN (SELECT out_refund_no FROM payment_refunds
			WHERE status = 'pending' AND next_poll_at <= $3 AND lease_until <= $3
			ORDER BY next_poll_at, out_refund_no LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING `+payrows.RefundColumns, owner, payrows.Micros(until), payrows.Micros(now), limit)
}

// PaymentTotals implements payment.Store.
func (s *Store) PaymentTotals(ctx context.Context, from, to time.Time) (payment.PaymentTotals, error) {
	var t payment.PaymentTotals
	var gross, refunded, fee int64
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*), COUNT(o.out_trade_no), COALESCE(SUM(l.fen), 0)::BIGINT,
		COALESCE(SUM(l.refunded_fen), 0)::BIGINT, COALESCE(SUM(o.fee_fen), 0)::BIGINT
		FROM lots AS l LEFT JOIN payment_orders AS o ON o.out_trade_no = l.out_trade_no
		WHERE l.created_at >= $1 AND l.created_at < $2 AND l.fen > 0`, from.UTC(), to.UTC()).
		Scan(&t.Lots, &t.Orders, &gross, &refunded, &fee)
	if err != nil {
		return t, mapError("postgres.PaymentTotals", err)
	}
	t.GrossFen, t.RefundedFen, t.FeeFen = tollgate.Fen(gross), tollgate.Fen(refunded), tollgate.Fen(fee)
	return t, nil
}

func pgPlaceholder(n int) string { return fmt.Sprintf("$%d", n) }

// OrdersPage implements payment.Store.
func (s *Store) OrdersPage(ctx context.Context, q payment.OrderQuery) ([]payment.Order, error) {
	query, args := payrows.OrdersPage(q, pgPlaceholder)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapError("postgres.OrdersPage", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Order, error) { return payrows.ScanOrder(r) })
	if err != nil {
		return nil, mapError("postgres.OrdersPage", err)
	}
	if out == nil {
		out = []payment.Order{}
	}
	return out, nil
}

// RefundsPage implements payment.Store.
func (s *Store) RefundsPage(ctx context.Context, q payment.RefundQuery) ([]payment.RefundRecord, error) {
	query, args := payrows.RefundsPage(q, pgPlaceholder)
	out, err := s.pgQueryRefunds(ctx, "postgres.RefundsPage", query, args...)
	if out == nil && err == nil {
		out = []payment.RefundRecord{}
	}
	return out, err
}

// HourlyOrders implements payment.HourlyReporter.
func (s *Store) HourlyOrders(ctx context.Context, from, to time.Time) ([]payment.OrderHour, error) {
	if err := payment.CheckHourly(from, to); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, payrows.HourlyOrders(pgPlaceholder), payrows.Micros(from), payrows.Micros(to))
	if err != nil {
		return nil, mapError("postgres.HourlyOrders", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.OrderHour, error) { return payrows.ScanHour(r, from) })
	if err != nil {
		return nil, mapError("postgres.HourlyOrders", err)
	}
	if out == nil {
		out = []payment.OrderHour{}
	}
	return out, nil
}
