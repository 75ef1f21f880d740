package redis

import "tollgate"

// SetLimiterClock makes the limiter scripts read c instead of Redis' TIME,
// so that the conformance suite can run them on its fake clock. Nonce and
// cache expiry stay on Redis' own clock.
func (s *Store) SetLimiterClock(c tollgate.Clock) { s.now = c.Now }
