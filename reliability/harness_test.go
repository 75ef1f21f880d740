package reliability_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/reliability"
	"tollgate/store/postgres"
	"tollgate/wxpay/wxpaysim"
)

var (
	seedFlag   = flag.Int64("seed", 0, "replay the run with this seed (0: a new one, printed first)")
	ordersFlag = flag.Int("orders", 300, "orders in the run (the long form is 10,000)")
	usersFlag  = flag.Int("users", 16, "concurrent simulated users")
	killsFlag  = flag.Int("kills", 3, "SIGKILL + restart cycles of one instance")
	verbose    = flag.Bool("harness.v", false, "print every process's output")
)

// TestHarness is the short form of the fault-injection harness (issue 7,
// item 1): one emulator with every notification fault on, two instances
// over one PostgreSQL and Redis, seeded users, forgeries, replays and
// SIGKILLs; then the ledger is audited and compared with the emulator's
// ground truth. See docs/RELIABILITY.md.
func TestHarness(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano() % 1e9
	}
	t.Logf("seed %d (replay: go test ./reliability -run TestHarness -seed %d)", seed, seed)
	dbURL := testenv.MustPostgres(t)
	// serve has no key prefix flag: the instances use its default
	// "tollgate:" prefix in the test Redis. Their keys (nonces with random
	// values, the merchant's query budget) are shared with any other
	// instance using that Redis, which only makes the limiter stricter.
	redisURL, _ := testenv.MustRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	bin, err := reliability.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &tail{max: 400}
	if *verbose {
		logs.tb = t
	}
	cl, err := reliability.StartCluster(ctx, reliability.ClusterConfig{
		Bin: bin, Dir: t.TempDir(), DatabaseURL: dbURL, RedisURL: redisURL, Instances: 2,
		Seed: seed, TimeScale: 0.001, FanOut: 0.2, Log: logs,
	})
	t.Cleanup(cl.Close)
	if err != nil {
		logs.dump(t)
		t.Fatal(err)
	}
	faults := wxpaysim.Faults{
		Seed: seed, DuplicateRate: 0.3, DropRate: 0.1, DelayMinMS: 0, DelayMaxMS: 30000, ReorderRate: 0.05,
		SystemError: map[string]float64{"order": 0.05, "query": 0.05, "close": 0.05, "refund": 0.05, "refundquery": 0.05},
	}
	if r := reliability.Call(ctx, "POST", cl.Sim+"/sim/faults", "", nil, faults); r.Outcome != reliability.OK {
		t.Fatalf("set faults: %s", r)
	}
	t.Logf("started in %v: emulator %s, instances %v, front door %s", time.Since(start).Round(time.Millisecond), cl.Sim, cl.Addrs, cl.FrontURL)

	w := &reliability.Workload{
		Cluster: cl, Seed: seed, Users: *usersFlag, Orders: *ordersFlag,
		PayRate: 0.8, FailRate: 0.05, RefundRate: 0.15, ForgeRate: 0.05, TamperRate: 0.02, ProvisionalRate: 0.2,
		Logf: t.Logf,
	}
	runStart := time.Now()
	run(t, ctx, w, seed)
	t.Logf("workload done in %v", time.Since(runStart).Round(time.Millisecond))
	w.Replay(ctx, 50)

	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, truth := quiesce(t, ctx, st, cl.Sim)
	check(t, ctx, bin, dbURL, st, w, cl, d, truth)
	if t.Failed() {
		logs.dump(t)
	}
	t.Logf("seed %d: total %v", seed, time.Since(start).Round(time.Millisecond))
}

// run runs the users and, alongside, the kills: instance and down time
// drawn from the seed, each after a share of the orders.
func run(t *testing.T, ctx context.Context, w *reliability.Workload, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	var wg sync.WaitGroup
	killErr := make(chan error, 1)
	wg.Go(func() {
		for k := 1; k <= *killsFlag; k++ {
			i := rng.Intn(len(w.Cluster.Addrs))
			down := time.Duration(100+rng.Intn(400)) * time.Millisecond
			if err := w.Kill(ctx, i, int64(*ordersFlag*k/(*killsFlag+1)), down); err != nil {
				killErr <- err
				return
			}
		}
	})
	if err := w.Run(ctx); err != nil {
		t.Error(err)
	}
	wg.Wait()
	select {
	case err := <-killErr:
		t.Fatal(err)
	default:
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
	const limit = 150 * time.Second
	start := time.Now()
	for {
		d, err := dump(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		truth, err := reliability.ReadTruth(ctx, sim)
		if err != nil {
			t.Fatal(err)
		}
		if reliability.Settled(d, truth) {
			t.Logf("quiescent after %v", time.Since(start).Round(time.Millisecond))
			return d, truth
		}
		if time.Since(start) > limit {
			t.Errorf("not quiescent after %v; checking what there is", limit)
			return d, truth
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func check(t *testing.T, ctx context.Context, bin, dbURL string, st *postgres.Store, w *reliability.Workload,
	cl *reliability.Cluster, d *ledger.Dump, truth *reliability.Truth) {
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
	for _, p := range w.Stats.Problems() {
		t.Error("unexpected answer: " + p)
	}
	s := &w.Stats
	if rep.ActiveHolds > s.ChatUnknown.Load() {
		t.Errorf("I5: %d holds still active, only %d chats ended without an answer", rep.ActiveHolds, s.ChatUnknown.Load())
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
	t.Logf("forged %d (refused %d), tampered %d (refused %d), replays %d (acked %d, unknown %d)",
		s.Forged.Load(), s.ForgedRefused.Load(), s.Tampered.Load(), s.TamperedRefused.Load(),
		s.Replays.Load(), s.ReplaysAcked.Load(), s.ReplaysUnknown.Load())
	t.Logf("chats %d (provisional %d, 402 %d, unknown %d, other %d), active holds %d; refunds asked %d (doubled %d) ok %d refused %d unknown %d not ready %d; emulator refunds %d / %d fen",
		s.Chats.Load(), s.ChatsProvisional.Load(), s.Chat402.Load(), s.ChatUnknown.Load(), s.ChatOther.Load(), rep.ActiveHolds,
		s.Refunds.Load()+s.RefundRefused.Load()+s.RefundUnknown.Load(), s.RefundsDoubled.Load(), s.Refunds.Load(),
		s.RefundRefused.Load(), s.RefundUnknown.Load(), s.RefundNotReady.Load(), rep.Refunds, rep.RefundFen)
	t.Logf("kills %d, front-door failovers %d, SYSTEMERRORs %v, peak queries/min %d, Idempotency-Key replays %d conflicts %d",
		s.Kills.Load(), cl.Front.Failovers.Load(), truth.Stats.SystemErrors, truth.Stats.PeakQueriesPerMinute,
		s.IdemReplays.Load(), s.IdemConflicts.Load())

	// Sometimes-assertions: a fault that never fired proves nothing.
	for _, c := range []struct {
		what string
		n    int64
	}{
		{"duplicate notification delivered", rep.Duplicates},
		{"notification fanned out to both instances", cl.Front.FannedOut.Load()},
		{"forged notification refused", s.ForgedRefused.Load()},
		{"tampered notification refused", s.TamperedRefused.Load()},
		{"acknowledged notification replayed and acked", s.ReplaysAcked.Load()},
		{"instance killed", s.Kills.Load()},
		{"notification dropped", rep.Dropped},
		{"order credited by the poller (no delivery)", rep.CreditedWithoutDelivery},
		{"SYSTEMERROR answered", int64(sysErrors)},
		{"refund succeeded", rep.Refunds},
		{"Idempotency-Key replayed", s.IdemReplays.Load()},
	} {
		if c.n == 0 {
			t.Errorf("vacuous run: no %s", c.what)
		}
	}
	if truth.Stats.PeakQueriesPerMinute > 6000 {
		t.Errorf("S3: %d order queries in one minute, over the 6,000 limit", truth.Stats.PeakQueriesPerMinute)
	}
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
