package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/webhook"
)

var _ webhook.Store = (*Store)(nil)

// appendEvents appends events to the outbox inside the ledger transaction
// t, each with the next seq of its account (webhook_account_seqs: the
// writer is the only one, so bumping the counter and inserting the event
// in one transaction cannot race). The ledger's Apply will call it for the
// events a money change carries.
func (t *txn) appendEvents(ctx context.Context, evs []webhook.Event) ([]webhook.Event, error) {
	out := make([]webhook.Event, 0, len(evs))
	for _, e := range evs {
		if err := e.Check(); err != nil {
			return nil, err
		}
		rows, err := t.q.QueryContext(ctx, `INSERT INTO webhook_account_seqs (account_id, last_seq) VALUES (?, 1)
			ON CONFLICT (account_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`, string(e.Account.ID))
		if err != nil {
			return nil, mapErr("webhook event seq", err)
		}
		var seq int64
		if rows.Next() {
			err = rows.Scan(&seq)
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err == nil && seq == 0 {
			err = errors.New("no seq returned")
		}
		if err != nil {
			return nil, mapErr("webhook event seq", err)
		}
		data := string(e.Data)
		if data == "" {
			data = "{}"
		}
		// external_id and platform_id are the account's as the
		// transaction sees it (NULL when it has none, or no row).
		if err := t.exec(ctx, "insert webhook event", `INSERT INTO webhook_events (id, account_id, external_id, platform_id, seq, type, data, created_at)
			VALUES (?, ?, (SELECT external_id FROM accounts WHERE id = ?), (SELECT platform_id FROM accounts WHERE id = ?), ?, ?, ?, ?)`,
			e.ID, string(e.Account.ID), string(e.Account.ID), string(e.Account.ID), seq, e.Type, data, micros(e.CreatedAt)); err != nil {
			return nil, err
		}
		e.Seq = seq
		out = append(out, e)
	}
	return out, nil
}

// AppendEvent appends e on its own transaction. See webhook.Store.
func (s *Store) AppendEvent(ctx context.Context, e webhook.Event) (webhook.Event, error) {
	var out []webhook.Event
	err := s.Update(ctx, func(tx ledger.Tx) (err error) {
		out, err = tx.(*txn).appendEvents(ctx, []webhook.Event{e})
		return err
	})
	if err != nil {
		return webhook.Event{}, err
	}
	var ext, plat sql.NullString
	if err := s.reader.QueryRowContext(ctx, `SELECT external_id, platform_id FROM webhook_events WHERE id = ?`, e.ID).Scan(&ext, &plat); err == nil {
		if ext.Valid {
			out[0].Account.ExternalID = &ext.String
		}
		out[0].PlatformID = plat.String
	}
	return out[0], nil
}

// writeTx runs fn in one write transaction on the writer.
func (s *Store) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(op, err)
	}
	return finishTx(tx, op, fn)
}

// finishTx runs fn in tx and commits, or rolls back on its error (a
// *tollgate.Error as it is, any other mapped under op).
func finishTx(tx *sql.Tx, op string, fn func(tx *sql.Tx) error) error {
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		var te *tollgate.Error
		if errors.As(err, &te) {
			return err
		}
		return mapErr(op, err)
	}
	if err := tx.Commit(); err != nil {
		return mapErr(op+": commit", err)
	}
	return nil
}

// relaxedWriteTx is writeTx committed with synchronous=NORMAL, like the
// ledger's metering batches (relaxedTx): written to the WAL, not fsynced.
// Claim and Complete use it: a delivery costs a claim and an outcome, and
// fsyncing both would queue them (and the payments sharing the one writer)
// behind the disk. A power cut may lose the last of them: a delivery is
// then sent again with the same webhook-id, which at-least-once delivery
// allows; the events themselves commit with their money change, synced.
func (s *Store) relaxedWriteTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	return s.relaxedBegin(ctx, op, func(tx *sql.Tx) error { return finishTx(tx, op, fn) })
}

const endpointCols = `id, url, events, description, secret, previous_secret, previous_until, created_at,
	disabled_at, disabled_reason, consecutive_failures, failing_since, last_success_at, platform_id`

type rowScanner interface{ Scan(dest ...any) error }

func scanEndpoint(r rowScanner) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	var events string
	var prev, plat sql.NullString
	var prevUntil, created, disabled, failing, success sql.NullInt64
	if err := r.Scan(&e.ID, &e.URL, &events, &e.Description, &e.Secret, &prev, &prevUntil, &created,
		&disabled, &e.DisabledReason, &e.ConsecutiveFailures, &failing, &success, &plat); err != nil {
		return e, err
	}
	e.PlatformID = plat.String
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return e, fmt.Errorf("endpoint %s: events: %w", e.ID, err)
	}
	e.PreviousSecret = prev.String
	e.PreviousUntil, e.CreatedAt, e.DisabledAt = timeOf(prevUntil), timeOf(created), timeOf(disabled)
	e.FailingSince, e.LastSuccessAt = timeOf(failing), timeOf(success)
	return e, nil
}

func timeOf(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

func notFound(op, what string) error {
	return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such " + what}
}

// CreateEndpoint stores e. See webhook.Store.
func (s *Store) CreateEndpoint(ctx context.Context, e webhook.Endpoint) error {
	const op = "sqlite: create webhook endpoint"
	return s.writeTx(ctx, op, func(tx *sql.Tx) error {
		var n, mine, plats int
		if err := tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE platform_id = ?),
			(SELECT count(*) FROM platforms WHERE id = ?) FROM webhook_endpoints`, e.PlatformID, e.PlatformID).Scan(&n, &mine, &plats); err != nil {
			return err
		}
		if err := endpointBound(op, e.PlatformID, n, mine, plats); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, url, events, description, secret, created_at, platform_id)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.ID, e.URL, jsonSet(e.Events), e.Description, e.Secret, micros(e.CreatedAt),
			sql.NullString{String: e.PlatformID, Valid: e.PlatformID != ""})
		if isUnique(err) {
			return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "webhook endpoint already exists", Err: err}
		}
		return err
	})
}

// endpointBound refuses an endpoint past the bounds (n endpoints in all,
// mine of its platform) or of a platform that does not exist (plats = 0).
func endpointBound(op, platform string, n, mine, plats int) error {
	switch {
	case platform != "" && plats == 0:
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
	case n >= webhook.MaxEndpoints:
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op,
			Message: fmt.Sprintf("there are %d webhook endpoints already, the most there may be", n)}
	case platform != "" && mine >= webhook.MaxPlatformEndpoints:
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op,
			Message: fmt.Sprintf("the platform has %d webhook endpoints already, the most one may have", mine)}
	}
	return nil
}

// GetEndpoint returns one endpoint. See webhook.Store.
func (s *Store) GetEndpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	const op = "sqlite: webhook endpoint"
	e, err := scanEndpoint(s.reader.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, notFound(op, "webhook endpoint")
	}
	if err != nil {
		return e, mapErr(op, err)
	}
	return e, nil
}

// ListEndpoints returns a page of endpoints in id order. See webhook.Store.
func (s *Store) ListEndpoints(ctx context.Context, q webhook.EndpointQuery) ([]webhook.Endpoint, error) {
	return queryRows(ctx, s.reader, "webhook endpoints", func(r *sql.Rows) (webhook.Endpoint, error) { return scanEndpoint(r) },
		`SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE id > ? AND (? = '' OR platform_id = ?) ORDER BY id LIMIT ?`,
		q.After, q.Platform, q.Platform, max(1, q.Limit))
}

// DeleteEndpoint removes an endpoint and its deliveries. See webhook.Store.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	const op = "sqlite: delete webhook endpoint"
	return s.writeTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE endpoint_id = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound(op, "webhook endpoint")
		}
		return nil
	})
}

// updateEndpoint runs one UPDATE of endpoint id and returns it as it is
// then.
func (s *Store) updateEndpoint(ctx context.Context, op, id, set string, args ...any) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET `+set+` WHERE id = ?`, append(args, id)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound(op, "webhook endpoint")
		}
		e, err = scanEndpoint(tx.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, id))
		return err
	})
	return e, err
}

// RotateSecret gives an endpoint a new secret. See webhook.Store.
func (s *Store) RotateSecret(ctx context.Context, id, secret string, previousUntil time.Time) (webhook.Endpoint, error) {
	return s.updateEndpoint(ctx, "sqlite: rotate webhook secret", id,
		`previous_secret = secret, previous_until = ?, secret = ?`, micros(previousUntil), secret)
}

// SetEndpointDisabled disables or enables an endpoint. See webhook.Store.
func (s *Store) SetEndpointDisabled(ctx context.Context, id string, at time.Time, reason string) (webhook.Endpoint, error) {
	const op = "sqlite: disable webhook endpoint"
	if at.IsZero() {
		return s.updateEndpoint(ctx, op, id,
			`disabled_at = NULL, disabled_reason = '', consecutive_failures = 0, failing_since = NULL`)
	}
	return s.updateEndpoint(ctx, op, id, `disabled_at = ?, disabled_reason = ?`, micros(at), reason)
}

// Claim fans out, then leases due deliveries. SQLite has one writer: the
// write transaction that reads the due deliveries and sets their lease is
// atomic against every other claimer, in this process or another. See
// webhook.Store.
func (s *Store) Claim(ctx context.Context, r webhook.ClaimRequest) ([]webhook.Claimed, error) {
	const op = "sqlite: claim webhook deliveries"
	now, until := micros(r.Now), micros(r.Now.Add(r.Lease))
	limit := max(1, r.Limit)
	var out []webhook.Claimed
	err := s.relaxedWriteTx(ctx, op, func(tx *sql.Tx) error {
		if err := fanOut(ctx, tx, limit, now); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT d.id FROM webhook_deliveries d
			JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?)
			  AND e.disabled_at IS NULL AND d.endpoint_id NOT IN (SELECT value FROM json_each(?))
			ORDER BY d.next_attempt_at, d.id LIMIT ?`, now, now, jsonSet(append([]string{}, r.SkipEndpoints...)), limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
				WHERE id = ?`, r.Owner, until, id); err != nil {
				return err
			}
			c, err := claimed(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// fanOut makes the deliveries of up to limit events not yet fanned out.
func fanOut(ctx context.Context, tx *sql.Tx, limit int, now int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, type, created_at, coalesce(platform_id, '') FROM webhook_events WHERE fanned_out = 0
		ORDER BY created_at, id LIMIT ?`, limit)
	if err != nil {
		return err
	}
	type ev struct {
		id, typ, platform string
		at                int64
	}
	var evs []ev
	for rows.Next() {
		var e ev
		if err := rows.Scan(&e.id, &e.typ, &e.at, &e.platform); err != nil {
			rows.Close()
			return err
		}
		evs = append(evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(evs) == 0 {
		return err
	}
	eps, err := fanOutEndpoints(ctx, tx)
	if err != nil {
		return err
	}
	for _, e := range evs {
		for _, ep := range eps {
			if !ep.Receives(e.typ, e.platform) || micros(ep.CreatedAt) > e.at {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at, created_at)
				VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
				webhook.NewID("wd_"), e.id, ep.ID, now, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_events SET fanned_out = 1 WHERE id = ?`, e.id); err != nil {
			return err
		}
	}
	return nil
}

// fanOutEndpoints are the endpoints events may be fanned out to (each
// event to those that Receive it): every one, disabled ones too, so an endpoint disabled while failing gets what
// happened meanwhile once it is enabled again (claiming skips the
// deliveries of a disabled endpoint until then).
func fanOutEndpoints(ctx context.Context, tx *sql.Tx) ([]webhook.Endpoint, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []webhook.Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const deliveryCols = `d.id, d.event_id, ev.type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
	d.last_status, d.last_error, d.created_at, d.delivered_at, ev.created_at`

func scanDelivery(r rowScanner) (webhook.Delivery, error) {
	var d webhook.Delivery
	var next, created, evCreated int64
	var delivered sql.NullInt64
	if err := r.Scan(&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.Status, &d.Attempts, &next,
		&d.LastStatus, &d.LastError, &created, &delivered, &evCreated); err != nil {
		return d, err
	}
	d.NextAttemptAt, d.CreatedAt, d.EventCreatedAt = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(evCreated).UTC()
	d.DeliveredAt = timeOf(delivered)
	return d, nil
}

// claimed reads a claimed delivery with its event and endpoint.
func claimed(ctx context.Context, tx *sql.Tx, id string) (webhook.Claimed, error) {
	var c webhook.Claimed
	d, err := scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d
		JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = ?`, id))
	if err != nil {
		return c, err
	}
	c.Delivery = d
	var ext, plat sql.NullString
	var data string
	if err := tx.QueryRowContext(ctx, `SELECT account_id, external_id, seq, data, platform_id FROM webhook_events WHERE id = ?`, d.EventID).Scan(
		(*string)(&c.Event.Account.ID), &ext, &c.Event.Seq, &data, &plat); err != nil {
		return c, err
	}
	c.Event.PlatformID = plat.String
	c.Event.ID, c.Event.Type, c.Event.CreatedAt, c.Event.Data = d.EventID, d.EventType, d.EventCreatedAt, json.RawMessage(data)
	if ext.Valid {
		c.Event.Account.ExternalID = &ext.String
	}
	c.Endpoint, err = scanEndpoint(tx.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, d.EndpointID))
	return c, err
}

// Complete records an attempt's outcome. See webhook.Store.
func (s *Store) Complete(ctx context.Context, o webhook.Outcome) (webhook.Endpoint, error) {
	const op = "sqlite: record webhook delivery"
	var ep webhook.Endpoint
	now := micros(o.Now)
	err := s.relaxedWriteTx(ctx, op, func(tx *sql.Tx) error {
		var endpoint string
		err := tx.QueryRowContext(ctx, `SELECT endpoint_id FROM webhook_deliveries WHERE id = ? AND status = 'pending' AND lease_owner = ?`,
			o.DeliveryID, o.Owner).Scan(&endpoint)
		if errors.Is(err, sql.ErrNoRows) {
			return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "the delivery's lease was lost"}
		}
		if err != nil {
			return err
		}
		if o.Release {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL,
				attempts = max(0, attempts - 1) WHERE id = ?`, o.DeliveryID); err != nil {
				return err
			}
			ep, err = scanEndpoint(tx.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, endpoint))
			return err
		}
		status, next, delivered := webhook.StatusPending, micros(o.NextAttemptAt), sql.NullInt64{}
		switch {
		case o.Delivered:
			status, next, delivered = webhook.StatusDelivered, now, sql.NullInt64{Int64: now, Valid: true}
		case o.Failed:
			status, next = webhook.StatusFailed, now
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, delivered_at = ?,
			lease_owner = NULL, lease_until = NULL, last_status = ?, last_error = substr(?, 1, 500) WHERE id = ?`,
			status, next, delivered, o.HTTPStatus, o.Error, o.DeliveryID); err != nil {
			return err
		}
		if o.Delivered {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL,
				last_success_at = ? WHERE id = ?`, now, endpoint)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
				failing_since = coalesce(failing_since, ?) WHERE id = ?`, now, endpoint)
		}
		if err != nil {
			return err
		}
		ep, err = scanEndpoint(tx.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, endpoint))
		return err
	})
	return ep, err
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first.
// See webhook.Store.
func (s *Store) ListDeliveries(ctx context.Context, q webhook.DeliveryQuery) ([]webhook.Delivery, error) {
	if _, err := s.GetEndpoint(ctx, q.Endpoint); err != nil {
		return nil, err
	}
	after := int64(1<<63 - 1)
	if !q.AfterTime.IsZero() {
		after = micros(q.AfterTime)
	}
	return queryRows(ctx, s.reader, "webhook deliveries", func(r *sql.Rows) (webhook.Delivery, error) { return scanDelivery(r) },
		`SELECT `+deliveryCols+` FROM webhook_deliveries d
		JOIN webhook_events ev ON ev.id = d.event_id
		WHERE d.endpoint_id = ? AND (? = '' OR d.status = ?) AND (d.created_at < ? OR (d.created_at = ? AND d.id < ?))
		ORDER BY d.created_at DESC, d.id DESC LIMIT ?`,
		q.Endpoint, q.Status, q.Status, after, after, afterID(q), max(1, q.Limit))
}

// afterID is the keyset's id bound: past every id on the first page.
func afterID(q webhook.DeliveryQuery) string {
	if q.AfterTime.IsZero() {
		return "\U0010FFFF"
	}
	return q.AfterID
}

// RetryDelivery makes a delivery pending and due now. See webhook.Store.
func (s *Store) RetryDelivery(ctx context.Context, endpoint, delivery string, now time.Time) (webhook.Delivery, error) {
	const op = "sqlite: retry webhook delivery"
	var d webhook.Delivery
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?,
			lease_owner = NULL, lease_until = NULL, delivered_at = NULL WHERE id = ? AND endpoint_id = ?`, micros(now), delivery, endpoint)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound(op, "webhook delivery")
		}
		d, err = scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d
			JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = ?`, delivery))
		return err
	})
	return d, err
}
