package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"tollgate"
	"tollgate/payment"
	"tollgate/store/internal/payrows"
	"tollgate/webhook"
)

// The SQLite store is also the payment.Store: orders, idempotency keys and
// refund bookkeeping (migration 0002_payments.sql). Writes run on the one
// writer connection in BEGIN IMMEDIATE transactions, so a read-modify-write
// (UpdateOrder) or a lease claim (LeaseDueOrders) is never interleaved with
// another writer; plain reads use the read-only pool (WAL: they see every
// committed write and never wait for the writer).
var _ payment.Store = (*Store)(nil)

// payWriteTx runs fn in one write transaction (BEGIN IMMEDIATE on the writer).
func (s *Store) payWriteTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// CreateOrder implements payment.Store.
func (s *Store) CreateOrder(ctx context.Context, o payment.Order, key *payment.IdempotencyKey) (payment.IdempotencyKey, bool, error) {
	const op = "sqlite.CreateOrder"
	var stored payment.IdempotencyKey
	created := false
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) (err error) {
		stored, created, err = payCreateOrder(ctx, tx, o, key)
		return err
	})
	if err != nil {
		return payment.IdempotencyKey{}, false, err
	}
	return stored, created, nil
}

// payCreateOrder is CreateOrder's work inside tx.
func payCreateOrder(ctx context.Context, tx payTx, o payment.Order, key *payment.IdempotencyKey) (payment.IdempotencyKey, bool, error) {
	const op = "sqlite.CreateOrder"
	if key != nil {
		k, err := payGetKey(ctx, tx, key.Account, key.Key, key.CreatedAt)
		if err == nil {
			return k, false, nil
		}
		if tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
			return payment.IdempotencyKey{}, false, err
		}
		// An expired key with the same name is replaced.
		if _, err := tx.ExecContext(ctx, `DELETE FROM payment_idempotency_keys WHERE account_id = ? AND key = ?`,
			string(key.Account), key.Key); err != nil {
			return payment.IdempotencyKey{}, false, fmt.Errorf("%s: %w", op, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM payment_orders WHERE out_trade_no = ?`, o.OutTradeNo).Scan(&n); err != nil {
		return payment.IdempotencyKey{}, false, fmt.Errorf("%s: %w", op, err)
	}
	if n > 0 {
		return payment.IdempotencyKey{}, false, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "out_trade_no already exists"}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO payment_orders (`+payrows.OrderColumns+`)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, payrows.OrderArgs(&o)...); err != nil {
		return payment.IdempotencyKey{}, false, fmt.Errorf("%s: insert order: %w", op, err)
	}
	var stored payment.IdempotencyKey
	if key != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_idempotency_keys
			(account_id, key, request_hash, out_trade_no, created_at, expires_at) VALUES (?,?,?,?,?,?)`,
			string(key.Account), key.Key, key.RequestHash, key.OutTradeNo, payrows.Micros(key.CreatedAt), payrows.Micros(key.ExpiresAt)); err != nil {
			return payment.IdempotencyKey{}, false, fmt.Errorf("%s: insert key: %w", op, err)
		}
		stored = *key
	}
	return stored, true, nil
}

// WriteOrders implements payment.Store: one BEGIN IMMEDIATE transaction
// on the writer, committed with synchronous=FULL unless every item is
// relaxed (then NORMAL, as relaxedWriteTx), each item between SAVEPOINT
// and RELEASE, or rolled back to its savepoint when it fails. SQLite's
// failing statements abort only themselves, so the transaction goes on.
func (s *Store) WriteOrders(ctx context.Context, ws []payment.OrderWrite) []error {
	const op = "sqlite.WriteOrders"
	errs := make([]error, len(ws))
	run := func(sqlTx *sql.Tx) error {
		// The batch's statements are few and the same every time:
		// prepared once (the writer's cache), not parsed per item.
		tx := cachedTx{sqlTx, &s.wstmt}
		for i := range ws {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT order_write`); err != nil {
				return err
			}
			if errs[i] = payWriteItem(ctx, tx, &ws[i]); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO order_write`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE order_write`); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if payment.StrictBatch(ws) {
		err = s.writeTx(ctx, op, run)
	} else {
		err = s.relaxedWriteTx(ctx, op, run)
	}
	s.wstmt.prepareQueued(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// payTx is what an order write needs of its transaction: a *sql.Tx, or
// one that runs its statements through the writer's cache (cachedTx).
type payTx interface {
	querier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// payWriteItem runs one item of WriteOrders in tx, filling its results.
func payWriteItem(ctx context.Context, tx payTx, w *payment.OrderWrite) (err error) {
	if w.Create != nil {
		w.Stored, w.Created, err = payCreateOrder(ctx, tx, *w.Create, w.Key)
		return err
	}
	w.Before, w.Order, err = payUpdateOrder(ctx, tx, w.OutTradeNo, w.Fn)
	return err
}

type payQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func payGetKey(ctx context.Context, q payQueryer, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	k := payment.IdempotencyKey{Account: account, Key: key}
	var created, expires int64
	err := q.QueryRowContext(ctx, `SELECT request_hash, out_trade_no, created_at, expires_at
		FROM payment_idempotency_keys WHERE account_id = ? AND key = ? AND expires_at > ?`,
		string(account), key, payrows.Micros(now)).Scan(&k.RequestHash, &k.OutTradeNo, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return k, payrows.NotFound("sqlite.IdempotencyKey", "idempotency key")
	}
	if err != nil {
		return k, fmt.Errorf("sqlite.IdempotencyKey: %w", err)
	}
	k.CreatedAt, k.ExpiresAt = payrows.FromMicros(created), payrows.FromMicros(expires)
	return k, nil
}

// IdempotencyKey implements payment.Store.
func (s *Store) IdempotencyKey(ctx context.Context, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	return payGetKey(ctx, cachedDB{s.reader, &s.rstmt}, account, key, now)
}

// DeleteExpiredKeys implements payment.Store.
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM payment_idempotency_keys WHERE expires_at <= ?`, payrows.Micros(now))
	if err != nil {
		return 0, fmt.Errorf("sqlite.DeleteExpiredKeys: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Order implements payment.Store.
func (s *Store) Order(ctx context.Context, outTradeNo string) (payment.Order, error) {
	return payGetOrder(ctx, cachedDB{s.reader, &s.rstmt}, "out_trade_no", outTradeNo)
}

// OrderByTokenHash implements payment.Store.
func (s *Store) OrderByTokenHash(ctx context.Context, tokenHash string) (payment.Order, error) {
	if tokenHash == "" {
		return payment.Order{}, payrows.NotFound("sqlite.OrderByTokenHash", "order")
	}
	return payGetOrder(ctx, cachedDB{s.reader, &s.rstmt}, "token_hash", tokenHash)
}

func payGetOrder(ctx context.Context, q payQueryer, col, v string) (payment.Order, error) {
	o, err := payrows.ScanOrder(q.QueryRowContext(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders WHERE `+col+` = ?`, v))
	if errors.Is(err, sql.ErrNoRows) {
		return o, payrows.NotFound("sqlite.Order", "order")
	}
	if err != nil {
		return o, fmt.Errorf("sqlite.Order: %w", err)
	}
	return o, nil
}

// OrdersByNo implements payment.Store.
func (s *Store) OrdersByNo(ctx context.Context, outTradeNos []string) ([]payment.Order, error) {
	if len(outTradeNos) == 0 {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders
		WHERE out_trade_no IN (SELECT value FROM json_each(?)) ORDER BY out_trade_no`, jsonSet(outTradeNos))
	if err != nil {
		return nil, fmt.Errorf("sqlite.OrdersByNo: %w", err)
	}
	defer rows.Close()
	var out []payment.Order
	for rows.Next() {
		o, err := payrows.ScanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite.OrdersByNo: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.OrdersByNo: %w", err)
	}
	return out, nil
}

// ListOrders implements payment.Store.
func (s *Store) ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]payment.Order, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+payrows.OrderColumns+` FROM payment_orders
		WHERE account_id = ? ORDER BY created_at DESC, out_trade_no DESC LIMIT ?`, string(account), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite.ListOrders: %w", err)
	}
	defer rows.Close()
	var out []payment.Order
	for rows.Next() {
		o, err := payrows.ScanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite.ListOrders: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.ListOrders: %w", err)
	}
	return out, nil
}

// UpdateOrder implements payment.Store.
func (s *Store) UpdateOrder(ctx context.Context, outTradeNo string, fn func(*payment.Order) error) (payment.Order, error) {
	const op = "sqlite.UpdateOrder"
	var out payment.Order
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) (err error) {
		_, out, err = payUpdateOrder(ctx, tx, outTradeNo, fn)
		return err
	})
	return out, err
}

// payUpdateOrder is UpdateOrder's work inside tx: it returns the order as
// read and as written.
func payUpdateOrder(ctx context.Context, tx payTx, outTradeNo string, fn func(*payment.Order) error) (old, o payment.Order, err error) {
	const op = "sqlite.UpdateOrder"
	old, err = payGetOrder(ctx, tx, "out_trade_no", outTradeNo)
	if err != nil {
		return old, o, err
	}
	o = old
	if err := fn(&o); err != nil {
		return old, o, err
	}
	o.OutTradeNo = old.OutTradeNo
	if err := payWriteOrder(ctx, tx, &o); err != nil {
		return old, o, fmt.Errorf("%s: %w", op, err)
	}
	if e, ok, err := payment.ClosedEvent(old, o); err != nil {
		return old, o, err
	} else if ok {
		if _, err := (&txn{q: tx}).appendEvents(ctx, []webhook.Event{e}); err != nil {
			return old, o, fmt.Errorf("%s: %w", op, err)
		}
	}
	return old, o, nil
}

func payWriteOrder(ctx context.Context, tx payTx, o *payment.Order) error {
	args := payrows.OrderArgs(o)[:payrows.OrderUpdated]
	_, err := tx.ExecContext(ctx, `UPDATE payment_orders SET account_id = ?, fen = ?, credits = ?, package_id = ?,
		api_version = ?, sign_type = ?, status = ?, code_url = ?, transaction_id = ?, device_fingerprint = ?,
		client_ip = ?, token_hash = ?, token_expires_at = ?, grant_cap = ?, expires_at = ?, created_at = ?,
		updated_at = ?, next_poll_at = ?, poll_attempts = ?, lease_owner = ?, lease_until = ?, review = ?,
		fee_fen = ?, method = ?, openid = ?, h5_url = ?, prepay_id = ?,
		h5_issued_at = ? WHERE out_trade_no = ?`, append(args[1:], args[0])...)
	return err
}

// LeaseDueOrders implements payment.Store. The claim commits relaxed
// (synchronous=NORMAL, relaxedWriteTx): a lease a power cut loses only
// lets the order be claimed again, and the poller's rounds need not wait
// for the disk ahead of the notifications sharing the writer. The
// subquery walks payment_orders_due (partial, pending orders only).
func (s *Store) LeaseDueOrders(ctx context.Context, owner string, now, until time.Time, limit int) ([]payment.Order, error) {
	const op = "sqlite.LeaseDueOrders"
	var out []payment.Order
	err := s.relaxedWriteTx(ctx, op, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `UPDATE payment_orders SET lease_owner = ?, lease_until = ?
		WHERE out_trade_no IN (SELECT out_trade_no FROM payment_orders
			WHERE status IN ('NOTPAY', 'USERPAYING') AND next_poll_at <= ? AND lease_until <= ?
			ORDER BY next_poll_at, out_trade_no LIMIT ?)
		RETURNING `+payrows.OrderColumns, owner, payrows.Micros(until), payrows.Micros(now), payrows.Micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			o, err := payrows.ScanOrder(rows)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateRefund implements payment.Store.
func (s *Store) CreateRefund(ctx context.Context, r payment.RefundRecord) (payment.RefundRecord, error) {
	const op = "sqlite.CreateRefund"
	var out payment.RefundRecord
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) error {
		old, err := payGetRefund(ctx, tx, r.OutRefundNo)
		if err == nil {
			if old.OutTradeNo != r.OutTradeNo {
				return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "refund number belongs to another order"}
			}
			out = old
			return nil
		}
		if tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_refunds (`+payrows.RefundColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, payrows.RefundArgs(&r)...); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		out = r
		return nil
	})
	return out, err
}

func payGetRefund(ctx context.Context, q payQueryer, no string) (payment.RefundRecord, error) {
	r, err := payrows.ScanRefund(q.QueryRowContext(ctx, `SELECT `+payrows.RefundColumns+` FROM payment_refunds WHERE out_refund_no = ?`, no))
	if errors.Is(err, sql.ErrNoRows) {
		return r, payrows.NotFound("sqlite.Refund", "refund")
	}
	if err != nil {
		return r, fmt.Errorf("sqlite.Refund: %w", err)
	}
	return r, nil
}

// Refund implements payment.Store.
func (s *Store) Refund(ctx context.Context, outRefundNo string) (payment.RefundRecord, error) {
	return payGetRefund(ctx, s.reader, outRefundNo)
}

// RefundsByOrder implements payment.Store.
func (s *Store) RefundsByOrder(ctx context.Context, outTradeNo string) ([]payment.RefundRecord, error) {
	return payQueryRefunds(ctx, s.reader, `SELECT `+payrows.RefundColumns+` FROM payment_refunds
		WHERE out_trade_no = ? ORDER BY created_at, out_refund_no`, outTradeNo)
}

func payQueryRefunds(ctx context.Context, db *sql.DB, q string, args ...any) ([]payment.RefundRecord, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: refunds: %w", err)
	}
	defer rows.Close()
	var out []payment.RefundRecord
	for rows.Next() {
		r, err := payrows.ScanRefund(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: refunds: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: refunds: %w", err)
	}
	return out, nil
}

// UpdateRefund implements payment.Store.
func (s *Store) UpdateRefund(ctx context.Context, outRefundNo string, fn func(*payment.RefundRecord) error) (payment.RefundRecord, error) {
	const op = "sqlite.UpdateRefund"
	var out payment.RefundRecord
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) error {
		old, err := payGetRefund(ctx, tx, outRefundNo)
		if err != nil {
			return err
		}
		r := old
		if err := fn(&r); err != nil {
			return err
		}
		r.OutRefundNo = old.OutRefundNo
		args := payrows.RefundArgs(&r)
		if _, err := tx.ExecContext(ctx, `UPDATE payment_refunds SET out_trade_no = ?, account_id = ?, fen = ?,
			credits = ?, status = ?, created_at = ?, updated_at = ?, next_poll_at = ?, poll_attempts = ?,
			lease_owner = ?, lease_until = ? WHERE out_refund_no = ?`, append(args[1:payrows.RefundUpdated], args[0])...); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		out = r
		return nil
	})
	return out, err
}

// LeaseDueRefunds implements payment.Store.
func (s *Store) LeaseDueRefunds(ctx context.Context, owner string, now, until time.Time, limit int) ([]payment.RefundRecord, error) {
	return payQueryRefunds(ctx, s.writer, `UPDATE payment_refunds SET lease_owner = ?, lease_until = ?
		WHERE out_refund_no IN (SELECT out_refund_no FROM payment_refunds
			WHERE status = 'pending' AND next_poll_at <= ? AND lease_until <= ?
			ORDER BY next_poll_at, out_refund_no LIMIT ?)
		RETURNING `+payrows.RefundColumns, owner, payrows.Micros(until), payrows.Micros(now), payrows.Micros(now), limit)
}

// PaymentTotals implements payment.Store.
func (s *Store) PaymentTotals(ctx context.Context, from, to time.Time) (payment.PaymentTotals, error) {
	var t payment.PaymentTotals
	err := s.reader.QueryRowContext(ctx, `SELECT count(*), count(o.out_trade_no), coalesce(sum(l.fen), 0),
		coalesce(sum(l.refunded_fen), 0), coalesce(sum(o.fee_fen), 0)
		FROM lots AS l LEFT JOIN payment_orders AS o ON o.out_trade_no = l.out_trade_no
		WHERE l.created_at >= ? AND l.created_at < ? AND l.fen > 0`, micros(from), micros(to)).
		Scan(&t.Lots, &t.Orders, &t.GrossFen, &t.RefundedFen, &t.FeeFen)
	if err != nil {
		return t, fmt.Errorf("sqlite.PaymentTotals: %w", err)
	}
	return t, nil
}

// sqlitePlaceholder numbers placeholders (?NNN), so that one may appear
// twice in a query.
func sqlitePlaceholder(n int) string { return "?" + strconv.Itoa(n) }

// OrdersPage implements payment.Store.
func (s *Store) OrdersPage(ctx context.Context, q payment.OrderQuery) ([]payment.Order, error) {
	query, args := payrows.OrdersPage(q, sqlitePlaceholder)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite.OrdersPage: %w", err)
	}
	defer rows.Close()
	out := []payment.Order{}
	for rows.Next() {
		o, err := payrows.ScanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite.OrdersPage: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.OrdersPage: %w", err)
	}
	return out, nil
}

// RefundsPage implements payment.Store.
func (s *Store) RefundsPage(ctx context.Context, q payment.RefundQuery) ([]payment.RefundRecord, error) {
	query, args := payrows.RefundsPage(q, sqlitePlaceholder)
	out, err := payQueryRefunds(ctx, s.reader, query, args...)
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
	rows, err := s.reader.QueryContext(ctx, payrows.HourlyOrders(sqlitePlaceholder), micros(from), micros(to))
	if err != nil {
		return nil, fmt.Errorf("sqlite.HourlyOrders: %w", err)
	}
	defer rows.Close()
	out := []payment.OrderHour{}
	for rows.Next() {
		h, err := payrows.ScanHour(rows, from)
		if err != nil {
			return nil, fmt.Errorf("sqlite.HourlyOrders: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.HourlyOrders: %w", err)
	}
	return out, nil
}
