package reliability_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/failpoint"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/reliability"
	"tollgate/store/postgres"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

var (
	seedFlag   = flag.Int64("seed", 0, "replay the run with this seed (0: a new one, printed first)")
	ordersFlag = flag.Int("orders", 300, "orders in the run (the long form is 10,000)")
	usersFlag  = flag.Int("users", 16, "concurrent simulated users")
	roundsFlag = flag.Int("rounds", 3, "chaos rounds, each a random SIGKILL and a kill at every failpoint (S6)")
	verbose    = flag.Bool("harness.v", false, "print every process's output")
	mutation   = flag.String("mutation", "", "break the system on purpose; the run must then FAIL (see docs/RELIABILITY.md): drop_unique, skip_amount, skip_signature, held_available, split_credit, refund_held, grant_over_cap, late_grant_expiry, late_hold_expiry, revoke_forgives, late_token_expiry, skip_close_revoke, refund_unpaid, drop_refund_event")
)

// TestHarness is the short form of the fault-injection harness (issue 7,
// item 1): one emulator with every notification fault on, two instances
// over one PostgreSQL and Redis, seeded users, forgeries, replays and
// SIGKILLs; then the ledger is audited and compared with the emulator's
// ground truth. See docs/RELIABILITY.md.
func TestHarness(t *testing.T) {
	harness(t, harnessProfile{orders: *ordersFlag, users: *usersFlag, rounds: *roundsFlag})
}

// TestProductionHarness is the harness on the production path (issue 18):
// keys generated for an operator, `tollgate sandbox` as an external WeChat
// Pay with them in platform certificate mode, every instance `serve --mode
// production --wxpay-api-version v3` with the merchant's key files behind
// an https front door, and a platform certificate rotation mid-run, under
// the same faults and checks as TestHarness. Its short form is smaller
// (one chaos round); -orders, -users and -rounds, when given, size it too.
func TestProductionHarness(t *testing.T) {
	// 240 orders: enough order queries (the poller's, some 50) that each
	// kind of sometimes-assertion fires, a lie in a query among them.
	p := harnessProfile{production: true, orders: 240, users: 12, rounds: 1}
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "orders":
			p.orders = *ordersFlag
		case "users":
			p.users = *usersFlag
		case "rounds":
			p.rounds = *roundsFlag
		}
	})
	harness(t, p)
}

// harnessProfile is what one run of the harness is: its size, and the
// production path or the v2 one.
type harnessProfile struct {
	production            bool
	orders, users, rounds int
}

func harness(t *testing.T, p harnessProfile) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano() % 1e9
	}
	t.Logf("seed %d (replay: go test ./reliability -run '^%s$' -seed %d)", seed, t.Name(), seed)
	dbURL := testenv.MustPostgres(t)
	// The instances keep their Redis keys under the test's own prefix
	// (--redis-prefix), which S8 deletes mid-run.
	redisURL, redisPrefix := testenv.MustRedis(t)
	// 5 minutes for the CI size; the long form (-orders 10000) gets more.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+time.Duration(p.orders)*150*time.Millisecond)
	defer cancel()

	start := time.Now()
	// The chaos steps arm failpoints, compiled in only with their tag.
	tags := []string{failpoint.FailpointsTag}
	if hookMutations[*mutation] {
		// A deliberate bug compiled in only with this tag, switched on for
		// the serve processes through TOLLGATE_MUTANTS.
		tags = append(tags, failpoint.MutantsTag)
		t.Setenv("TOLLGATE_MUTANTS", *mutation)
		t.Logf("MUTATION %s compiled in and switched on: this run must fail", *mutation)
	}
	bin, err := reliability.Build(ctx, t.TempDir(), tags...)
	if err != nil {
		t.Fatal(err)
	}
	logs := &tail{max: 400}
	if *verbose {
		logs.tb = t
	}
	up, err := reliability.StartUpstreams(ctx, bin, t.TempDir(), seed, logs)
	t.Cleanup(up.Close)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := reliability.StartCluster(ctx, reliability.ClusterConfig{
		Bin: bin, Dir: t.TempDir(), DatabaseURL: dbURL, RedisURL: redisURL, Instances: 2,
		Seed: seed, TimeScale: 0.001, FanOut: 0.2, Log: logs, Providers: up.File,
		RedisPrefix: redisPrefix + "serve:", Production: p.production,
	})
	t.Cleanup(cl.Close)
	if err != nil {
		logs.dump(t)
		t.Fatal(err)
	}
	faults := wxpaysim.Faults{
		Seed: seed, DuplicateRate: 0.3, DropRate: 0.1, DelayMinMS: 0, DelayMaxMS: 30000, ReorderRate: 0.05,
		SystemError: map[string]float64{"order": 0.05, "query": 0.05, "close": 0.05, "refund": 0.05, "refundquery": 0.05},
		Lies:        lieRates(),
	}
	if r := reliability.Call(ctx, "POST", cl.Sim+"/sim/faults", "", nil, faults); r.Outcome != reliability.OK {
		t.Fatalf("set faults: %s", r)
	}
	// The app's webhook receiver, registered before any money changes.
	rc, endpoint := startWebhooks(t, ctx, cl, seed, p.production)
	t.Logf("started in %v: emulator %s (API %s), instances %v, front door %s, webhook receiver %s", time.Since(start).Round(time.Millisecond),
		cl.Sim, cl.APIVersion, cl.Addrs, cl.FrontURL, rc.URL)

	w := &reliability.Workload{
		Cluster: cl, Seed: seed, Users: p.users, Orders: p.orders,
		PayRate: 0.8, FailRate: 0.05, RefundRate: 0.15, ForgeRate: 0.05, TamperRate: 0.02, ProvisionalRate: 0.2,
		Logf: t.Logf,
	}
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mutate(t, ctx, st)
	runStart := time.Now()
	bank := &reliability.BankReader{Read: func(ctx context.Context) (*ledger.Dump, error) { return dump(ctx, st) }}
	bankDone := make(chan struct{})
	var bankWG sync.WaitGroup
	bankWG.Go(func() { bank.Run(ctx, bankDone) })
	var redisErr error
	bankWG.Go(func() { redisErr = w.RedisLoss(ctx, redisURL, redisPrefix+"serve:", bankDone) })
	chaos := run(t, ctx, w, st, rc, seed, p)
	t.Logf("workload done in %v; chaos steps taken: %v", time.Since(runStart).Round(time.Millisecond), chaos.Fired())
	s9 := time.Now()
	contention(t, ctx, cl)
	t.Logf("S9 took %v", time.Since(s9).Round(time.Millisecond))
	close(bankDone)
	bankWG.Wait()
	bankReader(t, bank)
	redisLoss(t, w, redisErr)
	upstreamFaults(t, ctx, up, w)
	w.Replay(ctx, 50)
	stopLying(t, ctx, cl)
	d, truth := quiesce(t, ctx, st, cl.Sim)
	rep := check(t, ctx, bin, dbURL, st, w, cl, d, truth)
	if p.production {
		rotation(t, cl, chaos, truth, rep)
	}
	s13(t, ctx, bin, dbURL, cl, d, seed)
	catalogue(t, ctx, st, cl, truth, seed)
	// After the catalogue: S5 expires nonces the catalogue's nonce_reuse draws from.
	s5(t, ctx, st, w, redisURL, redisPrefix+"serve:")
	s11(t, ctx, st, cl, seed)
	s11Late(t, ctx, st, cl, seed)
	// Last: every money change of the run, the ones above included, must
	// have reached the app exactly once.
	webhooks(t, ctx, st, cl, rc, endpoint, seed)
	for _, step := range chaos.Steps {
		if chaos.Fired()[step] == 0 {
			t.Errorf("vacuous run: chaos step %s never took effect", step)
		}
	}
	if t.Failed() {
		logs.dump(t)
	}
	t.Logf("seed %d: total %v", seed, time.Since(start).Round(time.Millisecond))
	if len(rep.StuckRefunds) > 0 {
		t.Errorf("seed %d: %d refund(s) stuck pending for good (credits frozen in refunding, no refund record, never sent to WeChat Pay): %v",
			seed, len(rep.StuckRefunds), rep.StuckRefunds)
	}
}

// signatureRefusals fails the run for every genuine notification an
// instance refused for its signature. When an instance logged a failed
// download of the platform certificates for an unknown serial shortly
// before, the error says so: it then refuses the new serial until its next
// download, wxpay.V3CertificateRefetchBackoff later, doubling up to
// wxpay.V3CertificateRefetchInterval (docs/RELIABILITY.md, "The production
// path").
func signatureRefusals(t *testing.T, cl *reliability.Cluster, rep *reliability.Report) {
	t.Helper()
	failures := cl.CertRefetchFailures()
	for _, r := range rep.SignatureRefused {
		if slices.ContainsFunc(failures, func(f time.Time) bool {
			return r.Time.After(f.Add(-5*time.Second)) && r.Time.Before(f.Add(wxpay.V3CertificateRefetchInterval+time.Second))
		}) {
			t.Errorf("%s, shortly after an instance failed to download the platform certificates for an unknown serial (every attempt)", r.What)
		} else {
			t.Error(r.What)
		}
	}
}

// rotation checks the production run's certificate rotation: it took
// effect, notifications signed by the new certificate were acknowledged
// after it (the instances downloaded it); check has already failed the
// run for a genuine notification refused for its signature.
func rotation(t *testing.T, cl *reliability.Cluster, chaos *reliability.Chaos, truth *reliability.Truth, rep *reliability.Report) {
	t.Helper()
	at := chaos.RotatedAt()
	if at.IsZero() {
		t.Errorf("vacuous run: the platform certificate was never rotated")
		return
	}
	var after int
	for _, d := range truth.Notifications {
		if d.Time.After(at) && d.Method == "POST" && d.Lie == "" &&
			(d.Outcome == wxpaysim.OutcomeAcked || d.Outcome == wxpaysim.OutcomeDuplicateAcked) {
			after++
		}
	}
	t.Logf("rotation: platform certificate rotated at %s; %d notifications acknowledged after it; %d genuine notifications refused for their signature; %d certificate download attempts for an unknown serial made again, %d downloads failed",
		at.Format(time.TimeOnly), after, len(rep.SignatureRefused), cl.CertRetries.Load(), len(cl.CertRefetchFailures()))
	if after == 0 {
		t.Errorf("vacuous run: no notification acknowledged after the certificate rotation")
	}
}

// lieRates makes the emulator a lying WeChat Pay (docs/RELIABILITY.md, "A
// lying WeChat Pay"): 1 % of order query answers and of first payment
// notification POSTs tell each order lie (9 % in all), 20 % of refund
// answers and first refund notification POSTs another amount.
func lieRates() map[string]float64 {
	m := map[string]float64{wxpaysim.LieRefundAmount: 0.2}
	for _, k := range wxpaysim.OrderLieKinds {
		m[k] = 0.01
	}
	return m
}

// mutate applies -mutation: a known bug the harness must catch (docs/RELIABILITY.md, "Mutation check"
// ). Only mutations that need no hook in tollgate's code
// live here; the others are listed in docs/RELIABILITY.md.
// hookMutations are the deliberate bugs built into the binary behind the
// tollgate_mutants tag (internal/failpoint.Mutant); the others are applied
// to the database by mutate.
var hookMutations = map[string]bool{
	failpoint.MutantSkipAmount:    true,
	failpoint.MutantSkipSignature: true,
	failpoint.MutantHeldAvailable: true,
	failpoint.MutantSplitCredit:   true,
	// Caught by unit and integration tests (scripts/mutants.sh); the
	// harness takes them too.
	failpoint.MutantRefundHeld:      true,
	failpoint.MutantGrantOverCap:    true,
	failpoint.MutantLateGrantExpiry: true,
	failpoint.MutantLateHoldExpiry:  true,
	failpoint.MutantRevokeForgives:  true,
	failpoint.MutantLateTokenExpiry: true,
	failpoint.MutantSkipCloseRevoke: true,
	failpoint.MutantRefundUnpaid:    true,
	// Caught by the webhook receiver (W1, W5) and the conformance suite.
	failpoint.MutantDropRefundEvent: true,
	// Caught by I1/I2 (an acknowledged payment without its lot) and the
	// conformance suite's batched credits.
	failpoint.MutantDropBatchItem: true,
}

func mutate(t *testing.T, ctx context.Context, st *postgres.Store) {
	switch {
	case *mutation == "" || hookMutations[*mutation]:
	case *mutation == "drop_unique": // (d) exactly-once without its unique constraints
		for _, q := range []string{
			"ALTER TABLE lots DROP CONSTRAINT lots_transaction_id_key",
			"ALTER TABLE lots DROP CONSTRAINT lots_out_trade_no_key",
		} {
			if err := st.ExecRaw(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("MUTATION drop_unique applied: this run must fail")
	default:
		t.Fatalf("unknown -mutation %q", *mutation)
	}
}

// run runs the users and, alongside, the chaos: rounds of a random
// SIGKILL and a kill at each failpoint, one cut of every database
// connection, the webhook receiver down for a while, a kill while a
// webhook delivery is in flight and, in production, a platform certificate rotation, spread
// over the orders.
func run(t *testing.T, ctx context.Context, w *reliability.Workload, st *postgres.Store, rc *reliability.Receiver, seed int64, p harnessProfile) *reliability.Chaos {
	var steps []string
	for r := range p.rounds {
		steps = append(steps, reliability.StepSIGKILL)
		if r == 0 {
			// The webhook receiver goes down early, while events pile
			// up; later an instance is killed mid-delivery.
			steps = append(steps, reliability.StepWebhookDown)
		}
		steps = append(steps, "fp:"+failpoint.AfterCreditBeforeAck, "fp:"+failpoint.AfterCreditBeforeOrder)
		if r == 0 {
			steps = append(steps, reliability.StepDBCut, reliability.StepWebhookKill)
		}
	}
	if p.production {
		// Mid-run, among the other steps: WeChat Pay rotates its
		// platform certificate.
		steps = slices.Insert(steps, len(steps)/2, reliability.StepRotate)
	}
	chaos := &reliability.Chaos{W: w, Seed: seed, Steps: steps, Webhooks: rc, CutDB: func(ctx context.Context) error {
		return st.ExecRaw(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var chaosErr error
	wg.Go(func() { chaosErr = chaos.Run(ctx, done) })
	if err := w.Run(ctx); err != nil {
		t.Error(err)
	}
	close(done)
	wg.Wait()
	if chaosErr != nil {
		t.Fatal(chaosErr)
	}
	return chaos
}

// stopLying ends the emulator's lies with the workload. A lie about an
// unpaid order makes serve close it at WeChat Pay and revoke its grant (the
// order's true end, reached early); told after quiescence, it would change
// the money tables between the checks that require them unchanged (S4's
// I8, S5), a change no forgery or replay made.
func stopLying(t *testing.T, ctx context.Context, cl *reliability.Cluster) {
	t.Helper()
	var f wxpaysim.Faults
	if r := reliability.Call(ctx, "GET", cl.Sim+"/sim/faults", "", nil, nil); r.Outcome != reliability.OK || r.Decode(&f) != nil {
		t.Fatalf("read faults: %s", r)
	}
	f.Lies = nil
	if r := reliability.Call(ctx, "POST", cl.Sim+"/sim/faults", "", nil, f); r.Outcome != reliability.OK {
		t.Fatalf("stop the lies: %s", r)
	}
}

func dump(ctx context.Context, st *postgres.Store) (*ledger.Dump, error) {
	var d *ledger.Dump
	err := st.View(ctx, func(tx ledger.ReadTx) (err error) {
		d, err = tx.Dump(ctx)
		return err
	})
	return d, err
}

// quiesce waits (bounded) until notifications, the poller and refunds have
// settled, and returns the final state of both sides.
func quiesce(t *testing.T, ctx context.Context, st *postgres.Store, sim string) (*ledger.Dump, *reliability.Truth) {
	const limit = 120 * time.Second
	start := time.Now()
	for {
		d, err := dump(ctx, st)
		var truth *reliability.Truth
		if err == nil {
			truth, err = reliability.ReadTruth(ctx, sim)
		}
		if err != nil && time.Since(start) > limit {
			t.Fatal(err)
		}
		if err == nil && reliability.Settled(ctx, d, truth, st) {
			t.Logf("quiescent after %v", time.Since(start).Round(time.Millisecond))
			return d, truth
		}
		if err == nil && time.Since(start) > limit {
			t.Errorf("not quiescent after %v; checking what there is", limit)
			return d, truth
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func check(t *testing.T, ctx context.Context, bin, dbURL string, st *postgres.Store, w *reliability.Workload,
	cl *reliability.Cluster, d *ledger.Dump, truth *reliability.Truth) *reliability.Report {
	for _, v := range reliability.Audit(d) {
		t.Errorf("ledger.Audit: %s", v)
	}
	if out, err := exec.CommandContext(ctx, bin, "audit", "--database-url", dbURL).CombinedOutput(); err != nil {
		t.Errorf("tollgate audit: %v\n%s", err, out)
	}
	rep, err := reliability.Compare(ctx, d, truth, st, w.Forged)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
	signatureRefusals(t, cl, rep)
	for _, p := range w.Stats.Problems() {
		t.Error("unexpected answer: " + p)
	}
	s := &w.Stats
	// A settle waits in its instance's committer after the answer is sent
	// (SettleLater): a kill within settleRisk of an answer may lose it.
	const settleRisk = 3 * time.Second
	atRisk := s.SettlesAtRisk(cl, settleRisk)
	if rep.ActiveHolds > s.ChatUnknown.Load()+atRisk {
		t.Errorf("I5: %d holds still active, only %d chats ended without an answer and %d were answered within %v before their instance was killed",
			rep.ActiveHolds, s.ChatUnknown.Load(), atRisk, settleRisk)
	}
	var sysErrors int
	for _, n := range truth.Stats.SystemErrors {
		sysErrors += n
	}
	t.Logf("orders %d (retried %d, unknown %d, not placed %d), paid %d / %d fen, failed %d, abandoned %d; lots %d / %d fen",
		s.Orders.Load(), s.OrderRetries.Load(), s.OrderUnknown.Load(), s.NotPlaced.Load(), rep.PaidOrders, rep.PaidFen,
		s.Failed.Load(), s.Abandoned.Load(), rep.Lots, rep.LotFen)
	t.Logf("deliveries %d POSTs, duplicates %d (%d acked), fanned out to both instances %d, dropped %d, credited without any delivery (poller) %d",
		rep.Deliveries, rep.Duplicates, rep.DuplicatesAcked, cl.Front.FannedOut.Load(), rep.Dropped, rep.CreditedWithoutDelivery)
	t.Logf("forged %d (refused %d), tampered %d (refused %d), replays %d (acked %d, unknown %d, refused as signed over 5 minutes ago %d); genuine notifications refused for their signature %d",
		s.Forged.Load(), s.ForgedRefused.Load(), s.Tampered.Load(), s.TamperedRefused.Load(),
		s.Replays.Load(), s.ReplaysAcked.Load(), s.ReplaysUnknown.Load(), s.ReplaysStale.Load(), len(rep.SignatureRefused))
	t.Logf("chats %d (provisional %d, 402 %d, unknown %d, refused %d, other %d), active holds %d (answered within 3s before a kill %d); refunds asked %d (doubled %d) ok %d refused %d unknown %d not ready %d; emulator refunds %d / %d fen",
		s.Chats.Load(), s.ChatsProvisional.Load(), s.Chat402.Load(), s.ChatUnknown.Load(), s.ChatRefused.Load(), s.ChatOther.Load(), rep.ActiveHolds, atRisk,
		s.Refunds.Load()+s.RefundRefused.Load()+s.RefundUnknown.Load(), s.RefundsDoubled.Load(), s.Refunds.Load(),
		s.RefundRefused.Load(), s.RefundUnknown.Load(), s.RefundNotReady.Load(), rep.Refunds, rep.RefundFen)
	t.Logf("kills %d, starts refused by the preflight and made again %d, front-door failovers %d, calls %v, SYSTEMERRORs %v, peak queries/min %d, Idempotency-Key replays %d conflicts %d",
		s.Kills.Load(), cl.PreflightRestarts.Load(), cl.Front.Failovers.Load(), truth.Stats.Calls, truth.Stats.SystemErrors, truth.Stats.PeakQueriesPerMinute,
		s.IdemReplays.Load(), s.IdemConflicts.Load())
	reviews := map[string]int64{}
	for _, a := range cl.Addrs {
		m, err := reliability.Events(ctx, a, "order_review")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			reviews[k] += v
		}
	}
	t.Logf("lies told %v (%v) about %d orders; %d lying notification POSTs, all refused; %d orders lied about in review; "+
		"order_review since the last restarts %v; payments refused because a lie closed the order %d",
		rep.Lies, truth.Stats.Lies, rep.OrdersLiedAbout, rep.LyingDeliveries, rep.InReview, reviews, s.PayClosedAfterLie.Load())

	// Sometimes-assertions: a fault that never fired proves nothing.
	for _, c := range []struct {
		what string
		n    int64
	}{
		{"duplicate notification delivered", rep.Duplicates},
		{"notification fanned out to both instances", cl.Front.FannedOut.Load()},
		{"forged notification refused", s.ForgedRefused.Load()},
		// Tampered ones: 2% in flight may be none in a small run; the
		// quiescent catalogue always sends 10 and checks each refusal.
		{"acknowledged notification replayed and acked", s.ReplaysAcked.Load()},
		{"instance killed", s.Kills.Load()},
		{"notification dropped", rep.Dropped},
		{"order credited by the poller (no delivery)", rep.CreditedWithoutDelivery},
		{"SYSTEMERROR answered", int64(sysErrors)},
		{"refund succeeded", rep.Refunds},
		{"Idempotency-Key replayed", s.IdemReplays.Load()},
		{"lie told in an order query", rep.Lies[wxpaysim.LieInQuery]},
		{"lie told in a payment notification", rep.Lies[wxpaysim.LieInNotify]},
		{"lie told about a refund", rep.Lies[wxpaysim.LieInRefund] + rep.Lies[wxpaysim.LieInRefundQuery] + rep.Lies[wxpaysim.LieInRefundNotify]},
		{"order lied about put in review", rep.InReview},
	} {
		if c.n == 0 {
			t.Errorf("vacuous run: no %s", c.what)
		}
	}
	// The emulator counts every sliding minute, where both instances'
	// queries meet; the instances' shared limiter keeps 100 of the budget
	// back for the time queries take to get there (payment.Config.QueryLimit).
	if truth.Stats.PeakQueriesPerMinute > payment.QueryBudget {
		t.Errorf("S3: %d order queries in one sliding minute, over the budget of %d", truth.Stats.PeakQueriesPerMinute, payment.QueryBudget)
	}
	return rep
}

// catalogue sends every forgery kind 10× at the quiescent system and
// checks that each was refused, counted by reason, and changed nothing in
// the money tables (S4 short form, I8).
func catalogue(t *testing.T, ctx context.Context, st *postgres.Store, cl *reliability.Cluster, truth *reliability.Truth, seed int64) {
	before, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	rejBefore := map[string]int64{}
	for _, a := range cl.Addrs {
		m, err := reliability.Rejections(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			rejBefore[k] += v
		}
	}
	res := reliability.SendCatalogue(ctx, cl, truth.Orders, 10, rand.New(rand.NewSource(seed^0xca7)))
	after, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := reliability.DiffMoney(before, after); len(diff) > 0 {
		t.Errorf("I8: forged notifications changed the money tables: %v", diff)
	}
	for _, a := range res.Acked {
		t.Errorf("S4: forgery acknowledged: %s", a)
	}
	for _, p := range res.Problems {
		t.Error(p)
	}
	delta := map[string]int64{}
	var total, sent int64
	for _, a := range cl.Addrs {
		m, err := reliability.Rejections(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			delta[k] += v
		}
	}
	for k := range delta {
		delta[k] -= rejBefore[k]
		total += delta[k]
	}
	for _, n := range res.Sent {
		sent += int64(n)
	}
	if total != sent-int64(res.Unknown) {
		t.Errorf("S4: %d forgeries answered, rejection metric grew by %d (%v)", sent-int64(res.Unknown), total, delta)
	}
	if delta["amount_mismatch"] != int64(res.Sent["tampered"]) {
		t.Errorf("S4: %d tampered notifications, amount_mismatch grew by %d", res.Sent["tampered"], delta["amount_mismatch"])
	}
	if delta["replay"] != int64(res.Sent["nonce_reuse"]) {
		t.Errorf("S4: %d notifications reused a seen nonce_str, replay grew by %d", res.Sent["nonce_reuse"], delta["replay"])
	}
	t.Logf("S4 catalogue at quiescence: sent %v against %d orders; refusals by reason %v; money tables unchanged: %v",
		res.Sent, res.Targets, delta, !t.Failed())
}

// tail keeps the last lines of the processes' output, printed when the
// run fails (or every line with -harness.v).
type tail struct {
	max int
	tb  testing.TB

	mu    sync.Mutex
	lines []string
}

func (l *tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if l.tb != nil {
			l.tb.Log(line)
		}
		l.lines = append(l.lines, line)
	}
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
	return len(p), nil
}

func (l *tail) dump(tb testing.TB) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, line := range l.lines {
		fmt.Fprintln(&b, line)
	}
	tb.Logf("last %d lines of the processes' output:\n%s", len(l.lines), b.String())
}
