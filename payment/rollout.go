package payment

import (
	"hash/fnv"
	"sync"
	"time"

	"tollgate"
)

// Rollout decides whether WeChat Pay is offered to an account: to Percent
// of accounts, chosen sticky by a hash of the account id, and to nobody
// while the failure-rate guard has paused it. The guard keeps the outcomes
// of order placements over a sliding Window; when at least MinSamples are
// in it and the share of failures reaches MaxFailureRate, WeChat Pay is
// paused for Pause. Safe for concurrent use.
type Rollout struct {
	// Percent of accounts (0–100) offered WeChat Pay.
	Percent int
	// Window, MinSamples, MaxFailureRate and Pause configure the guard;
	// MaxFailureRate ≤ 0 disables it.
	Window         time.Duration
	MinSamples     int
	MaxFailureRate float64
	Pause          time.Duration
	// Clock slides the window and ends the pause; nil means
	// tollgate.SystemClock.
	Clock tollgate.Clock
	// OnPause is called (outside the lock) when the guard pauses payments.
	OnPause func(failures, total int)

	mu          sync.Mutex
	events      []rolloutEvent // oldest first, within Window
	pausedUntil time.Time
}

type rolloutEvent struct {
	at time.Time
	ok bool
}

func (r *Rollout) clock() time.Time {
	return tollgate.ClockOr(r.Clock).Now()
}

// Enabled reports whether account falls in the rollout percentage. The
// answer for an account changes only when Percent does.
func (r *Rollout) Enabled(account tollgate.AccountID) bool {
	if r.Percent >= 100 {
		return true
	}
	if r.Percent <= 0 {
		return false
	}
	h := fnv.New32a()
	h.Write([]byte(account))
	return int(h.Sum32()%100) < r.Percent
}

// Paused reports whether the guard has paused WeChat Pay, and until when.
func (r *Rollout) Paused() (bool, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	return now.Before(r.pausedUntil), r.pausedUntil
}

// Check returns nil if account may pay with WeChat Pay now; otherwise an
// EUNAVAILABLE *tollgate.Error (paused) or EFORBIDDEN (outside the rollout).
func (r *Rollout) Check(account tollgate.AccountID) error {
	if p, until := r.Paused(); p {
		return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: "payment.Rollout",
			Message: "WeChat Pay is paused after too many failures; try again after " + until.UTC().Format(time.RFC3339)}
	}
	if !r.Enabled(account) {
		return &tollgate.Error{Code: tollgate.EFORBIDDEN, Op: "payment.Rollout",
			Message: "WeChat Pay is not available for this account yet"}
	}
	return nil
}

// Record adds the outcome of one payment attempt to the window and pauses
// WeChat Pay if the failure rate passes the threshold.
func (r *Rollout) Record(ok bool) {
	r.mu.Lock()
	now := r.clock()
	r.events = append(r.events, rolloutEvent{now, ok})
	cut := 0
	for cut < len(r.events) && now.Sub(r.events[cut].at) >= r.Window {
		cut++
	}
	r.events = r.events[cut:]
	failures := 0
	for _, e := range r.events {
		if !e.ok {
			failures++
		}
	}
	total := len(r.events)
	pause := r.MaxFailureRate > 0 && total >= max(1, r.MinSamples) &&
		float64(failures) >= r.MaxFailureRate*float64(total) && !now.Before(r.pausedUntil)
	if pause {
		r.pausedUntil = now.Add(r.Pause)
		r.events = nil // start afresh after the pause
	}
	r.mu.Unlock()
	if pause && r.OnPause != nil {
		r.OnPause(failures, total)
	}
}

func (s *Service) rolloutResult(ok bool) {
	if s.rollout != nil {
		s.rollout.Record(ok)
	}
}

// RolloutStatus is what GET /admin/rollout shows.
type RolloutStatus struct {
	Percent        int       `json:"percent"`
	Paused         bool      `json:"paused"`
	PausedUntil    time.Time `json:"paused_until,omitzero"`
	Window         string    `json:"window"`
	Samples        int       `json:"samples"`
	Failures       int       `json:"failures"`
	MaxFailureRate float64   `json:"max_failure_rate"`
	MinSamples     int       `json:"min_samples"`
}

// Status reports the rollout percentage, the guard's window as of now and
// whether WeChat Pay is paused. The guard is per instance: each instance
// judges the failures it saw itself.
func (r *Rollout) Status() RolloutStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	st := RolloutStatus{Percent: r.Percent, Window: r.Window.String(), MaxFailureRate: r.MaxFailureRate,
		MinSamples: r.MinSamples, Paused: now.Before(r.pausedUntil)}
	if st.Paused {
		st.PausedUntil = r.pausedUntil.UTC()
	}
	for _, e := range r.events {
		if now.Sub(e.at) >= r.Window {
			continue
		}
		st.Samples++
		if !e.ok {
			st.Failures++
		}
	}
	return st
}
