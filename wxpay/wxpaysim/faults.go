package wxpaysim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Endpoint names used by Faults.SystemError. Each covers the v2 and v3
// forms of the call (and the /sandboxnew copies).
const (
	epOrder       = "order"       // unifiedorder, /v3/pay/transactions/{native,jsapi}
	epQuery       = "query"       // orderquery, GET /v3/pay/transactions/...
	epClose       = "close"       // closeorder, .../close
	epRefund      = "refund"      // refund, POST /v3/refund/domestic/refunds
	epRefundQuery = "refundquery" // refundquery, GET /v3/refund/domestic/refunds/{no}
	epBill        = "bill"        // downloadbill, /v3/bill/tradebill and its download
)

// Faults are injected failures. Rates are probabilities in [0, 1]; every
// random choice comes from one math/rand source seeded with Seed, so the
// same seed and the same sequence of calls replay the same faults.
type Faults struct {
	Seed int64 `json:"seed"`
	// DuplicateRate is the chance that a notification's first POST is
	// accompanied by 1 or 2 concurrent copies (as when several WeChat
	// servers deliver the same notification).
	DuplicateRate float64 `json:"duplicate_rate"`
	// DropRate is the chance that a notification is never delivered.
	DropRate float64 `json:"drop_rate"`
	// DelayMinMS and DelayMaxMS bound a random wait (virtual milliseconds,
	// scaled by TimeScale) before a notification's first attempt.
	DelayMinMS int64 `json:"delay_min_ms"`
	DelayMaxMS int64 `json:"delay_max_ms"`
	// ReorderRate is the chance that a notification is held back by an
	// extra 2×DelayMaxMS (at least 1 s virtual), so later ones overtake it.
	ReorderRate float64 `json:"reorder_rate"`
	// SystemError maps an endpoint ("order", "query", "close", "refund",
	// "refundquery", "bill", or "*" for all) to the chance that a correctly
	// signed call is answered SYSTEMERROR (v2) / 500 SYSTEM_ERROR (v3)
	// without changing anything.
	SystemError map[string]float64 `json:"system_error"`
	// Probes sends a WECHATPAY/SIGNTEST/ probe before each v3 notification
	// (like Server.SignTestProbes).
	Probes bool `json:"probes"`
	// Lies maps a lie kind (Lie*, lies.go) to the chance that a correctly
	// signed answer tells it instead of the truth. The order kinds
	// (OrderLieKinds) apply to each order query answer and to the first
	// POST of each payment notification (its retries tell the truth);
	// LieRefundAmount to each answer of a refund call or refund query and
	// to the first POST of each refund notification. One draw per answer
	// picks at most one kind, so the order kinds' rates, like the refund
	// kinds', add up to at most 1. The truth is kept (Orders); the lies
	// told are listed by LiesTold and counted in Stats.Lies.
	Lies map[string]float64 `json:"lies,omitempty"`
}

// validate checks every rate and delay.
func (f Faults) validate() error {
	rates := map[string]float64{"duplicate_rate": f.DuplicateRate, "drop_rate": f.DropRate, "reorder_rate": f.ReorderRate}
	for k, v := range f.SystemError {
		rates["system_error."+k] = v
	}
	for k, v := range rates {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s=%v: a rate must be within [0, 1]", k, v)
		}
	}
	for k := range f.SystemError {
		switch k {
		case epOrder, epQuery, epClose, epRefund, epRefundQuery, epBill, "*":
		default:
			return fmt.Errorf("system_error: unknown endpoint %q", k)
		}
	}
	if err := validateLies(f.Lies); err != nil {
		return err
	}
	if f.DelayMinMS < 0 || f.DelayMaxMS < f.DelayMinMS {
		return fmt.Errorf("delay range [%d, %d] ms is invalid", f.DelayMinMS, f.DelayMaxMS)
	}
	return nil
}

// faultRand is the seeded source of every fault decision.
type faultRand struct{ r *rand.Rand }

func newFaultRand(seed int64) *faultRand {
	return &faultRand{r: rand.New(rand.NewPCG(uint64(seed), 0x7761787061797369))}
}

func (f *faultRand) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	return f.r.Float64() < p
}

// SetFaults replaces the fault configuration and reseeds the fault source.
func (s *Server) SetFaults(f Faults) error {
	s.init()
	if err := f.validate(); err != nil {
		return fmt.Errorf("wxpaysim: faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rng = newFaultRand(f.Seed)
	return nil
}

// CurrentFaults returns the fault configuration in effect.
func (s *Server) CurrentFaults() Faults {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// systemErrorLocked decides whether a call to endpoint fails with SYSTEMERROR.
func (s *Server) systemErrorLocked(endpoint string) bool {
	p, ok := s.faults.SystemError[endpoint]
	if !ok {
		p = s.faults.SystemError["*"]
	}
	return s.rng.chance(p)
}

// plan is the fault decision for one notification, drawn when it is queued.
type plan struct {
	delay      time.Duration // virtual
	drop       bool
	duplicates int
	probe      bool
	lie        *lie // told by the first POST (Faults.Lies)
}

func (s *Server) planLocked(version int) plan {
	f := s.faults
	var p plan
	if f.DelayMaxMS > 0 {
		ms := f.DelayMinMS
		if span := f.DelayMaxMS - f.DelayMinMS; span > 0 {
			ms += s.rng.r.Int64N(span + 1)
		}
		p.delay = time.Duration(ms) * time.Millisecond
	}
	if s.rng.chance(f.ReorderRate) {
		p.delay += max(2*time.Duration(f.DelayMaxMS)*time.Millisecond, time.Second)
	}
	p.drop = s.rng.chance(f.DropRate)
	if s.rng.chance(f.DuplicateRate) {
		p.duplicates = 1 + s.rng.r.IntN(2)
	}
	p.probe = version == 3 && (s.SignTestProbes || f.Probes)
	return p
}
