package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/webhook"
)

var _ webhook.Store = (*Store)(nil)

// appendEventSQL appends one event with the next seq of its account. The
// upsert of webhook_account_seqs locks the account's counter row until the
// transaction ends, so concurrent transactions appending for one account
// take consecutive seqs, never the same one, in commit order.
const appendEventSQL = `WITH s AS (
	INSERT INTO webhook_account_seqs (account_id, last_seq) VALUES ($2, 1)
	ON CONFLICT (account_id) DO UPDATE SET last_seq = webhook_account_seqs.last_seq + 1
	RETURNING last_seq)
INSERT INTO webhook_events (id, account_id, external_id, platform_id, seq, type, data, created_at)
SELECT $1, $2, a.external_id, a.platform_id, s.last_seq, $3, $4, $5 FROM s LEFT JOIN accounts a ON a.id = $2
RETURNING seq, external_id, coalesce(platform_id, '')`

// appendEvents queues the events' inserts in the ledger transaction t;
// they go out with its next read or its COMMIT, like Apply's writes. The
// events are queued in account order, as the ledger locks rows, so two
// transactions bumping two accounts' counters cannot deadlock. The
// ledger's Apply will call it for the events a money change carries.
func (t *txn) appendEvents(evs []webhook.Event) error {
	for _, e := range evs {
		if err := e.Check(); err != nil {
			return err
		}
	}
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b webhook.Event) int { return strings.Compare(string(a.Account.ID), string(b.Account.ID)) })
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	for _, e := range evs {
		t.pending.Queue(appendEventSQL, eventArgs(e)...)
	}
	return nil
}

func eventArgs(e webhook.Event) []any {
	data := string(e.Data)
	if data == "" {
		data = "{}"
	}
	return []any{e.ID, string(e.Account.ID), e.Type, data, e.CreatedAt.UTC()}
}

// AppendEvent appends e on its own transaction. See webhook.Store.
func (s *Store) AppendEvent(ctx context.Context, e webhook.Event) (webhook.Event, error) {
	const op = "postgres: append webhook event"
	if err := e.Check(); err != nil {
		return e, err
	}
	var ext *string
	err := s.writeTx(ctx, op, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, appendEventSQL, eventArgs(e)...).Scan(&e.Seq, &ext, &e.PlatformID)
	})
	e.Account.ExternalID = ext
	return e, err
}

// writeTx runs fn in one READ COMMITTED transaction of its own.
func (s *Store) writeTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}, fn)
	if err != nil {
		return mapError(op, err)
	}
	return nil
}

// relaxedWriteTx is writeTx with synchronous_commit off, as for the
// ledger's metering batches: Claim and Complete use it, so a delivery's
// bookkeeping does not wait for the WAL flush. A crash of the database
// may lose the last of them: a delivery is then sent again with the same
// webhook-id, which at-least-once delivery allows; the events themselves
// commit with their money change.
func (s *Store) relaxedWriteTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	return s.writeTx(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
			return err
		}
		return fn(tx)
	})
}

const endpointCols = `id, url, events, description, secret, previous_secret, previous_until, created_at,
	disabled_at, disabled_reason, consecutive_failures, failing_since, last_success_at, coalesce(platform_id, '')`

func scanEndpoint(r pgx.Row) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	var prev *string
	var prevUntil, disabled, failing, success *time.Time
	if err := r.Scan(&e.ID, &e.URL, &e.Events, &e.Description, &e.Secret, &prev, &prevUntil, &e.CreatedAt,
		&disabled, &e.DisabledReason, &e.ConsecutiveFailures, &failing, &success, &e.PlatformID); err != nil {
		return e, err
	}
	if prev != nil {
		e.PreviousSecret = *prev
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.PreviousUntil, e.DisabledAt, e.FailingSince, e.LastSuccessAt = timeOf(prevUntil), timeOf(disabled), timeOf(failing), timeOf(success)
	return e, nil
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func notFound(op, what string) error {
	return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such " + what}
}

// CreateEndpoint stores e. See webhook.Store.
func (s *Store) CreateEndpoint(ctx context.Context, e webhook.Endpoint) error {
	const op = "postgres: create webhook endpoint"
	return s.writeTx(ctx, op, func(tx pgx.Tx) error {
		// Serialise creations, so the bound holds across instances.
		if _, err := tx.Exec(ctx, `LOCK TABLE webhook_endpoints IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var n, mine, plats int
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE platform_id = $1),
			(SELECT count(*) FROM platforms WHERE id = $1) FROM webhook_endpoints`, e.PlatformID).Scan(&n, &mine, &plats); err != nil {
			return err
		}
		if err := endpointBound(op, e.PlatformID, n, mine, plats); err != nil {
			return err
		}
		var plat *string
		if e.PlatformID != "" {
			plat = &e.PlatformID
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, events, description, secret, created_at, platform_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.ID, e.URL, e.Events, e.Description, e.Secret, e.CreatedAt.UTC(), plat)
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
	const op = "postgres: webhook endpoint"
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFound(op, "webhook endpoint")
	}
	if err != nil {
		return e, mapError(op, err)
	}
	return e, nil
}

// ListEndpoints returns a page of endpoints in id order. See webhook.Store.
func (s *Store) ListEndpoints(ctx context.Context, q webhook.EndpointQuery) ([]webhook.Endpoint, error) {
	const op = "postgres: list webhook endpoints"
	rows, err := s.pool.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE id > $1 AND ($3 = '' OR platform_id = $3) ORDER BY id LIMIT $2`,
		q.After, max(1, q.Limit), q.Platform)
	if err != nil {
		return nil, mapError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	return out, nil
}

// DeleteEndpoint removes an endpoint and (ON DELETE CASCADE) its
// deliveries. See webhook.Store.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	const op = "postgres: delete webhook endpoint"
	return s.writeTx(ctx, op, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return notFound(op, "webhook endpoint")
		}
		return nil
	})
}

// updateEndpoint runs one UPDATE of endpoint id ($1) and returns it.
func (s *Store) updateEndpoint(ctx context.Context, op, id, set string, args ...any) (webhook.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET `+set+` WHERE id = $1 RETURNING `+endpointCols,
		append([]any{id}, args...)...))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFound(op, "webhook endpoint")
	}
	if err != nil {
		return e, mapError(op, err)
	}
	return e, nil
}

// RotateSecret gives an endpoint a new secret. See webhook.Store.
func (s *Store) RotateSecret(ctx context.Context, id, secret string, previousUntil time.Time) (webhook.Endpoint, error) {
	return s.updateEndpoint(ctx, "postgres: rotate webhook secret", id,
		`previous_secret = secret, previous_until = $2, secret = $3`, previousUntil.UTC(), secret)
}

// SetEndpointDisabled disables or enables an endpoint. See webhook.Store.
func (s *Store) SetEndpointDisabled(ctx context.Context, id string, at time.Time, reason string) (webhook.Endpoint, error) {
	const op = "postgres: disable webhook endpoint"
	if at.IsZero() {
		return s.updateEndpoint(ctx, op, id,
			`disabled_at = NULL, disabled_reason = '', consecutive_failures = 0, failing_since = NULL`)
	}
	return s.updateEndpoint(ctx, op, id, `disabled_at = $2, disabled_reason = $3`, at.UTC(), reason)
}

// Claim fans out, then leases due deliveries. Both steps lock what they
// take with FOR UPDATE SKIP LOCKED: instances claiming at once each take
// other rows, and a row whose lease another instance just committed is
// re-checked against the lease and left alone. See webhook.Store.
func (s *Store) Claim(ctx context.Context, r webhook.ClaimRequest) ([]webhook.Claimed, error) {
	const op = "postgres: claim webhook deliveries"
	now, until, limit := r.Now.UTC(), r.Now.Add(r.Lease).UTC(), max(1, r.Limit)
	var out []webhook.Claimed
	err := s.relaxedWriteTx(ctx, op, func(tx pgx.Tx) error {
		out = nil
		if err := fanOut(ctx, tx, limit, now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH due AS (
				SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
				WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1)
				  AND e.disabled_at IS NULL AND NOT (d.endpoint_id = ANY($5))
				ORDER BY d.next_attempt_at, d.id LIMIT $2
				FOR UPDATE OF d SKIP LOCKED)
			UPDATE webhook_deliveries d SET lease_owner = $3, lease_until = $4, attempts = d.attempts + 1
			FROM due WHERE d.id = due.id RETURNING d.id`, now, limit, r.Owner, until, append([]string{}, r.SkipEndpoints...))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+deliveryCols+`, ev.account_id, ev.external_id, ev.seq, ev.data,
				coalesce(ev.platform_id, '')
			FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
			WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id`, ids)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Claimed, error) {
			var c webhook.Claimed
			var data string
			d, err := scanDelivery(r, (*string)(&c.Event.Account.ID), &c.Event.Account.ExternalID, &c.Event.Seq, &data,
				&c.Event.PlatformID)
			c.Delivery = d
			c.Event.ID, c.Event.Type, c.Event.CreatedAt, c.Event.Data = d.EventID, d.EventType, d.EventCreatedAt, json.RawMessage(data)
			return c, err
		})
		if err != nil {
			return err
		}
		eps := map[string]webhook.Endpoint{}
		for i, c := range out {
			ep, ok := eps[c.Delivery.EndpointID]
			if !ok {
				if ep, err = scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`,
					c.Delivery.EndpointID)); err != nil {
					return err
				}
				eps[ep.ID] = ep
			}
			out[i].Endpoint = ep
		}
		return nil
	})
	return out, err
}

// fanOut makes the deliveries of up to limit events not yet fanned out,
// skipping events another instance is fanning out right now.
func fanOut(ctx context.Context, tx pgx.Tx, limit int, now time.Time) error {
	type ev struct {
		id, typ, platform string
		at                time.Time
	}
	rows, err := tx.Query(ctx, `SELECT id, type, created_at, coalesce(platform_id, '') FROM webhook_events WHERE NOT fanned_out
		ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return err
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ev, error) {
		var e ev
		return e, r.Scan(&e.id, &e.typ, &e.at, &e.platform)
	})
	if err != nil || len(evs) == 0 {
		return err
	}
	// Every endpoint (each event goes to those that Receive it: the
	// operator's and its account's platform's), disabled ones too: one disabled while failing gets
	// what happened meanwhile once it is enabled again (claiming skips a
	// disabled endpoint's deliveries until then). SHARE mode waits for an
	// endpoint being created (CreateEndpoint holds SHARE ROW EXCLUSIVE), so
	// one created before an event is never missed by its fan-out.
	if _, err := tx.Exec(ctx, `LOCK TABLE webhook_endpoints IN SHARE MODE`); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints`)
	if err != nil {
		return err
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		for _, ep := range eps {
			if !ep.Receives(e.typ, e.platform) || ep.CreatedAt.After(e.at) {
				continue
			}
			b.Queue(`INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at, created_at)
				VALUES ($1, $2, $3, 'pending', $4, $4) ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
				webhook.NewID("wd_"), e.id, ep.ID, now)
		}
		ids = append(ids, e.id)
	}
	b.Queue(`UPDATE webhook_events SET fanned_out = true WHERE id = ANY($1)`, ids)
	return tx.SendBatch(ctx, b).Close()
}

const deliveryCols = `d.id, d.event_id, ev.type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
	d.last_status, d.last_error, d.created_at, d.delivered_at, ev.created_at`

func scanDelivery(r pgx.Row, more ...any) (webhook.Delivery, error) {
	var d webhook.Delivery
	var delivered *time.Time
	err := r.Scan(append([]any{&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.Status, &d.Attempts, &d.NextAttemptAt,
		&d.LastStatus, &d.LastError, &d.CreatedAt, &delivered, &d.EventCreatedAt}, more...)...)
	d.NextAttemptAt, d.CreatedAt, d.EventCreatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC(), d.EventCreatedAt.UTC()
	d.DeliveredAt = timeOf(delivered)
	return d, err
}

// Complete records an attempt's outcome. See webhook.Store.
func (s *Store) Complete(ctx context.Context, o webhook.Outcome) (webhook.Endpoint, error) {
	const op = "postgres: record webhook delivery"
	var ep webhook.Endpoint
	now := o.Now.UTC()
	status, next, delivered := webhook.StatusPending, o.NextAttemptAt.UTC(), (*time.Time)(nil)
	switch {
	case o.Delivered:
		status, next, delivered = webhook.StatusDelivered, now, &now
	case o.Failed:
		status, next = webhook.StatusFailed, now
	}
	if o.Release {
		err := s.relaxedWriteTx(ctx, op, func(tx pgx.Tx) error {
			var endpoint string
			err := tx.QueryRow(ctx, `UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL,
				attempts = greatest(0, attempts - 1) WHERE id = $1 AND status = 'pending' AND lease_owner = $2 RETURNING endpoint_id`,
				o.DeliveryID, o.Owner).Scan(&endpoint)
			if errors.Is(err, pgx.ErrNoRows) {
				return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "the delivery's lease was lost"}
			}
			if err != nil {
				return err
			}
			ep, err = scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`, endpoint))
			return err
		})
		return ep, err
	}
	err := s.relaxedWriteTx(ctx, op, func(tx pgx.Tx) error {
		var endpoint string
		err := tx.QueryRow(ctx, `UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, delivered_at = $5,
			lease_owner = NULL, lease_until = NULL, last_status = $6, last_error = left($7, 500)
			WHERE id = $1 AND status = 'pending' AND lease_owner = $2 RETURNING endpoint_id`,
			o.DeliveryID, o.Owner, status, next, delivered, o.HTTPStatus, o.Error).Scan(&endpoint)
		if errors.Is(err, pgx.ErrNoRows) {
			return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "the delivery's lease was lost"}
		}
		if err != nil {
			return err
		}
		q := `UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
			failing_since = coalesce(failing_since, $2) WHERE id = $1 RETURNING ` + endpointCols
		if o.Delivered {
			q = `UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL, last_success_at = $2
				WHERE id = $1 RETURNING ` + endpointCols
		}
		ep, err = scanEndpoint(tx.QueryRow(ctx, q, endpoint, now))
		return err
	})
	return ep, err
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first.
// See webhook.Store.
func (s *Store) ListDeliveries(ctx context.Context, q webhook.DeliveryQuery) ([]webhook.Delivery, error) {
	const op = "postgres: list webhook deliveries"
	if _, err := s.GetEndpoint(ctx, q.Endpoint); err != nil {
		return nil, err
	}
	after, afterID := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "\U0010FFFF"
	if !q.AfterTime.IsZero() {
		after, afterID = q.AfterTime.UTC(), q.AfterID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d
		JOIN webhook_events ev ON ev.id = d.event_id
		WHERE d.endpoint_id = $1 AND ($2 = '' OR d.status = $2) AND (d.created_at, d.id) < ($3, $4)
		ORDER BY d.created_at DESC, d.id DESC LIMIT $5`,
		q.Endpoint, q.Status, after, afterID, max(1, q.Limit))
	if err != nil {
		return nil, mapError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	return out, nil
}

// RetryDelivery makes a delivery pending and due now. See webhook.Store.
func (s *Store) RetryDelivery(ctx context.Context, endpoint, delivery string, now time.Time) (webhook.Delivery, error) {
	const op = "postgres: retry webhook delivery"
	var d webhook.Delivery
	err := s.writeTx(ctx, op, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3,
			lease_owner = NULL, lease_until = NULL, delivered_at = NULL WHERE id = $1 AND endpoint_id = $2`,
			delivery, endpoint, now.UTC())
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return notFound(op, "webhook delivery")
		}
		d, err = scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries d
			JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = $1`, delivery))
		return err
	})
	return d, err
}
