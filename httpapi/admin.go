package httpapi

import (
	"context"
	"net/http"
	"time"

	"tollgate"
	"tollgate/payment"
)

// RevenueReport is the body of GET /admin/reports/revenue: what payers paid
// in a calendar month (Beijing time), the merchant fees, refunds, the
// providers' cost of the tokens served that month and the margin. Money is
// in fen; the providers' cost is also given in USD as an exact decimal.
type RevenueReport struct {
	Month           string       `json:"month"`
	Payments        int          `json:"payments"`
	GrossFen        tollgate.Fen `json:"gross_fen"`
	FeeFen          tollgate.Fen `json:"fee_fen"`
	RefundedFen     tollgate.Fen `json:"refunded_fen"`
	NetFen          tollgate.Fen `json:"net_fen"`
	Requests        int          `json:"requests"`
	CreditsUsed     int64        `json:"credits_used"`
	ProviderCostUSD string       `json:"provider_cost_usd"`
	ProviderCostFen tollgate.Fen `json:"provider_cost_fen"`
	MarginFen       tollgate.Fen `json:"margin_fen"`
	// Adjustments: the operator's adjustments of the month (credits, no
	// money: they are in none of the fen above).
	Adjustments AdjustmentTotals `json:"adjustments"`
}

// AdjustmentTotals sums adjustments.
type AdjustmentTotals struct {
	Count          int64            `json:"count"`
	CreditsAdded   tollgate.Credits `json:"credits_added"`
	CreditsRemoved tollgate.Credits `json:"credits_removed"`
}

// RevenueReporter builds the revenue report of [from, to)
// (*payment.RevenueReporter).
type RevenueReporter interface {
	Revenue(ctx context.Context, from, to time.Time) (payment.RevenueReport, error)
}

// newRevenueReport is the body of the report r of month.
func newRevenueReport(month string, r payment.RevenueReport) RevenueReport {
	usd := "0.000000"
	if r.ProviderCostUSD != nil {
		usd = r.ProviderCostUSD.FloatString(6)
	}
	return RevenueReport{Month: month, Payments: r.Payments, GrossFen: r.GrossFen, FeeFen: r.FeeFen,
		RefundedFen: r.RefundedFen, NetFen: r.NetFen, Requests: int(r.Requests), CreditsUsed: int64(r.CreditsUsed),
		ProviderCostUSD: usd, ProviderCostFen: r.ProviderCostFen, MarginFen: r.MarginFen,
		Adjustments: AdjustmentTotals{Count: r.Adjustments.Count, CreditsAdded: r.Adjustments.Added, CreditsRemoved: r.Adjustments.Removed}}
}

// RolloutStatuser reports the WeChat Pay rollout and its failure guard.
type RolloutStatuser interface {
	Status() payment.RolloutStatus
}

// monthRange parses YYYY-MM into the month's bounds in Beijing time.
func monthRange(s string) (from, to time.Time, err error) {
	t, perr := time.ParseInLocation("2006-01", s, tollgate.Beijing)
	if perr != nil || s == "" {
		return from, to, tollgate.Errorf(tollgate.EINVALID, "query parameter month must be YYYY-MM, e.g. 2026-11")
	}
	return t, t.AddDate(0, 1, 0), nil
}

func (s *Server) revenue(w http.ResponseWriter, r *http.Request) {
	if s.Revenue == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "revenue reports are not configured"))
		return
	}
	month := r.URL.Query().Get("month")
	if month == "" {
		month = time.Now().In(tollgate.Beijing).Format("2006-01")
	}
	from, to, err := monthRange(month)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	rep, err := s.Revenue.Revenue(r.Context(), from, to)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, newRevenueReport(month, rep))
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request) {
	if s.Rollout == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.ENOTFOUND, "no WeChat Pay rollout is configured"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, s.Rollout.Status())
}
