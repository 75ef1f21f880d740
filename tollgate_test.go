package tollgate_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// TestFenLogsAsFen: a log line's fen label carries fen, not yuan, in text
// and JSON logs alike.
func TestFenLogsAsFen(t *testing.T) {
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("credited", "fen", tollgate.Fen(5000))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("credited", "fen", tollgate.Fen(5000))
	if !strings.Contains(text.String(), " fen=5000") || !strings.Contains(js.String(), `"fen":5000`) {
		t.Fatalf("logs %q and %q, want fen=5000", text.String(), js.String())
	}
}
