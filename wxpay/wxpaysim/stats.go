package wxpaysim

import (
	"maps"
	"time"
)

// Stats counts the merchant API calls that passed signature and merchant
// checks, per endpoint ("order", "query", "close", "refund", "refundquery",
// "bill"), both versions together. PeakQueriesPerMinute is the most order
// queries seen in any 60-second window of real time: what a merchant-wide
// query rate limit (tollgate's 6,000/min) must keep down, measured where
// every instance's queries meet.
type Stats struct {
	Calls                map[string]int `json:"calls"`
	SystemErrors         map[string]int `json:"system_errors"`
	PeakQueriesPerMinute int            `json:"peak_queries_per_minute"`
}

// callStats is the emulator's call accounting; guarded by Server.mu.
type callStats struct {
	calls    map[string]int
	syserrs  map[string]int
	querySec map[int64]int // Unix second -> order queries in it
}

// admit counts a verified call to endpoint and decides whether the
// SYSTEMERROR fault answers it.
func (s *Server) admit(endpoint string) (systemError bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	if st.calls == nil {
		st.calls, st.syserrs, st.querySec = map[string]int{}, map[string]int{}, map[int64]int{}
	}
	st.calls[endpoint]++
	if endpoint == epQuery {
		st.querySec[time.Now().Unix()]++
	}
	if s.systemErrorLocked(endpoint) {
		st.syserrs[endpoint]++
		return true
	}
	return false
}

// Stats returns the call counts so far.
func (s *Server) Stats() Stats {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Calls: maps.Clone(s.stats.calls), SystemErrors: maps.Clone(s.stats.syserrs)}
	if out.Calls == nil {
		out.Calls, out.SystemErrors = map[string]int{}, map[string]int{}
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
