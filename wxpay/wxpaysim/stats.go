package wxpaysim

import (
	"maps"
	"time"
)

// Stats counts the merchant API calls that passed signature and merchant
// checks, per endpoint ("order", "query", "close", "refund", "refundquery",
// "bill"), both versions together. PeakQueriesPerMinute is the most order
// queries answered in any 60-second window of real time (queries refused
// FREQUENCY_LIMITED are counted in Calls only): what a merchant-wide
// query rate limit (tollgate's 6,000/min) must keep down, measured where
// every instance's queries meet.
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
	calls    map[string]int
	syserrs  map[string]int
	querySec map[int64]int // Unix second -> order queries in it
	lies     map[string]int
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
		st.calls, st.syserrs, st.querySec = map[string]int{}, map[string]int{}, map[int64]int{}
	}
	st.calls[endpoint]++
	if endpoint == epQuery {
		now := time.Now().Unix()
		if s.QueryLimitPerMinute > 0 {
			n := 0
			for sec := now - 59; sec <= now; sec++ {
				n += st.querySec[sec]
			}
			if n >= s.QueryLimitPerMinute {
				return errFrequencyLimited
			}
		}
		st.querySec[now]++
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
	out := Stats{Calls: maps.Clone(s.stats.calls), SystemErrors: maps.Clone(s.stats.syserrs), Lies: maps.Clone(s.stats.lies)}
	if out.Calls == nil {
		out.Calls, out.SystemErrors = map[string]int{}, map[string]int{}
	}
	if out.Lies == nil {
		out.Lies = map[string]int{}
	}
	for start := range s.stats.querySec {
		n := 0
		for sec := start; sec < start+60; sec++ {
			n += s.stats.querySec[sec]
		}
		out.PeakQueriesPerMinute = max(out.PeakQueriesPerMinute, n)
	}
	return out
}
