package wxpaysim

import (
	"maps"
	"time"
)

// Stats counts the merchant API calls that passed signature and merchant
// checks, per endpoint ("order", "query", "close", "refund", "refundquery",
// "bill"), both versions together. PeakQueriesPerMinute is the most order
// queries answered in any sliding 60 seconds of Clock (real time unless a
// test injects a clock), not only in minutes aligned to the clock's
// seconds; queries refused FREQUENCY_LIMITED are counted in Calls only.
// It is what a merchant-wide query rate limit (tollgate's 6,000/min) must
// keep down, measured where every instance's queries meet.
type Stats struct {
	Calls                map[string]int `json:"calls"`
	SystemErrors         map[string]int `json:"system_errors"`
	PeakQueriesPerMinute int            `json:"peak_queries_per_minute"`
	// Lies counts the lies told (lies.go) by "where:kind", e.g.
	// "query:CLOSED", "notify:amount", "refundquery:refund_amount".
	Lies map[string]int `json:"lies"`
}

// callStats is the emulator's call accounting; guarded by Server.mu.
type callStats struct {
	calls   map[string]int
	syserrs map[string]int
	lies    map[string]int
	// queries are the times of the order queries answered in the last
	// minute, oldest first; peak is the most there ever were.
	queries []time.Time
	peak    int
}

// errFrequencyLimited answers order queries beyond QueryLimitPerMinute.
var errFrequencyLimited = &bizErr{"FREQUENCY_LIMITED", "FREQUENCY_LIMITED", 429, "请求频率超过限制，请降低频率后重试", ""}

// admit counts a verified call to endpoint and decides whether it is
// refused: FREQUENCY_LIMITED for order queries over QueryLimitPerMinute,
// or the SYSTEMERROR fault. A refused call changes nothing.
func (s *Server) admit(endpoint string) *bizErr {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	if st.calls == nil {
		st.calls, st.syserrs = map[string]int{}, map[string]int{}
	}
	st.calls[endpoint]++
	if endpoint == epQuery {
		// The minute that ends with this query: those less than 60 s
		// before it. The busiest sliding minute ends with one of them.
		now := s.wallNow()
		i := 0
		for i < len(st.queries) && !st.queries[i].After(now.Add(-time.Minute)) {
			i++
		}
		st.queries = st.queries[i:]
		if s.QueryLimitPerMinute > 0 && len(st.queries) >= s.QueryLimitPerMinute {
			return errFrequencyLimited
		}
		st.queries = append(st.queries, now)
		st.peak = max(st.peak, len(st.queries))
	}
	if s.systemErrorLocked(endpoint) {
		st.syserrs[endpoint]++
		return errSystem
	}
	return nil
}

// Stats returns the call counts so far.
func (s *Server) Stats() Stats {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Calls: maps.Clone(s.stats.calls), SystemErrors: maps.Clone(s.stats.syserrs), Lies: maps.Clone(s.stats.lies), PeakQueriesPerMinute: s.stats.peak}
	if out.Calls == nil {
		out.Calls, out.SystemErrors = map[string]int{}, map[string]int{}
	}
	if out.Lies == nil {
		out.Lies = map[string]int{}
	}
	return out
}
