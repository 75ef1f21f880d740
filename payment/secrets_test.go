package payment_test

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"tollgate/payment"
)

// The derived secret must not change between versions: a provisional
// token made before an upgrade must verify after it.
func TestTokenSecretFromIsStable(t *testing.T) {
	got := hex.EncodeToString(payment.TokenSecretFrom("tga_example-admin-token"))
	if want := "5b602a2f1aa2aa6130b94212b1ba815c27a8d767f4ec4f359fd0b5784be06866"; got != want {
		t.Errorf("TokenSecretFrom = %s, want %s", got, want)
	}
	if bytes.Equal(payment.TokenSecretFrom("a"), payment.TokenSecretFrom("b")) {
		t.Error("two master secrets derive the same token secret")
	}
}

func TestNewRolloutGuardPolicy(t *testing.T) {
	var logged bytes.Buffer
	r := payment.NewRollout(40, 0.5, slog.New(slog.NewTextHandler(&logged, nil)))
	st := r.Status()
	if st.Percent != 40 || st.MinSamples != payment.GuardMinSamples || st.MaxFailureRate != 0.5 {
		t.Errorf("status %+v", st)
	}
	r.OnPause(12, 20)
	if !strings.Contains(logged.String(), "WeChat Pay paused by the failure-rate guard") || !strings.Contains(logged.String(), "failures=12") {
		t.Errorf("log %q", logged.String())
	}
	payment.NewRollout(100, 0.5, nil).OnPause(1, 1) // no logger: no panic
}
