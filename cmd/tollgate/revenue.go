package main

import (
	"log/slog"
	"time"

	"tollgate/payment"
)

// newRollout builds the WeChat Pay rollout from the flags: a sticky
// percentage and a failure-rate guard over a 5-minute window that pauses
// WeChat Pay for 5 minutes, saying so in the log (and in metrics, through
// the payment service).
func (m *Main) newRollout() *payment.Rollout {
	c := m.Config
	m.rollout = &payment.Rollout{Percent: c.WxpayRolloutPercent, Window: 5 * time.Minute, MinSamples: 20,
		MaxFailureRate: c.WxpayGuardFailureRate, Pause: 5 * time.Minute,
		OnPause: func(failures, total int) {
			m.log.Warn("WeChat Pay paused by the failure-rate guard", slog.Int("failures", failures), slog.Int("placements", total),
				slog.Float64("max_failure_rate", c.WxpayGuardFailureRate), slog.Duration("pause", 5*time.Minute))
		}}
	return m.rollout
}
