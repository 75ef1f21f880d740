// Package payrows maps payment orders and refund records to and from the
// rows both SQL stores keep them in (store/sqlite and store/postgres share
// the column layout of their payment migrations), so the two adapters do
// not repeat it. Times are stored as UTC unix microseconds, 0 for zero.
package payrows

import (
	"strings"
	"time"

	"tollgate"
	"tollgate/payment"
)

// OrderColumns are the columns of payment_orders, in the order OrderArgs
// and ScanOrder use.
const OrderColumns = `out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status,
	code_url, transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap,
	expires_at, created_at, updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen,
	method, openid, h5_url, prepay_id, h5_issued_at, metadata`

// OrderUpdated is how many of OrderColumns (and of OrderArgs) an update
// writes: all but metadata (migration 0017), which is written once, when
// the order is made.
const OrderUpdated = 29

// RefundColumns are the columns of payment_refunds, in the order RefundArgs
// and ScanRefund use.
// The last four (who asked, why, the amount asked for: migration 0011;
// the actor: migration 0012) are written once, when the refund is made;
// updates write the first RefundUpdated.
const RefundColumns = `out_refund_no, out_trade_no, account_id, fen, credits, status, created_at, updated_at,
	next_poll_at, poll_attempts, lease_owner, lease_until, requested_by, reason, asked_fen, actor`

// RefundUpdated is how many of RefundColumns an update writes.
const RefundUpdated = 12

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows all are.
type Scanner interface{ Scan(dest ...any) error }

// Micros stores t as UTC unix microseconds, 0 for the zero time.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixMicro()
}

// FromMicros is the inverse of Micros.
func FromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// OrderArgs are o's values in OrderColumns order.
func OrderArgs(o *payment.Order) []any {
	return []any{o.OutTradeNo, string(o.Account), int64(o.Fen), int64(o.Credits), o.PackageID, o.APIVersion,
		o.SignType, string(o.Status), o.CodeURL, o.TransactionID, o.DeviceFingerprint, o.ClientIP, o.TokenHash,
		Micros(o.TokenExpiresAt), int64(o.GrantCap), Micros(o.ExpiresAt), Micros(o.CreatedAt),
		Micros(o.UpdatedAt), Micros(o.NextPollAt), int64(o.PollAttempts), o.LeaseOwner, Micros(o.LeaseUntil),
		o.Review, int64(o.FeeFen), o.PayMethod(), o.OpenID, o.H5URL, o.PrepayID,
		Micros(o.H5IssuedAt), orderMetadata(o.Metadata)}
}

// orderMetadata is an order's metadata as stored: "{}" for none.
func orderMetadata(m []byte) string {
	if len(m) == 0 {
		return "{}"
	}
	return string(m)
}

// ScanOrder reads a row of OrderColumns.
func ScanOrder(r Scanner) (payment.Order, error) {
	var o payment.Order
	var account, status string
	var fen, credits, grantCap, fee, tokExp, exp, created, updated, next, lease, attempts, h5Issued int64
	var meta string
	err := r.Scan(&o.OutTradeNo, &account, &fen, &credits, &o.PackageID, &o.APIVersion, &o.SignType, &status,
		&o.CodeURL, &o.TransactionID, &o.DeviceFingerprint, &o.ClientIP, &o.TokenHash, &tokExp, &grantCap,
		&exp, &created, &updated, &next, &attempts, &o.LeaseOwner, &lease, &o.Review, &fee,
		&o.Method, &o.OpenID, &o.H5URL, &o.PrepayID, &h5Issued, &meta)
	if err != nil {
		return o, err
	}
	if meta != "" && meta != "{}" {
		o.Metadata = []byte(meta)
	}
	o.Account, o.Status, o.PollAttempts = tollgate.AccountID(account), payment.Status(status), int(attempts)
	o.Fen, o.Credits, o.GrantCap, o.FeeFen = tollgate.Fen(fen), tollgate.Credits(credits), tollgate.Credits(grantCap), tollgate.Fen(fee)
	o.TokenExpiresAt, o.ExpiresAt, o.CreatedAt, o.UpdatedAt = FromMicros(tokExp), FromMicros(exp), FromMicros(created), FromMicros(updated)
	o.NextPollAt, o.LeaseUntil, o.H5IssuedAt = FromMicros(next), FromMicros(lease), FromMicros(h5Issued)
	return o, nil
}

// RefundArgs are r's values in RefundColumns order.
func RefundArgs(r *payment.RefundRecord) []any {
	return []any{r.OutRefundNo, r.OutTradeNo, string(r.Account), int64(r.Fen), int64(r.Credits), string(r.Status),
		Micros(r.CreatedAt), Micros(r.UpdatedAt), Micros(r.NextPollAt), int64(r.PollAttempts), r.LeaseOwner,
		Micros(r.LeaseUntil), requestedBy(r.RequestedBy), r.Reason, int64(r.AskedFen), r.Actor}
}

// requestedBy is who asked for a refund as stored: the account unless an
// admin did.
func requestedBy(by string) string {
	if by == "" {
		return payment.RequestedByAccount
	}
	return by
}

// ScanRefund reads a row of RefundColumns.
func ScanRefund(sc Scanner) (payment.RefundRecord, error) {
	var r payment.RefundRecord
	var account, status string
	var fen, credits, created, updated, next, lease, attempts, asked int64
	err := sc.Scan(&r.OutRefundNo, &r.OutTradeNo, &account, &fen, &credits, &status, &created, &updated,
		&next, &attempts, &r.LeaseOwner, &lease, &r.RequestedBy, &r.Reason, &asked, &r.Actor)
	r.AskedFen = tollgate.Fen(asked)
	if err != nil {
		return r, err
	}
	r.Account, r.Status, r.PollAttempts = tollgate.AccountID(account), payment.RefundStatus(status), int(attempts)
	r.Fen, r.Credits = tollgate.Fen(fen), tollgate.Credits(credits)
	r.CreatedAt, r.UpdatedAt = FromMicros(created), FromMicros(updated)
	r.NextPollAt, r.LeaseUntil = FromMicros(next), FromMicros(lease)
	return r, nil
}

// NotFound is the ENOTFOUND error of a missing order or refund.
func NotFound(op, what string) error {
	return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: what + " not found"}
}

// OrdersPage is the query of payment.Store.OrdersPage: newest first by
// (created_at, out_trade_no), after the cursor, filtered; ph makes the
// n-th placeholder ("?" or "$n").
func OrdersPage(q payment.OrderQuery, ph func(n int) string) (string, []any) {
	var p page
	p.eq(ph, "status", string(q.Status))
	p.eq(ph, "account_id", string(q.Account))
	if !q.From.IsZero() {
		p.cond(ph, "created_at >= ", Micros(q.From))
	}
	if !q.To.IsZero() {
		p.cond(ph, "created_at < ", Micros(q.To))
	}
	return p.query(ph, OrderColumns, "payment_orders", "out_trade_no", q.AfterCreated, q.AfterNo, q.Limit)
}

// RefundsPage is the query of payment.Store.RefundsPage, as OrdersPage.
func RefundsPage(q payment.RefundQuery, ph func(n int) string) (string, []any) {
	var p page
	p.eq(ph, "status", string(q.Status))
	p.eq(ph, "account_id", string(q.Account))
	p.eq(ph, "out_trade_no", q.OutTradeNo)
	return p.query(ph, RefundColumns, "payment_refunds", "out_refund_no", q.AfterCreated, q.AfterNo, q.Limit)
}

// page builds a keyset page's query: its conditions with their
// arguments, numbered by ph, newest first by (created_at, key).
type page struct {
	where []string
	args  []any
}

// cond adds the condition expr followed by v's placeholder.
func (p *page) cond(ph func(n int) string, expr string, v any) {
	p.args = append(p.args, v)
	p.where = append(p.where, expr+ph(len(p.args)))
}

// eq adds col = v when v is set.
func (p *page) eq(ph func(n int) string, col, v string) {
	if v != "" {
		p.cond(ph, col+" = ", v)
	}
}

// query is the SELECT of cols from table under p's conditions, after the
// row (afterCreated, afterNo) when afterNo is set, at most limit rows.
func (p *page) query(ph func(n int) string, cols, table, key string, afterCreated time.Time, afterNo string, limit int) (string, []any) {
	if afterNo != "" {
		p.args = append(p.args, Micros(afterCreated))
		a := ph(len(p.args))
		p.args = append(p.args, afterNo)
		p.where = append(p.where, "(created_at < "+a+" OR (created_at = "+a+" AND "+key+" < "+ph(len(p.args))+"))")
	}
	s := `SELECT ` + cols + ` FROM ` + table
	if len(p.where) > 0 {
		s += ` WHERE ` + strings.Join(p.where, ` AND `)
	}
	p.args = append(p.args, limit)
	return s + ` ORDER BY created_at DESC, ` + key + ` DESC LIMIT ` + ph(len(p.args)), p.args
}
