package reliability_test

import (
	"context"
	"testing"
	"time"

	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/reliability"
	"tollgate/store/postgres"
)

// TestRefundCrashWindow is the regression test of a bug the harness found
// under SIGKILL and connection cuts: payment.Refund used to commit the
// ledger's pending refund (ledger.BeginRefund) before writing the refund
// record the poller follows, so a crash in between froze the lot's credits
// in "refunding" for good. The record is now written first; a database
// trigger stands in for the crash (the record's INSERT fails once), and no
// ledger refund may be left pending without a record. (The crash after the
// ledger step is covered by payment's TestRefundCrashAfterLedgerBegin.)
func TestRefundCrashWindow(t *testing.T) {
	dbURL := testenv.MustPostgres(t)
	redisURL, redisPrefix := testenv.MustRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := reliability.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &tail{max: 200}
	cl, err := reliability.StartCluster(ctx, reliability.ClusterConfig{
		Bin: bin, Dir: t.TempDir(), DatabaseURL: dbURL, RedisURL: redisURL, RedisPrefix: redisPrefix, Instances: 1, Seed: 1, TimeScale: 0.001, Log: logs,
	})
	t.Cleanup(cl.Close)
	if err != nil {
		logs.dump(t)
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	addr := cl.Addrs[0]
	var acct struct {
		APIKey string `json:"api_key"`
	}
	mustCall(t, reliability.Call(ctx, "POST", addr+"/admin/accounts", cl.AdminToken, nil, nil), &acct)
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
	}
	mustCall(t, reliability.Call(ctx, "POST", addr+"/v1/payments/orders", acct.APIKey, map[string]string{"Idempotency-Key": "crash-window"},
		map[string]any{"amount_fen": 1000, "device_fingerprint": "reliability-refund-crash-window"}), &o)
	mustCall(t, reliability.Call(ctx, "POST", cl.Sim+"/sim/orders/"+o.OutTradeNo+"/pay", "", nil, nil), nil)
	waitFor(t, "the order to read SUCCESS", func() bool {
		var got struct{ Status string }
		r := reliability.Call(ctx, "GET", addr+"/v1/payments/orders/"+o.OutTradeNo, acct.APIKey, nil, nil)
		return r.Outcome == reliability.OK && r.Decode(&got) == nil && got.Status == "SUCCESS"
	})

	// The crash: the refund record cannot be written.
	for _, q := range []string{
		`CREATE FUNCTION reliability_crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'reliability: crash before the refund record'; END $$`,
		`CREATE TRIGGER reliability_crash BEFORE INSERT ON payment_refunds FOR EACH ROW EXECUTE FUNCTION reliability_crash()`,
	} {
		if err := st.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r := reliability.Call(ctx, "POST", addr+"/v1/payments/orders/"+o.OutTradeNo+"/refund", acct.APIKey, nil, nil)
	if err := st.ExecRaw(ctx, `DROP TRIGGER reliability_crash ON payment_refunds`); err != nil {
		t.Fatal(err)
	}
	if r.Outcome == reliability.OK {
		t.Fatalf("refund succeeded although its record could not be written: %s", r)
	}

	// Recovered means: the refund reached a final state in the ledger, or
	// there is a record the poller follows. Give the poller time to act.
	var stranded []ledger.Refund
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, err := dump(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if v := reliability.Audit(d); len(v) > 0 {
			t.Fatalf("ledger.Audit: %v", v)
		}
		stranded = stranded[:0]
		for _, lr := range d.Refunds {
			if lr.Status != ledger.RefundPending {
				continue
			}
			if _, err := st.Refund(ctx, lr.OutRefundNo); err != nil {
				stranded = append(stranded, lr)
			}
		}
		if len(stranded) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(stranded) > 0 {
		t.Errorf("ledger refund %s (%d credits, %d fen) still pending with no refund record 15 s after the record's write failed",
			stranded[0].OutRefundNo, stranded[0].Credits, stranded[0].Fen)
	}
}

func mustCall(t *testing.T, r reliability.Reply, v any) {
	t.Helper()
	if r.Outcome != reliability.OK {
		t.Fatalf("call: %s", r)
	}
	if v != nil {
		if err := r.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond for at most a minute: a bounded wait for the system
// to do something, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
