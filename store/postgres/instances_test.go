package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

// TestInstancesShareOneDatabase runs two tollgate instances — two pools, two
// Services with several committers each — against one database, all
// spending from one account and crediting one payment at once: no credit is
// spent twice, the payment makes one lot, and Audit is clean.
func TestInstancesShareOneDatabase(t *testing.T) {
	ctx := context.Background()
	first, url := MustOpen(t)
	second, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	svcs := []*ledger.Service{
		MustService(t, first, ledger.Options{Committers: 3}),
		MustService(t, second, ledger.Options{Committers: 3}),
	}
	const balance, workers, ask = 10_000, 200, 70
	MustFund(t, svcs[0], "shared", balance)

	var wg sync.WaitGroup
	var reserved, refused atomic.Int64
	for i := range workers {
		wg.Go(func() {
			_, err := svcs[i%2].Reserve(ctx, ledger.ReserveRequest{HoldID: fmt.Sprintf("h%03d", i), Account: "shared",
				Amount: ask, TTL: time.Hour})
			switch tollgate.ErrorCode(err) {
			case "":
				reserved.Add(1)
			case tollgate.EINSUFFICIENT:
				refused.Add(1)
			default:
				t.Errorf("reserve h%03d: %v", i, err)
			}
		})
	}
	lots := make(chan ledger.Lot, 20)
	for i := range 20 {
		wg.Go(func() {
			l, _, err := svcs[i%2].CreditPayment(ctx, ledger.Payment{Account: "shared", OutTradeNo: "dup-order",
				TransactionID: "wx-dup", Fen: 100, Credits: 500})
			if err != nil {
				t.Errorf("credit %d: %v", i, err)
				return
			}
			lots <- l
		})
	}
	wg.Wait()
	close(lots)
	ids := map[int64]bool{}
	for l := range lots {
		ids[l.ID] = true
	}
	if len(ids) != 1 {
		t.Fatalf("one payment credited %d times from two instances: lots %v", len(ids), ids)
	}
	// The payment of 500 may land before or after any reserve, so up to
	// (balance+500)/ask reserves fit; never more.
	if most := int64((balance + 500) / ask); reserved.Load() > most || reserved.Load() < balance/ask {
		t.Fatalf("%d reserves of %d succeeded; between %d and %d fit", reserved.Load(), ask, balance/ask, most)
	}
	if reserved.Load()+refused.Load() != workers {
		t.Fatalf("%d reserved + %d refused ≠ %d", reserved.Load(), refused.Load(), workers)
	}
	b, err := svcs[1].Balance(ctx, "shared")
	if err != nil || b.Credits < 0 || b.Held != tollgate.Credits(reserved.Load()*ask) {
		t.Fatalf("balance = %+v, %v; want held %d and nothing negative", b, err, reserved.Load()*ask)
	}
	vs, err := ledger.Audit(ctx, first, ledger.AuditOptions{Now: time.Now(), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("audit violation: %s", v)
	}
}
