package tollgate_test

import (
	"context"
	"testing"
	"time"

	"tollgate"
)

func TestKeyLimitsValidate(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		l    tollgate.KeyLimits
		ok   bool
	}{
		{"Zero", tollgate.KeyLimits{}, true},
		{"All", tollgate.KeyLimits{Models: []string{"a", "b"}, RequestsPerMinute: 5, TokensPerMinute: 100, ExpiresAt: now.Add(time.Second),
			MaxCreditsPerRequest: 1000, MaxOutputTokens: 64}, true},
		{"ErrNegativeRPM", tollgate.KeyLimits{RequestsPerMinute: -1}, false},
		{"ErrNegativeTPM", tollgate.KeyLimits{TokensPerMinute: -1}, false},
		{"ErrHugeRPM", tollgate.KeyLimits{RequestsPerMinute: tollgate.MaxRate + 1}, false},
		{"ErrHugeTPM", tollgate.KeyLimits{TokensPerMinute: tollgate.MaxRate + 1}, false},
		{"ErrNegativeMaxCredits", tollgate.KeyLimits{MaxCreditsPerRequest: -1}, false},
		{"ErrNegativeMaxOutput", tollgate.KeyLimits{MaxOutputTokens: -1}, false},
		{"ErrExpiresNow", tollgate.KeyLimits{ExpiresAt: now}, false},
		{"ErrEmptyModel", tollgate.KeyLimits{Models: []string{""}}, false},
		{"ErrRepeatedModel", tollgate.KeyLimits{Models: []string{"a", "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate(now)
			if tc.ok != (err == nil) || (err != nil && tollgate.ErrorCode(err) != tollgate.EINVALID) {
				t.Fatalf("Validate(%+v) = %v", tc.l, err)
			}
		})
	}
}

func TestKeyLimitsAllows(t *testing.T) {
	for _, tc := range []struct {
		models []string
		want   bool
	}{{nil, true}, {[]string{"m"}, true}, {[]string{"*"}, true}, {[]string{"other"}, false}} {
		if got := (tollgate.KeyLimits{Models: tc.models}).Allows("m"); got != tc.want {
			t.Errorf("%v allows m: %v, want %v", tc.models, got, tc.want)
		}
	}
}

func TestCallerContext(t *testing.T) {
	if _, ok := tollgate.CallerFrom(context.Background()); ok {
		t.Fatal("a caller in an empty context")
	}
	want := tollgate.Caller{Account: "a", KeyID: "k", GrantID: "g", Limits: tollgate.KeyLimits{MaxOutputTokens: 5}}
	got, ok := tollgate.CallerFrom(tollgate.WithCaller(context.Background(), want))
	if !ok || got.Account != want.Account || got.GrantID != "g" || got.Limits.MaxOutputTokens != 5 {
		t.Fatalf("got %+v, %v", got, ok)
	}
}
