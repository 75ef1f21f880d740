package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"tollgate"
	"tollgate/payment"
)

// The SQLite store is also the payment.Store: orders, idempotency keys and
// refund bookkeeping (migration 0002_payments.sql). Writes run on the one
// writer connection in BEGIN IMMEDIATE transactions, so a read-modify-write
// (UpdateOrder) or a lease claim (LeaseDueOrders) is never interleaved with
// another writer; plain reads use the read-only pool (WAL: they see every
// committed write and never wait for the writer).
var _ payment.Store = (*Store)(nil)

const payOrderColumns = `out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status,
	code_url, transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap,
	expires_at, created_at, updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen`

const payRefundColumns = `out_refund_no, out_trade_no, account_id, fen, credits, status, created_at, updated_at,
	next_poll_at, poll_attempts, lease_owner, lease_until`

// payPmicros stores t as unix microseconds, 0 for the zero time.
func payPmicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixMicro()
}

func payPfrom(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func payOrderArgs(o *payment.Order) []any {
	return []any{o.OutTradeNo, string(o.Account), int64(o.Fen), int64(o.Credits), o.PackageID, o.APIVersion,
		o.SignType, string(o.Status), o.CodeURL, o.TransactionID, o.DeviceFingerprint, o.ClientIP, o.TokenHash,
		payPmicros(o.TokenExpiresAt), int64(o.GrantCap), payPmicros(o.ExpiresAt), payPmicros(o.CreatedAt),
		payPmicros(o.UpdatedAt), payPmicros(o.NextPollAt), o.PollAttempts, o.LeaseOwner, payPmicros(o.LeaseUntil),
		o.Review, int64(o.FeeFen)}
}

type payScanner interface{ Scan(dest ...any) error }

func payScanOrder(r payScanner) (payment.Order, error) {
	var o payment.Order
	var account, status string
	var fen, credits, grantCap, fee, tokExp, exp, created, updated, next, lease int64
	err := r.Scan(&o.OutTradeNo, &account, &fen, &credits, &o.PackageID, &o.APIVersion, &o.SignType, &status,
		&o.CodeURL, &o.TransactionID, &o.DeviceFingerprint, &o.ClientIP, &o.TokenHash, &tokExp, &grantCap,
		&exp, &created, &updated, &next, &o.PollAttempts, &o.LeaseOwner, &lease, &o.Review, &fee)
	if err != nil {
		return o, err
	}
	o.Account, o.Status = tollgate.AccountID(account), payment.Status(status)
	o.Fen, o.Credits, o.GrantCap, o.FeeFen = tollgate.Fen(fen), tollgate.Credits(credits), tollgate.Credits(grantCap), tollgate.Fen(fee)
	o.TokenExpiresAt, o.ExpiresAt, o.CreatedAt, o.UpdatedAt = payPfrom(tokExp), payPfrom(exp), payPfrom(created), payPfrom(updated)
	o.NextPollAt, o.LeaseUntil = payPfrom(next), payPfrom(lease)
	return o, nil
}

func payRefundArgs(r *payment.RefundRecord) []any {
	return []any{r.OutRefundNo, r.OutTradeNo, string(r.Account), int64(r.Fen), int64(r.Credits), string(r.Status),
		payPmicros(r.CreatedAt), payPmicros(r.UpdatedAt), payPmicros(r.NextPollAt), r.PollAttempts, r.LeaseOwner,
		payPmicros(r.LeaseUntil)}
}

func payScanRefund(sc payScanner) (payment.RefundRecord, error) {
	var r payment.RefundRecord
	var account, status string
	var fen, credits, created, updated, next, lease int64
	err := sc.Scan(&r.OutRefundNo, &r.OutTradeNo, &account, &fen, &credits, &status, &created, &updated,
		&next, &r.PollAttempts, &r.LeaseOwner, &lease)
	if err != nil {
		return r, err
	}
	r.Account, r.Status = tollgate.AccountID(account), payment.RefundStatus(status)
	r.Fen, r.Credits = tollgate.Fen(fen), tollgate.Credits(credits)
	r.CreatedAt, r.UpdatedAt, r.NextPollAt, r.LeaseUntil = payPfrom(created), payPfrom(updated), payPfrom(next), payPfrom(lease)
	return r, nil
}

func payNotFound(op, what string) error {
	return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: what + " not found"}
}

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
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) error {
		if key != nil {
			k, err := payGetKey(ctx, tx, key.Account, key.Key, key.CreatedAt)
			if err == nil {
				stored = k
				return nil
			}
			if tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
				return err
			}
			// An expired key with the same name is replaced.
			if _, err := tx.ExecContext(ctx, `DELETE FROM payment_idempotency_keys WHERE account_id = ? AND key = ?`,
				string(key.Account), key.Key); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM payment_orders WHERE out_trade_no = ?`, o.OutTradeNo).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if n > 0 {
			return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "out_trade_no already exists"}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_orders (`+payOrderColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, payOrderArgs(&o)...); err != nil {
			return fmt.Errorf("%s: insert order: %w", op, err)
		}
		if key != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO payment_idempotency_keys
				(account_id, key, request_hash, out_trade_no, created_at, expires_at) VALUES (?,?,?,?,?,?)`,
				string(key.Account), key.Key, key.RequestHash, key.OutTradeNo, payPmicros(key.CreatedAt), payPmicros(key.ExpiresAt)); err != nil {
				return fmt.Errorf("%s: insert key: %w", op, err)
			}
			stored = *key
		}
		created = true
		return nil
	})
	if err != nil {
		return payment.IdempotencyKey{}, false, err
	}
	return stored, created, nil
}

type payQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func payGetKey(ctx context.Context, q payQueryer, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	k := payment.IdempotencyKey{Account: account, Key: key}
	var created, expires int64
	err := q.QueryRowContext(ctx, `SELECT request_hash, out_trade_no, created_at, expires_at
		FROM payment_idempotency_keys WHERE account_id = ? AND key = ? AND expires_at > ?`,
		string(account), key, payPmicros(now)).Scan(&k.RequestHash, &k.OutTradeNo, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return k, payNotFound("sqlite.IdempotencyKey", "idempotency key")
	}
	if err != nil {
		return k, fmt.Errorf("sqlite.IdempotencyKey: %w", err)
	}
	k.CreatedAt, k.ExpiresAt = payPfrom(created), payPfrom(expires)
	return k, nil
}

// IdempotencyKey implements payment.Store.
func (s *Store) IdempotencyKey(ctx context.Context, account tollgate.AccountID, key string, now time.Time) (payment.IdempotencyKey, error) {
	return payGetKey(ctx, s.reader, account, key, now)
}

// DeleteExpiredKeys implements payment.Store.
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM payment_idempotency_keys WHERE expires_at <= ?`, payPmicros(now))
	if err != nil {
		return 0, fmt.Errorf("sqlite.DeleteExpiredKeys: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Order implements payment.Store.
func (s *Store) Order(ctx context.Context, outTradeNo string) (payment.Order, error) {
	return payGetOrder(ctx, s.reader, "out_trade_no", outTradeNo)
}

// OrderByTokenHash implements payment.Store.
func (s *Store) OrderByTokenHash(ctx context.Context, tokenHash string) (payment.Order, error) {
	if tokenHash == "" {
		return payment.Order{}, payNotFound("sqlite.OrderByTokenHash", "order")
	}
	return payGetOrder(ctx, s.reader, "token_hash", tokenHash)
}

func payGetOrder(ctx context.Context, q payQueryer, col, v string) (payment.Order, error) {
	o, err := payScanOrder(q.QueryRowContext(ctx, `SELECT `+payOrderColumns+` FROM payment_orders WHERE `+col+` = ?`, v))
	if errors.Is(err, sql.ErrNoRows) {
		return o, payNotFound("sqlite.Order", "order")
	}
	if err != nil {
		return o, fmt.Errorf("sqlite.Order: %w", err)
	}
	return o, nil
}

// ListOrders implements payment.Store.
func (s *Store) ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]payment.Order, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+payOrderColumns+` FROM payment_orders
		WHERE account_id = ? ORDER BY created_at DESC, out_trade_no DESC LIMIT ?`, string(account), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite.ListOrders: %w", err)
	}
	defer rows.Close()
	var out []payment.Order
	for rows.Next() {
		o, err := payScanOrder(rows)
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
	err := s.payWriteTx(ctx, op, func(tx *sql.Tx) error {
		old, err := payGetOrder(ctx, tx, "out_trade_no", outTradeNo)
		if err != nil {
			return err
		}
		o := old
		if err := fn(&o); err != nil {
			return err
		}
		o.OutTradeNo = old.OutTradeNo
		if err := payment.CheckTransition(old.Status, o.Status); err != nil {
			return err
		}
		if err := payWriteOrder(ctx, tx, &o); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		out = o
		return nil
	})
	return out, err
}

func payWriteOrder(ctx context.Context, tx *sql.Tx, o *payment.Order) error {
	args := payOrderArgs(o)
	_, err := tx.ExecContext(ctx, `UPDATE payment_orders SET account_id = ?, fen = ?, credits = ?, package_id = ?,
		api_version = ?, sign_type = ?, status = ?, code_url = ?, transaction_id = ?, device_fingerprint = ?,
		client_ip = ?, token_hash = ?, token_expires_at = ?, grant_cap = ?, expires_at = ?, created_at = ?,
		updated_at = ?, next_poll_at = ?, poll_attempts = ?, lease_owner = ?, lease_until = ?, review = ?,
		fee_fen = ? WHERE out_trade_no = ?`, append(args[1:], args[0])...)
	return err
}

// LeaseDueOrders implements payment.Store.
func (s *Store) LeaseDueOrders(ctx context.Context, owner string, now, until time.Time, limit int) ([]payment.Order, error) {
	rows, err := s.writer.QueryContext(ctx, `UPDATE payment_orders SET lease_owner = ?, lease_until = ?
		WHERE out_trade_no IN (SELECT out_trade_no FROM payment_orders
			WHERE status IN ('NOTPAY', 'USERPAYING') AND next_poll_at <= ? AND lease_until <= ?
			ORDER BY next_poll_at, out_trade_no LIMIT ?)
		RETURNING `+payOrderColumns, owner, payPmicros(until), payPmicros(now), payPmicros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite.LeaseDueOrders: %w", err)
	}
	defer rows.Close()
	var out []payment.Order
	for rows.Next() {
		o, err := payScanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite.LeaseDueOrders: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.LeaseDueOrders: %w", err)
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_refunds (`+payRefundColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`, payRefundArgs(&r)...); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		out = r
		return nil
	})
	return out, err
}

func payGetRefund(ctx context.Context, q payQueryer, no string) (payment.RefundRecord, error) {
	r, err := payScanRefund(q.QueryRowContext(ctx, `SELECT `+payRefundColumns+` FROM payment_refunds WHERE out_refund_no = ?`, no))
	if errors.Is(err, sql.ErrNoRows) {
		return r, payNotFound("sqlite.Refund", "refund")
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
	return payQueryRefunds(ctx, s.reader, `SELECT `+payRefundColumns+` FROM payment_refunds
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
		r, err := payScanRefund(rows)
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
		if err := payment.CheckRefundTransition(old.Status, r.Status); err != nil {
			return err
		}
		args := payRefundArgs(&r)
		if _, err := tx.ExecContext(ctx, `UPDATE payment_refunds SET out_trade_no = ?, account_id = ?, fen = ?,
			credits = ?, status = ?, created_at = ?, updated_at = ?, next_poll_at = ?, poll_attempts = ?,
			lease_owner = ?, lease_until = ? WHERE out_refund_no = ?`, append(args[1:], args[0])...); err != nil {
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
		RETURNING `+payRefundColumns, owner, payPmicros(until), payPmicros(now), payPmicros(now), limit)
}
