package reliability

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// Workload is the simulated users: each makes an account, then orders,
// pays (or not) through the emulator, spends through the gateway, asks for
// refunds, while an attacker forges and replays notifications. Every
// random choice derives from Seed.
type Workload struct {
	Cluster *Cluster
	Seed    int64
	Users   int
	Orders  int // in all, spread over the users
	// Rates, each a probability per order.
	PayRate, FailRate, RefundRate, ForgeRate, TamperRate, ProvisionalRate float64
	// Logf reports progress (t.Logf).
	Logf func(format string, args ...any)

	Stats Stats

	created atomic.Int64 // orders created so far, for the killer

	mu     sync.Mutex
	forged map[string]bool // transaction ids only forgeries carried
}

// Stats are the run's counters; the sometimes-assertions read them.
type Stats struct {
	Accounts, Orders, OrderRetries, OrderUnknown   atomic.Int64
	IdemReplays, IdemReplayMismatch                atomic.Int64
	IdemConflicts, IdemConflictAccepted            atomic.Int64
	Paid, PayRefused, Failed, Abandoned, NotPlaced atomic.Int64
	PayClosedAfterLie                              atomic.Int64 // pay refused: tollgate closed the order after a lie said it failed
	Chats, ChatsProvisional, Chat402, ChatUnknown  atomic.Int64
	ChatOther, ChatRefused                         atomic.Int64
	ChatStreams, RedisWipes, RedisKeysDeleted      atomic.Int64 // streaming chats answered; S8
	Refunds, RefundsDoubled, RefundRefused         atomic.Int64
	RefundUnknown, RefundNotReady                  atomic.Int64
	Forged, ForgedRefused, ForgedAcked             atomic.Int64
	Tampered, TamperedRefused, TamperedAcked       atomic.Int64
	Replays, ReplaysAcked, ReplaysUnknown          atomic.Int64
	ReplaysStale                                   atomic.Int64 // v3 replays past the signature window, refused
	Rotations                                      atomic.Int64 // platform certificate rotations (production)
	Kills, DBCuts                                  atomic.Int64
	Unexpected                                     atomic.Int64 // answers no rule allows; see Problems
	problemsMu                                     sync.Mutex
	problems                                       []string
	answeredMu                                     sync.Mutex
	answered                                       []answered // chats answered, for SettlesAtRisk
}

// answered is a chat answered by instance at time at.
type answered struct {
	instance int
	at       time.Time
}

// chatAnswered records that instance answered a chat now.
func (s *Stats) chatAnswered(instance int) {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	s.answered = append(s.answered, answered{instance, time.Now()})
}

// SettlesAtRisk counts the chats answered by an instance that was killed
// within window after: the gateway sends an answer before its settle
// commits (SettleLater), and a kill in between leaves the hold active
// until it expires uncharged, by design. The I5 bound allows one active
// hold for each of them, beside each chat that ended without an answer.
func (s *Stats) SettlesAtRisk(cl *Cluster, window time.Duration) int64 {
	s.answeredMu.Lock()
	defer s.answeredMu.Unlock()
	var n int64
	for _, a := range s.answered {
		if cl.KilledWithin(a.instance, a.at, window) {
			n++
		}
	}
	return n
}

func (s *Stats) problem(format string, args ...any) {
	s.Unexpected.Add(1)
	s.problemsMu.Lock()
	defer s.problemsMu.Unlock()
	if len(s.problems) < 50 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// Problems are the unexpected answers the users saw (first 50).
func (s *Stats) Problems() []string {
	s.problemsMu.Lock()
	defer s.problemsMu.Unlock()
	return append([]string(nil), s.problems...)
}

// Forged reports whether a transaction id was only ever sent in a forgery.
func (w *Workload) Forged(transactionID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.forged[transactionID]
}

func (w *Workload) noteForged(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.forged == nil {
		w.forged = map[string]bool{}
	}
	w.forged[id] = true
}

// Created is how many orders exist so far.
func (w *Workload) Created() int64 { return w.created.Load() }

// Run runs every user to completion.
func (w *Workload) Run(ctx context.Context) error {
	var pk struct{ Data []struct{ ID string } }
	r := Call(ctx, "GET", w.Cluster.Addrs[0]+"/v1/packages", "", nil, nil)
	if r.Outcome != OK {
		return fmt.Errorf("packages: %s", r)
	}
	if err := r.Decode(&pk); err != nil {
		return err
	}
	packages := make([]string, 0, len(pk.Data))
	for _, p := range pk.Data {
		packages = append(packages, p.ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, w.Users)
	for u := range w.Users {
		n := w.Orders / w.Users
		if u < w.Orders%w.Users {
			n++
		}
		us := &user{w: w, id: u, rng: rand.New(rand.NewSource(w.Seed*1000003 + int64(u))), packages: packages}
		wg.Go(func() {
			if err := us.run(ctx, n); err != nil {
				errs <- fmt.Errorf("user %d: %w", u, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Replay posts every acknowledged notification again (the same bytes:
// same nonce_str and sign, or for v3 the same Wechatpay-* headers), at both
// instances at once. Each must be answered with the success
// acknowledgement and change nothing (F1, F7); a v3 one signed longer ago
// than the 5-minute window must be refused instead (a long run's early
// notifications).
func (w *Workload) Replay(ctx context.Context, limit int) {
	cl := w.Cluster
	ns := cl.Front.Acked()
	if len(ns) > limit {
		ns = ns[:limit]
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		for _, addr := range cl.Addrs {
			wg.Go(func() {
				w.Stats.Replays.Add(1)
				ack, sure := cl.replayExpect(n)
				r := cl.Notify(ctx, addr, n)
				switch {
				case r.Outcome == Unknown:
					w.Stats.ReplaysUnknown.Add(1)
				case cl.Acked(r) && (ack || !sure):
					w.Stats.ReplaysAcked.Add(1)
				case !cl.Acked(r) && !ack && r.Status/100 == 4:
					w.Stats.ReplaysStale.Add(1)
				case ack:
					// docs/DESIGN.md §3.3: a repeat for an order already
					// credited is acknowledged so WeChat Pay stops.
					w.Stats.problem("replay of an acknowledged notification answered %s", r)
				default:
					w.Stats.problem("replay of a notification signed more than 5 minutes ago answered %s, want a 4xx refusal", r)
				}
			})
		}
	}
	wg.Wait()
}
