package ledger_test

import (
	"testing"

	"tollgate"
	"tollgate/ledger"
)

func TestRefundFen(t *testing.T) {
	for _, tc := range []struct {
		name             string
		fen              tollgate.Fen
		credits, granted tollgate.Credits
		want             tollgate.Fen
	}{
		{"Whole", 5000, 1_000_000, 1_000_000, 5000},
		{"Nothing", 5000, 0, 1_000_000, 0},
		{"FloorsDown", 5000, 999_999, 1_000_000, 4999},
		{"BelowOneFen", 1, 1, 3, 0},
		{"TwoThirds", 100, 2, 3, 66},
		{"ProductBeyond64Bits", 1 << 40, 1 << 40, 1 << 41, 1 << 39},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ledger.RefundFen(tc.fen, tc.credits, tc.granted); got != tc.want {
				t.Errorf("RefundFen(%d, %d, %d) = %d, want %d", tc.fen, tc.credits, tc.granted, got, tc.want)
			}
		})
	}
}
