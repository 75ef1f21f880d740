package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

// conflictCounter wraps a Store and counts the transactions PostgreSQL
// aborted as deadlocks or serialization failures.
type conflictCounter struct {
	ledger.Store
	deadlocks, serialization atomic.Int64
}

func (c *conflictCounter) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	err := c.Store.Update(ctx, fn)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40P01":
			c.deadlocks.Add(1)
		case "40001":
			c.serialization.Add(1)
		}
	}
	return err
}

// TestMixedOperationsTwoInstances is the concurrent half of S15 on
// PostgreSQL: two instances run random credits, reserves, settles,
// releases, expiries and refunds on a few shared accounts. No operation may
// fail with anything but a domain refusal, PostgreSQL must never have to
// break a deadlock (the lock order holds across every kind of operation),
// and Audit must be clean.
func TestMixedOperationsTwoInstances(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("TOLLGATE_TEST_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (replay with TOLLGATE_TEST_SEED)", seed)
	ctx := context.Background()
	first, url := MustOpen(t)
	second, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	stores := []*conflictCounter{{Store: first}, {Store: second}}
	svcs := []*ledger.Service{
		MustService(t, stores[0], ledger.Options{Committers: 2}),
		MustService(t, stores[1], ledger.Options{Committers: 2}),
	}
	const accounts, workers, steps = 4, 12, 80
	for a := range accounts {
		MustFund(t, svcs[0], tollgate.AccountID(fmt.Sprintf("m%d", a)), 20_000)
	}
	var unexpected atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			svc := svcs[w%2]
			var holds, orders []string
			check := func(what string, err error) {
				switch tollgate.ErrorCode(err) {
				case "", tollgate.EINSUFFICIENT, tollgate.ECONFLICT, tollgate.ENOTFOUND:
				default:
					unexpected.Add(1)
					t.Errorf("worker %d: %s: %v", w, what, err)
				}
			}
			for i := range steps {
				acct := tollgate.AccountID(fmt.Sprintf("m%d", rng.IntN(accounts)))
				switch r := rng.IntN(100); {
				case r < 10:
					no := fmt.Sprintf("mo-%d-%d", w, i)
					_, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: acct, OutTradeNo: no,
						TransactionID: "wx-" + no, Fen: 1000, Credits: tollgate.Credits(1000 + rng.IntN(4000))})
					check("credit", err)
					if err == nil {
						orders = append(orders, string(acct)+"|"+no)
					}
				case r < 45:
					id := fmt.Sprintf("mh-%d-%d", w, i)
					ttl := time.Hour
					if rng.IntN(5) == 0 {
						ttl = time.Millisecond
					}
					_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: acct,
						Amount: tollgate.Credits(1 + rng.IntN(500)), TTL: ttl})
					check("reserve", err)
					if err == nil {
						holds = append(holds, id)
					}
				case r < 75 && len(holds) > 0:
					k := rng.IntN(len(holds))
					h, err := svc.Hold(ctx, holds[k])
					if err == nil {
						_, err = svc.Settle(ctx, ledger.SettleRequest{HoldID: h.ID, Cost: tollgate.Credits(rng.Int64N(int64(h.Amount) + 1))})
					}
					check("settle", err)
					holds = append(holds[:k], holds[k+1:]...)
				case r < 85 && len(holds) > 0:
					k := rng.IntN(len(holds))
					_, err := svc.Release(ctx, holds[k])
					check("release", err)
					holds = append(holds[:k], holds[k+1:]...)
				case r < 90:
					_, err := svc.ExpireHolds(ctx, time.Now())
					check("expire", err)
				case len(orders) > 0:
					a, no, _ := strings.Cut(orders[rng.IntN(len(orders))], "|")
					rno := fmt.Sprintf("mr-%d-%d", w, i)
					_, err := svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: rno, Account: tollgate.AccountID(a), OutTradeNo: no})
					check("begin refund", err)
					if err == nil {
						if rng.IntN(2) == 0 {
							_, err = svc.CompleteRefund(ctx, rno)
						} else {
							_, err = svc.FailRefund(ctx, rno)
						}
						check("end refund", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if _, err := svcs[0].ExpireHolds(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	vs, err := ledger.Audit(ctx, first, ledger.AuditOptions{Now: time.Now().Add(2 * time.Hour), Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("audit violation: %s", v)
	}
	d, s := stores[0].deadlocks.Load()+stores[1].deadlocks.Load(), stores[0].serialization.Load()+stores[1].serialization.Load()
	t.Logf("%d deadlocks, %d serialization failures (retried by the Service)", d, s)
	if d > 0 {
		t.Errorf("PostgreSQL broke %d deadlocks: some operations lock rows out of order", d)
	}
}
