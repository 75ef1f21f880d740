package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

// outcome is what a client was told about one operation.
type outcome int

const (
	outcomeOK      outcome = iota // reported committed
	outcomeFailed                 // reported not committed
	outcomeUnknown                // reported unknown (ErrCommitUnknown)
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, postgres.ErrCommitUnknown):
		return outcomeUnknown
	}
	return outcomeFailed
}

// killer terminates every backend of the application named app on the
// database at url, from a connection of its own.
type killer struct {
	conn *pgx.Conn
	app  string
}

func mustKiller(t *testing.T, url, app string) *killer {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("killer connection: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &killer{conn: conn, app: app}
}

// cut terminates the backends and returns how many there were.
func (k *killer) cut(t *testing.T) int {
	t.Helper()
	var n int
	err := k.conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`, k.app).Scan(&n)
	if err != nil {
		t.Fatalf("terminate backends: %v", err)
	}
	return n
}

// cutUntil cuts the connections every few milliseconds until failed
// reports that some operation failed (so the test is never vacuous) or the
// workers are done.
func (k *killer) cutUntil(t *testing.T, failed func() bool, done <-chan struct{}) int {
	cuts := 0
	for {
		select {
		case <-done:
			return cuts
		case <-time.After(20 * time.Millisecond):
		}
		if k.cut(t) > 0 {
			cuts++
		}
		if failed() && cuts >= 3 {
			return cuts
		}
	}
}

// TestConnectionsKilled is S7 at the store level: concurrent transactions
// while every connection is terminated, repeatedly. Every transaction
// reported committed must be in the database, every one reported not
// committed must not be, and the store must work afterwards.
func TestConnectionsKilled(t *testing.T) {
	const app = "tollgate-killtest"
	s, url := MustOpen(t, postgres.WithApplicationName(app), postgres.WithMaxConns(6), postgres.WithUpdateAttempts(3))
	k := mustKiller(t, url, app)
	ctx := context.Background()

	const workers, perWorker = 6, 150
	outcomes := make([][]outcome, workers)
	var failures atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range workers {
		outcomes[w] = make([]outcome, perWorker)
		wg.Go(func() {
			for i := range perWorker {
				id := tollgate.AccountID(fmt.Sprintf("w%d-%03d", w, i))
				err := s.Update(ctx, func(tx ledger.Tx) error {
					got, err := tx.Accounts(ctx, []tollgate.AccountID{id})
					if err != nil {
						return err
					}
					if len(got) > 0 {
						return nil // an earlier attempt committed after all
					}
					return tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: id, CreatedAt: time.Now()}}})
				})
				outcomes[w][i] = classify(err)
				if err != nil {
					failures.Add(1)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	cuts := k.cutUntil(t, func() bool { return failures.Load() > 0 }, done)
	<-done

	stored := map[tollgate.AccountID]bool{}
	err := s.View(ctx, func(tx ledger.ReadTx) error {
		d, err := tx.Dump(ctx)
		if err != nil {
			return err
		}
		for _, a := range d.Accounts {
			stored[a.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store did not recover: %v", err)
	}
	counts := map[outcome]int{}
	for w := range workers {
		for i, o := range outcomes[w] {
			counts[o]++
			id := tollgate.AccountID(fmt.Sprintf("w%d-%03d", w, i))
			switch {
			case o == outcomeOK && !stored[id]:
				t.Errorf("%s was reported committed but is not in the database", id)
			case o == outcomeFailed && stored[id]:
				t.Errorf("%s was reported not committed but is in the database", id)
			}
		}
	}
	t.Logf("%d cuts: %d ok, %d failed, %d unknown", cuts, counts[outcomeOK], counts[outcomeFailed], counts[outcomeUnknown])
	if cuts == 0 {
		t.Fatal("no connection was ever cut: the test proved nothing")
	}
	if err := s.Update(ctx, func(tx ledger.Tx) error {
		return tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "after", CreatedAt: time.Now()}}})
	}); err != nil {
		t.Fatalf("store did not recover: %v", err)
	}
}

// TestServiceSurvivesKilledConnections runs the ledger's hot path through
// the cuts: every hold reported reserved or settled is stored so, Audit is
// clean, and the service keeps working.
func TestServiceSurvivesKilledConnections(t *testing.T) {
	const app = "tollgate-killsvc"
	s, url := MustOpen(t, postgres.WithApplicationName(app), postgres.WithMaxConns(6))
	k := mustKiller(t, url, app)
	svc := MustService(t, s, ledger.Options{Committers: 2})
	ctx := context.Background()
	const clients, perClient = 8, 30
	for c := range clients {
		MustFund(t, svc, tollgate.AccountID(fmt.Sprintf("acct-%d", c)), 1_000_000)
	}
	type result struct{ reserved, settled bool }
	results := make([][]result, clients)
	var failures atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for c := range clients {
		results[c] = make([]result, perClient)
		wg.Go(func() {
			acct := tollgate.AccountID(fmt.Sprintf("acct-%d", c))
			for i := range perClient {
				id := fmt.Sprintf("h-%d-%03d", c, i)
				_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: acct, Amount: 100, TTL: time.Hour})
				if err != nil {
					failures.Add(1)
					continue
				}
				results[c][i].reserved = true
				_, err = svc.Settle(ctx, ledger.SettleRequest{HoldID: id, Cost: 60})
				results[c][i].settled = err == nil
				if err != nil {
					failures.Add(1)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	cuts := k.cutUntil(t, func() bool { return failures.Load() > 0 }, done)
	<-done

	holds := map[string]ledger.Hold{}
	if err := s.View(ctx, func(tx ledger.ReadTx) error {
		d, err := tx.Dump(ctx)
		if err != nil {
			return err
		}
		for _, h := range d.Holds {
			holds[h.ID] = h
		}
		return nil
	}); err != nil {
		t.Fatalf("store did not recover: %v", err)
	}
	okOps := 0
	for c := range clients {
		for i, r := range results[c] {
			id := fmt.Sprintf("h-%d-%03d", c, i)
			h, stored := holds[id]
			if r.reserved && !stored {
				t.Errorf("hold %s was reported reserved but is not stored", id)
			}
			if r.settled && h.Status != ledger.HoldSettled {
				t.Errorf("hold %s was reported settled but is stored %q", id, h.Status)
			}
			if r.settled {
				okOps++
			}
		}
	}
	t.Logf("%d cuts, %d failed operations, %d holds settled", cuts, failures.Load(), okOps)
	if cuts == 0 {
		t.Fatal("no connection was ever cut: the test proved nothing")
	}
	vs, err := ledger.Audit(ctx, s, ledger.AuditOptions{Now: time.Now(), Grace: time.Hour})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	for _, v := range vs {
		t.Errorf("audit violation: %s", v)
	}
	if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "after", Account: "acct-0", Amount: 1, TTL: time.Hour}); err != nil {
		t.Fatalf("service did not recover: %v", err)
	}
}

// TestCommitOutcomeUnknown kills the backend while its COMMIT is running
// (a deferred constraint trigger makes COMMIT sleep): Update must report
// ErrCommitUnknown, not success and not ErrRetry, and must not run fn
// again even when retries are enabled.
func TestCommitOutcomeUnknown(t *testing.T) {
	const app = "tollgate-commitkill"
	s, url := MustOpen(t, postgres.WithApplicationName(app), postgres.WithUpdateAttempts(5))
	ctx := context.Background()
	err := s.ExecRaw(ctx, `CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$`)
	if err == nil {
		err = s.ExecRaw(ctx, `CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON accounts
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()`)
	}
	if err != nil {
		t.Fatal(err)
	}
	k := mustKiller(t, url, app)
	var cutter sync.WaitGroup
	defer cutter.Wait()
	cutter.Go(func() {
		// Wait until a backend of ours sleeps inside COMMIT, then cut.
		for range 500 {
			var n int
			err := k.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
AND datname = current_database() AND wait_event = 'PgSleep'`, app).Scan(&n)
			if err != nil || n > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, _ = k.conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = $1 AND datname = current_database()`, app)
	})
	var runs atomic.Int32
	err = s.Update(ctx, func(tx ledger.Tx) error {
		runs.Add(1)
		return tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "slow", CreatedAt: time.Now()}}})
	})
	switch {
	case !errors.Is(err, postgres.ErrCommitUnknown):
		t.Fatalf("err = %v, want ErrCommitUnknown", err)
	case errors.Is(err, ledger.ErrRetry):
		t.Fatalf("err = %v wraps ErrRetry: a commit of unknown outcome must not be re-run blindly", err)
	case tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE:
		t.Fatalf("code = %s, want %s", tollgate.ErrorCode(err), tollgate.EUNAVAILABLE)
	case runs.Load() != 1:
		t.Fatalf("fn ran %d times, want once", runs.Load())
	}
}
