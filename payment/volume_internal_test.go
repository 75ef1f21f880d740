package payment

import (
	"testing"
	"time"

	"tollgate"
)

// The fee's month volume: read once, then counted on from this instance's
// own new lots until volumeRefresh has passed; another month, an expired
// read, or a clock that went back makes the caller read it again.
func TestMonthVolumeCache(t *testing.T) {
	var v monthVolume
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, tollgate.Beijing)
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, tollgate.Beijing)
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	if _, ok := v.add(nov, 100, true, t0); ok {
		t.Fatal("a volume never read was counted on")
	}
	v.set(nov, 1000, t0) // the ledger's sum, the lot being charged for included
	for i, c := range []struct {
		fen    tollgate.Fen
		fresh  bool
		before tollgate.Fen
	}{{200, true, 1000}, {300, true, 1200}, {200, false, 1500}, {50, true, 1500}} {
		before, ok := v.add(nov, c.fen, c.fresh, t0.Add(time.Duration(i)*time.Second))
		if !ok || before != c.before {
			t.Fatalf("payment %d: before = %d, %v; want %d, true", i, before, ok, c.before)
		}
	}
	for _, c := range []struct {
		name  string
		month time.Time
		now   time.Time
	}{
		{"another month", dec, t0.Add(time.Second)},
		{"read too long ago", nov, t0.Add(volumeRefresh)},
		{"clock went back", nov, t0.Add(-time.Second)},
	} {
		if _, ok := v.add(c.month, 10, true, c.now); ok {
			t.Errorf("%s: counted on the cached volume", c.name)
		}
	}
}
