package tollgate_test

import (
	"errors"
	"fmt"
	"testing"

	"tollgate"
)

func TestFenString(t *testing.T) {
	for _, tc := range []struct {
		in   tollgate.Fen
		want string
	}{{0, "0.00"}, {1, "0.01"}, {5000, "50.00"}, {123456, "1234.56"}, {-5, "-0.05"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Fen(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorCode(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", tollgate.Errorf(tollgate.EINSUFFICIENT, "need %d credits", 5))
	if got := tollgate.ErrorCode(err); got != tollgate.EINSUFFICIENT {
		t.Fatalf("code = %q", got)
	}
	if got := tollgate.ErrorMessage(err); got != "need 5 credits" {
		t.Fatalf("message = %q", got)
	}
	if got := tollgate.ErrorCode(errors.New("boom")); got != tollgate.EINTERNAL {
		t.Fatalf("plain error code = %q", got)
	}
	if tollgate.ErrorMessage(errors.New("secret detail")) != "internal error" {
		t.Fatal("plain error leaked its text")
	}
}
