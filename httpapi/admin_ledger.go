package httpapi

import (
	"net/http"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
)

// Bounds of the account detail's lists (newest first).
const (
	detailLots        = 100
	detailHolds       = 100
	detailAdjustments = 50
)

// AccountDetail is the body of GET /admin/accounts/{account_id}.
type AccountDetail struct {
	Account     AccountView      `json:"account"`
	Balance     BalanceResponse  `json:"balance"`
	Lots        []LotView        `json:"lots"`
	Holds       []HoldView       `json:"holds"`
	Grants      []GrantView      `json:"provisional_grants"`
	Adjustments []AdjustmentView `json:"adjustments"`
	Keys        []KeyView        `json:"keys"`
	Truncated   map[string]bool  `json:"truncated"`
}

// LotView is a lot with what paid for it: a payment (its order) or an
// adjustment.
type LotView struct {
	LotID       int64            `json:"lot_id"`
	Kind        string           `json:"kind"` // payment or adjustment
	OutTradeNo  string           `json:"out_trade_no"`
	Fen         tollgate.Fen     `json:"fen"`
	Granted     tollgate.Credits `json:"granted"`
	Used        tollgate.Credits `json:"used"`
	Left        tollgate.Credits `json:"left"`
	Refunding   tollgate.Credits `json:"refunding"`
	Refunded    tollgate.Credits `json:"refunded"`
	RefundedFen tollgate.Fen     `json:"refunded_fen"`
	CreatedAt   time.Time        `json:"created_at"`
	Payment     *LotOrder        `json:"payment"`
}

// LotOrder is the order that paid for a lot.
type LotOrder struct {
	Status        payment.Status `json:"status"`
	Method        string         `json:"method"`
	AmountFen     tollgate.Fen   `json:"amount_fen"`
	FeeFen        tollgate.Fen   `json:"fee_fen"`
	TransactionID string         `json:"transaction_id"`
	PaidAt        time.Time      `json:"updated_at"`
}

// HoldView is an active hold.
type HoldView struct {
	HoldID    string           `json:"hold_id"`
	GrantID   string           `json:"grant_id,omitempty"`
	Amount    tollgate.Credits `json:"amount"`
	CreatedAt time.Time        `json:"created_at"`
	ExpiresAt time.Time        `json:"expires_at"`
}

// GrantView is a live provisional grant.
type GrantView struct {
	GrantID   string           `json:"grant_id"`
	Cap       tollgate.Credits `json:"cap"`
	Used      tollgate.Credits `json:"used"`
	Held      tollgate.Credits `json:"held"`
	ExpiresAt time.Time        `json:"expires_at"`
}

// AdjustmentView is an adjustment as the admin API shows it; the data of
// the adjustment.created webhook event is the same shape.
type AdjustmentView = ledger.AdjustmentView

func adjustmentView(a ledger.Adjustment) AdjustmentView { return a.View() }

// adjustBody is the body of POST /admin/accounts/{account_id}/adjustments.
type adjustBody struct {
	Credits *tollgate.Credits `json:"credits"`
	Reason  string            `json:"reason"`
	// AsDebt lets a negative adjustment take the account below what it
	// has available, recording the rest as debt.
	AsDebt bool `json:"as_debt"`
}

// adjust answers POST /admin/accounts/{account_id}/adjustments: credit
// added (> 0) or removed (< 0) by hand, once per Idempotency-Key. A
// removal beyond the available balance is 402 unless as_debt is true.
func (s *Server) adjust(w http.ResponseWriter, r *http.Request) {
	keys := r.Header["Idempotency-Key"]
	if len(keys) != 1 || !validIdempotencyKey(keys[0]) {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "an adjustment needs one Idempotency-Key header of 1 to 255 visible ASCII characters, so a retry cannot adjust twice"))
		return
	}
	var b adjustBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if b.Credits == nil || *b.Credits == 0 {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "credits is required: a non-zero integer, > 0 to add, < 0 to remove"))
		return
	}
	if err := checkReason(b.Reason, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	id := tollgate.AccountID(r.PathValue("account_id"))
	a, again, err := s.Ledger.Adjust(r.Context(), ledger.AdjustRequest{Account: id, IdempotencyKey: keys[0], Credits: *b.Credits,
		AsDebt: b.AsDebt, Reason: b.Reason, Actor: actorOf(r)})
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	status := http.StatusCreated
	if again {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	} else {
		s.log().InfoContext(r.Context(), "admin: adjustment", "account", id, "adjustment", a.ID, "credits", int64(a.Credits),
			"debt", int64(a.Debt), "debt_paid", int64(a.DebtPaid), "actor", a.Actor, "reason", a.Reason)
		s.Money.Adjustment(a.Credits)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, status, adjustmentView(a))
}

// UsageGroupView is one group of GET /admin/usage.
type UsageGroupView struct {
	Day          string           `json:"day,omitempty"`
	Model        string           `json:"model,omitempty"`
	Requests     int64            `json:"requests"`
	Credits      tollgate.Credits `json:"credits"`
	InputTokens  int64            `json:"input_tokens"`
	CachedTokens int64            `json:"cached_tokens"`
	OutputTokens int64            `json:"output_tokens"`
}

// maxUsageRange bounds GET /admin/usage's period.
const maxUsageRange = 366 * 24 * time.Hour

// timeParam reads an optional time query parameter: RFC 3339, or a date
// YYYY-MM-DD meaning its start in Beijing.
func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, tollgate.Beijing); err == nil {
		return t, nil
	}
	return time.Time{}, tollgate.Errorf(tollgate.EINVALID, "query parameter %s must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01, Beijing time)", name)
}

// adminUsage answers GET /admin/usage?account=&model=&from=&to=&group_by=:
// usage summed per Beijing day (default) or model over [from, to), by
// default the last 30 days, at most 366.
func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := timeParam(r, "from")
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	to, err := timeParam(r, "to")
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if to.IsZero() {
		to = tollgate.ClockOr(s.Clock).Now()
	}
	if from.IsZero() {
		// From a Beijing midnight: the day is whole in the chart, and a
		// day whose per-call records --usage-retention deleted is
		// summed from the daily rollup (a period may not cut one).
		from = ledger.BeijingMidnight(to.AddDate(0, 0, -30))
	}
	if !to.After(from) || to.Sub(from) > maxUsageRange {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "from must be before to, at most 366 days apart"))
		return
	}
	group := q.Get("group_by")
	if group == "" {
		group = ledger.UsageByDay
	}
	if group != ledger.UsageByDay && group != ledger.UsageByModel {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "group_by must be day or model"))
		return
	}
	gs, err := s.Ledger.UsageReport(r.Context(), ledger.UsageQuery{Account: tollgate.AccountID(q.Get("account")), Model: q.Get("model"),
		From: from, To: to, GroupBy: group})
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := make([]UsageGroupView, 0, len(gs))
	for _, g := range gs {
		v := UsageGroupView{Requests: g.Requests, Credits: g.Credits, InputTokens: g.InputTokens, CachedTokens: g.CachedTokens, OutputTokens: g.OutputTokens}
		if group == ledger.UsageByDay {
			v.Day = g.Key
		} else {
			v.Model = g.Key
		}
		out = append(out, v)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, map[string]any{"object": "usage_report", "group_by": group, "from": from.UTC(), "to": to.UTC(), "data": out})
}
