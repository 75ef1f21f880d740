package pricing

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestFixedPriceMatchesRationals: the integer path gives exactly the
// rational ceiling, or steps aside, for prices and bases of every shape
// and token counts up to the int64 limit, with and without a per-call fee.
func TestFixedPriceMatchesRationals(t *testing.T) {
	decimals := []string{"0", "1", "0.01", "0.07", "0.15", "0.075", "0.6", "2.5", "3", "15", "75", "0.000001",
		"0.3333", "1234.5678", "0.0000000001", "99999999.99"}
	counts := []int64{0, 1, 2, 3, 7, 999, 1_000_000, 123_456_789, 1 << 40, math.MaxInt64 / 3, math.MaxInt64 - 1, math.MaxInt64}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) *big.Rat { v, _ := new(big.Rat).SetString(s[r.IntN(len(s))]); return v }
	count := func() int64 {
		if r.IntN(2) == 0 {
			return counts[r.IntN(len(counts))]
		}
		return r.Int64N(1 << uint(r.IntN(62)+1)) // up to 2^62
	}
	var fast, tooBig, fallback int
	for range 20_000 {
		base := pick(decimals[1:])
		var prices [kinds]*big.Rat
		for i := range prices {
			prices[i] = pick(decimals)
		}
		call := new(big.Rat)
		if r.IntN(2) == 0 { // a per-call fee, in weigh's units
			call.Mul(pick(decimals), big.NewRat(1_000_000, 1))
		}
		f := newFixedPrice(base, prices, call)
		if !f.ok {
			fallback++
			continue
		}
		var n [kinds]int64
		sum := new(big.Rat).Set(call)
		for i := range n {
			if i < 5 || r.IntN(4) == 0 { // most calls use text tokens only
				n[i] = count()
			}
			sum.Add(sum, new(big.Rat).Mul(big.NewRat(n[i], 1), prices[i]))
		}
		want := ceil(sum.Quo(sum, base))
		got, ok := f.cost(n)
		switch {
		case ok && (!want.IsInt64() || got != want.Int64()):
			t.Fatalf("cost(%v) at %v base %s = %d, want %s", n, prices, base, got, want)
		case ok:
			fast++
		case want.IsInt64():
			t.Fatalf("cost(%v) at %v base %s stepped aside, but %s fits an int64", n, prices, base, want)
		default:
			tooBig++
		}
	}
	if fast < 10_000 || tooBig == 0 {
		t.Fatalf("the integer path answered %d of 20,000, found %d too big (%d price sets did not fit)", fast, tooBig, fallback)
	}
}
