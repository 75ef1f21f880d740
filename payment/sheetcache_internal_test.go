package payment

import (
	"fmt"
	"testing"
	"time"

	"tollgate/wxpay"
)

// TestSheetCacheBounded: the cache of signed pay sheets keeps at most its
// bound, dropping the oldest; a sheet lives sheetTTL and belongs to its
// prepay_id.
func TestSheetCacheBounded(t *testing.T) {
	c := newSheetCache(3)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	sheet := func(i int) wxpay.V3JSAPIParams { return wxpay.V3JSAPIParams{NonceStr: fmt.Sprint("n", i)} }
	for i := range 5 {
		c.put(fmt.Sprint("o", i), "wx1", sheet(i), t0.Add(time.Duration(i)*time.Second))
	}
	if n := c.order.Len(); n != 3 || len(c.byNo) != 3 {
		t.Fatalf("%d sheets kept (%d indexed), want 3", n, len(c.byNo))
	}
	now := t0.Add(5 * time.Second)
	for i := range 5 {
		p, ok := c.get(fmt.Sprint("o", i), "wx1", now)
		if want := i >= 2; ok != want || (ok && p != sheet(i)) {
			t.Fatalf("o%d: %+v, %v; want kept %v", i, p, ok, want)
		}
	}
	if _, ok := c.get("o4", "wx2", now); ok {
		t.Fatal("a sheet answered for another prepay_id")
	}
	c.put("o3", "wx1", sheet(3), now)
	if _, ok := c.get("o3", "wx1", now.Add(sheetTTL-time.Microsecond)); !ok {
		t.Fatal("a sheet expired before sheetTTL")
	}
	if _, ok := c.get("o3", "wx1", now.Add(sheetTTL)); ok {
		t.Fatal("a sheet outlived sheetTTL")
	}
	// Expired sheets leave at the next put, whatever the bound.
	c.put("o9", "wx1", sheet(9), now.Add(time.Hour))
	if n := c.order.Len(); n != 1 || len(c.byNo) != 1 {
		t.Fatalf("%d sheets after all expired, want 1", n)
	}
}
