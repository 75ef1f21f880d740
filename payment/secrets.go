package payment

import (
	"log/slog"
	"time"

	"tollgate"
)

// TokenSecretFrom derives Config.TokenSecret from a deployment's master
// secret (serve's admin token): HMAC-SHA256(master, "tollgate payment
// access tokens"), so every instance sharing the master secret derives the
// same one and a provisional token made by one verifies on all.
func TokenSecretFrom(master string) []byte {
	return tollgate.DeriveSecret(master, "tollgate payment access tokens")
}

// The failure-rate guard's policy: when at least GuardMinSamples order
// placements in the last GuardWindow failed at the configured rate,
// WeChat Pay is paused for GuardPause.
const (
	GuardWindow     = 5 * time.Minute
	GuardMinSamples = 20
	GuardPause      = 5 * time.Minute
)

// NewRollout returns the WeChat Pay rollout: percent of accounts (sticky)
// offered WeChat Pay, and the failure-rate guard (maxFailureRate 0
// disables it) pausing WeChat Pay, saying so in log.
func NewRollout(percent int, maxFailureRate float64, log *slog.Logger) *Rollout {
	return &Rollout{Percent: percent, Window: GuardWindow, MinSamples: GuardMinSamples,
		MaxFailureRate: maxFailureRate, Pause: GuardPause,
		OnPause: func(failures, total int) {
			if log == nil {
				return
			}
			log.Warn("WeChat Pay paused by the failure-rate guard", slog.Int("failures", failures), slog.Int("placements", total),
				slog.Float64("max_failure_rate", maxFailureRate), slog.Duration("pause", GuardPause))
		}}
}
