package payment

import (
	"container/list"
	"sync"
	"time"

	"tollgate/wxpay"
)

// A payable JSAPI order's pay sheet is an RSA-2048 signature; the checkout
// polls the order every few seconds, so a signed sheet is kept and reused
// for sheetTTL. At most sheetMax sheets are kept; beyond that the oldest
// are dropped (each is only worth one signature).
const (
	sheetTTL = 60 * time.Second
	sheetMax = 10_000
)

// sheetCache holds signed pay sheets by out_trade_no, oldest first. Since
// every entry lives sheetTTL, the oldest is also the first to expire.
type sheetCache struct {
	mu    sync.Mutex
	byNo  map[string]*list.Element
	order list.List // of *sheetEntry, oldest at the front
	max   int
}

type sheetEntry struct {
	no, prepayID string
	params       wxpay.V3JSAPIParams
	expires      time.Time
}

func newSheetCache(max int) *sheetCache {
	return &sheetCache{byNo: map[string]*list.Element{}, max: max}
}

// get returns the sheet signed for the order's prepay_id that is still
// fresh at now.
func (c *sheetCache) get(no, prepayID string, now time.Time) (wxpay.V3JSAPIParams, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.byNo[no]
	if el == nil {
		return wxpay.V3JSAPIParams{}, false
	}
	e := el.Value.(*sheetEntry)
	if e.prepayID != prepayID || !now.Before(e.expires) {
		c.removeLocked(el)
		return wxpay.V3JSAPIParams{}, false
	}
	return e.params, true
}

// put keeps a sheet signed at now, dropping expired and, over max, the
// oldest entries.
func (c *sheetCache) put(no, prepayID string, p wxpay.V3JSAPIParams, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byNo[no]; el != nil {
		c.removeLocked(el)
	}
	c.byNo[no] = c.order.PushBack(&sheetEntry{no: no, prepayID: prepayID, params: p, expires: now.Add(sheetTTL)})
	for el := c.order.Front(); el != nil && (c.order.Len() > c.max || !now.Before(el.Value.(*sheetEntry).expires)); el = c.order.Front() {
		c.removeLocked(el)
	}
}

func (c *sheetCache) removeLocked(el *list.Element) {
	delete(c.byNo, el.Value.(*sheetEntry).no)
	c.order.Remove(el)
}
