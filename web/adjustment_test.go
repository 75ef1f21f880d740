package web_test

import (
	"strings"
	"testing"
	"time"

	"tollgate/web"
)

// TestAccountPageAdjustments: the operator's adjustments are lines of the
// account's history among the orders, by date, with the credits signed and
// marked as the operator's, in the visitor's language.
func TestAccountPageAdjustments(t *testing.T) {
	f := MustFixture(t)
	first := f.paidOrder(t, "key-0000000001")
	f.clk.Advance(time.Hour)
	f.flow.Adjust(account, web.Adjustment{Credits: 1_500, CreatedAt: f.clk.Now()})
	f.clk.Advance(time.Hour)
	second := f.paidOrder(t, "key-0000000002")
	f.clk.Advance(time.Hour)
	f.flow.Adjust(account, web.Adjustment{Credits: -200, CreatedAt: f.clk.Now()})

	r := f.do("GET", "/account/"+f.token(), "", "Accept-Language", "en")
	if r.Status != 200 || strings.Count(r.Body, `<tr class="adjustment">`) != 2 {
		t.Fatalf("want two adjustment lines: %d %s", r.Status, r.Body)
	}
	// Newest first: the removal, the second order, the addition, the first.
	at := func(s string) int {
		t.Helper()
		i := strings.Index(r.Body, s)
		if i < 0 {
			t.Fatalf("page lacks %q: %s", s, r.Body)
		}
		return i
	}
	removal, added := at(`class="num">-200</td>`), at(`class="num">&#43;1,500</td>`) // "+1,500", escaped
	if o2, o1 := at(`data-order="`+second+`"`), at(`data-order="`+first+`"`); !(removal < o2 && o2 < added && added < o1) {
		t.Fatalf("history out of date order: removal %d, %s %d, addition %d, %s %d", removal, second, o2, added, first, o1)
	}
	if strings.Count(r.Body, ">Credit adjusted by the operator</td>") != 2 || strings.Count(r.Body, `pill st-adjustment">Adjustment<`) != 2 {
		t.Fatalf("adjustment lines are not marked as the operator's: %s", r.Body)
	}
	r = f.do("GET", "/account/"+f.token(), "", "Accept-Language", "zh")
	if strings.Count(r.Body, ">运营方调整额度</td>") != 2 || strings.Count(r.Body, `pill st-adjustment">调整<`) != 2 {
		t.Fatalf("zh page: %s", r.Body)
	}
}
