package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/payment"
)

// Pages of the admin API's lists: limit defaults to defaultPage, at most
// maxPage; a limit outside 1 to maxPage, or a cursor the server did not
// make, is 400. Every list is a keyset query: the cursor names the last
// row of the page before, so a page costs the same at row 10 and at row
// 10 million.
const (
	defaultPage = 50
	maxPage     = auth.MaxPage
)

// Page is the envelope of every admin list: next_cursor is "" on the last
// page, else the cursor parameter of the next.
type Page[T any] struct {
	Object     string `json:"object"`
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// pageLimit reads ?limit=.
func pageLimit(r *http.Request) (int, error) {
	return intParam(r, "limit", defaultPage, 1, maxPage)
}

// cursorPrefix marks the cursors this server makes (a version, so their
// shape can change).
const cursorPrefix = "c1|"

// encodeCursor makes an opaque cursor of the parts of a row's key.
func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strings.Join(parts, "|")))
}

// decodeCursor reads ?cursor= back into n parts; "" is the first page.
func decodeCursor(r *http.Request, n int) ([]string, error) {
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return nil, nil
	}
	bad := tollgate.Errorf(tollgate.EINVALID, "cursor is not one this server made: pass next_cursor from the previous page unchanged")
	if len(c) > 512 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return nil, bad
	}
	parts := strings.SplitN(strings.TrimPrefix(string(b), cursorPrefix), "|", n) // the last part may hold "|"
	if len(parts) != n {
		return nil, bad
	}
	return parts, nil
}

// AccountView is an account as the admin API lists it.
type AccountView struct {
	Account    tollgate.AccountID `json:"account_id"`
	Label      string             `json:"label"`
	ExternalID *string            `json:"external_id"`
	// Platform is the platform the account was made for (§4.12); null
	// for one the admin made.
	Platform   *string         `json:"platform_id"`
	Metadata   json.RawMessage `json:"metadata"`
	Disabled   bool            `json:"disabled"`
	DisabledAt *time.Time      `json:"disabled_at"`
	CreatedAt  time.Time       `json:"created_at"`
	// Credits, Held and Debt are as last committed (the detail's balance
	// is exact).
	Credits tollgate.Credits `json:"credits"`
	Held    tollgate.Credits `json:"held"`
	Debt    tollgate.Credits `json:"debt"`
	// LowBalanceCredits is the threshold of the account's balance.low
	// webhook events (null: none), as PATCH sets it.
	LowBalanceCredits *tollgate.Credits `json:"low_balance_credits"`
}

func profileView(p auth.Profile) AccountView {
	v := AccountView{Account: p.Account, Label: p.Label, Metadata: p.Metadata, Disabled: p.Disabled(), CreatedAt: p.CreatedAt,
		Credits: p.Left - p.Held - p.Debt, Held: p.Held, Debt: p.Debt, LowBalanceCredits: p.LowBalance}
	if p.ExternalID != "" {
		ext := p.ExternalID
		v.ExternalID = &ext
	}
	if p.Platform != "" {
		plat := p.Platform
		v.Platform = &plat
	}
	if len(v.Metadata) == 0 {
		v.Metadata = json.RawMessage(`{}`)
	}
	if p.Disabled() {
		t := p.DisabledAt
		v.DisabledAt = &t
	}
	return v
}

// listAccounts answers GET /admin/accounts?q=&limit=&cursor=. With q,
// the exact matches (id, external_id) come first, then the accounts whose
// label contains q (auth.AccountQuery); the cursor says which of the two
// the page before ended in.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	cur, err := decodeCursor(r, 2)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := auth.AccountQuery{Q: r.URL.Query().Get("q"), Limit: limit}
	if len(q.Q) > 200 {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "q is at most 200 bytes"))
		return
	}
	if cur != nil {
		switch cur[0] {
		case cursorIDs:
		case cursorLabels:
			q.Labels = true
		default:
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "cursor is not one this server made: pass next_cursor from the previous page unchanged"))
			return
		}
		q.After = tollgate.AccountID(cur[1])
	}
	ps, next, err := s.Auth.ListAccounts(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[AccountView]{Object: "list", Data: make([]AccountView, 0, len(ps))}
	for _, p := range ps {
		out.Data = append(out.Data, profileView(p))
	}
	if next != nil {
		part := cursorIDs
		if next.Labels {
			part = cursorLabels
		}
		out.NextCursor = encodeCursor(part, string(next.After))
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// The first part of an accounts cursor: the page before ended in the list
// by id (or a search's exact matches), or in a search's label matches.
const (
	cursorIDs    = "i"
	cursorLabels = "l"
)

// patchAccountBody is the body of PATCH /admin/accounts/{account_id}:
// every field optional; external_id "" (or null) removes it.
type patchAccountBody struct {
	Label      *string         `json:"label"`
	ExternalID json.RawMessage `json:"external_id"`
	Metadata   json.RawMessage `json:"metadata"`
	Disabled   *bool           `json:"disabled"`
	Reason     string          `json:"reason"`
	// LowBalanceCredits sets the threshold of balance.low webhook
	// events: a number of credits ≥ 0, or null to turn them off.
	LowBalanceCredits json.RawMessage `json:"low_balance_credits"`
}

// patchAccount changes an account's label, external id, metadata or
// disabled flag. Disabling refuses every key and provisional token of the
// account at once (on this instance; others within the key cache's TTL).
func (s *Server) patchAccount(w http.ResponseWriter, r *http.Request) {
	var b patchAccountBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	patch := auth.ProfilePatch{Label: b.Label, Metadata: b.Metadata, Disabled: b.Disabled}
	if string(b.Metadata) == "null" {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "metadata must be a JSON object ({} to clear it)"))
		return
	}
	switch ext := strings.TrimSpace(string(b.ExternalID)); {
	case ext == "":
	case ext == "null":
		empty := ""
		patch.ExternalID = &empty
	default:
		var id string
		if err := json.Unmarshal(b.ExternalID, &id); err != nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "external_id must be a string or null"))
			return
		}
		patch.ExternalID = &id
	}
	if err := checkReason(b.Reason, false); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	var low *tollgate.Credits
	setLow := len(bytes.TrimSpace(b.LowBalanceCredits)) > 0
	if setLow && string(bytes.TrimSpace(b.LowBalanceCredits)) != "null" {
		var n tollgate.Credits
		if err := json.Unmarshal(b.LowBalanceCredits, &n); err != nil || n < 0 || n > ledger.MaxLowBalance {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "low_balance_credits must be a whole number of credits within 0..%d, or null to turn it off", ledger.MaxLowBalance))
			return
		}
		low = &n
	}
	profile := patch.Label != nil || patch.ExternalID != nil || patch.Metadata != nil || patch.Disabled != nil
	if !profile && !setLow {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "nothing to change: give label, external_id, metadata, disabled or low_balance_credits"))
		return
	}
	id := tollgate.AccountID(r.PathValue("account_id"))
	var lowView *json.RawMessage
	if setLow {
		a, err := s.Ledger.SetLowBalance(r.Context(), id, low)
		if err != nil {
			WriteError(w, r, s.log(), err)
			return
		}
		v := json.RawMessage("null")
		if a.LowBalance != nil {
			v = json.RawMessage(strconv.FormatInt(int64(*a.LowBalance), 10))
		}
		lowView = &v
	}
	var p auth.Profile
	var err error
	if profile {
		p, err = s.Auth.UpdateProfile(r.Context(), id, patch)
	} else {
		p, err = s.Auth.Profile(r.Context(), id)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	attrs := []any{"account", id, "actor", actorOf(r), "reason", b.Reason}
	if b.Disabled != nil {
		attrs = append(attrs, "disabled", *b.Disabled)
	}
	if lowView != nil {
		attrs = append(attrs, "low_balance_credits", string(*lowView))
	}
	s.log().InfoContext(r.Context(), "admin: account changed", attrs...)
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, profileView(p))
}

// maxReason bounds every reason an operator gives, in characters (runes,
// not bytes: 500 characters of Chinese are 1,500 bytes), as the ledger and
// the stores' CHECK (length(reason) <= 500) count them.
const maxReason = ledger.MaxReason

// checkReason accepts a reason of at most maxReason characters of text
// (required when need is set).
func checkReason(reason string, need bool) error {
	if need && strings.TrimSpace(reason) == "" {
		return tollgate.Errorf(tollgate.EINVALID, "reason is required: say why, it is kept with the record")
	}
	if n := utf8.RuneCountInString(reason); n > maxReason {
		return tollgate.Errorf(tollgate.EINVALID, "reason is at most %d characters, it has %d", maxReason, n)
	}
	for _, c := range reason {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return tollgate.Errorf(tollgate.EINVALID, "reason must not contain control characters")
		}
	}
	return nil
}

// detailKeys bounds the account detail's keys (the newest).
const detailKeys = 100

// getAccount answers GET /admin/accounts/{account_id}: the profile, the
// exact balance, the newest lots with their payments, the active holds,
// the live provisional grant, the newest adjustments and the newest keys.
// Each list is read with a LIMIT of its bound plus one, the extra row only
// telling truncated[list] (lots, holds, adjustments, keys); the lots'
// orders come in one query. So the page costs the same for an account
// with a thousand payments as for one with one.
func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), tollgate.AccountID(r.PathValue("account_id"))
	p, err := s.Auth.Profile(ctx, id)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	d := AccountDetail{Account: profileView(p), Truncated: map[string]bool{}}
	b, err := s.Ledger.Balance(ctx, id)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	d.Balance = BalanceResponse{Account: id, Credits: b.Credits, Held: b.Held, Provisional: b.Provisional, Debt: b.Debt}
	lots, err := s.Ledger.RecentLots(ctx, id, detailLots+1)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if len(lots) > detailLots {
		lots, d.Truncated["lots"] = lots[:detailLots], true
	}
	orders := map[string]payment.Order{}
	if s.Payments != nil {
		var nos []string
		for _, l := range lots {
			if l.Fen != 0 {
				nos = append(nos, l.OutTradeNo)
			}
		}
		os, err := s.Payments.OrdersOf(ctx, id, nos)
		if err != nil {
			WriteError(w, r, s.log(), err)
			return
		}
		for _, o := range os {
			orders[o.OutTradeNo] = o
		}
	}
	d.Lots = make([]LotView, 0, len(lots))
	for _, l := range lots { // newest first
		v := LotView{LotID: l.ID, Kind: "payment", OutTradeNo: l.OutTradeNo, Fen: l.Fen, Granted: l.Granted, Used: l.Used,
			Left: l.Left, Refunding: l.Refunding, Refunded: l.Refunded, RefundedFen: l.RefundedFen, CreatedAt: l.CreatedAt}
		if l.Fen == 0 {
			v.Kind = "adjustment"
		} else if o, ok := orders[l.OutTradeNo]; ok {
			v.Payment = &LotOrder{Status: o.Status, Method: orderResponse(o).Method, AmountFen: o.Fen, FeeFen: o.FeeFen,
				TransactionID: o.TransactionID, PaidAt: o.UpdatedAt}
		}
		d.Lots = append(d.Lots, v)
	}
	holds, err := s.Ledger.ActiveHolds(ctx, id, detailHolds+1)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if len(holds) > detailHolds {
		holds, d.Truncated["holds"] = holds[:detailHolds], true
	}
	d.Holds = make([]HoldView, 0, len(holds))
	for _, h := range holds {
		d.Holds = append(d.Holds, HoldView{HoldID: h.ID, GrantID: h.GrantID, Amount: h.Amount, CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt})
	}
	// An account has at most one live grant (the stores' unique index
	// grants_one_live), so this list is bounded by the schema.
	grants, err := s.Ledger.LiveGrants(ctx, id)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	d.Grants = make([]GrantView, 0, len(grants))
	for _, g := range grants {
		d.Grants = append(d.Grants, GrantView{GrantID: g.ID, Cap: g.Cap, Used: g.Used, Held: g.Held, ExpiresAt: g.ExpiresAt})
	}
	adjs, err := s.Ledger.AccountAdjustments(ctx, id, detailAdjustments+1)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if len(adjs) > detailAdjustments {
		adjs, d.Truncated["adjustments"] = adjs[:detailAdjustments], true
	}
	d.Adjustments = make([]AdjustmentView, 0, len(adjs))
	for _, a := range adjs {
		d.Adjustments = append(d.Adjustments, adjustmentView(a))
	}
	keys, err := s.Auth.RecentKeys(ctx, id, detailKeys+1)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if len(keys) > detailKeys {
		keys, d.Truncated["keys"] = keys[:detailKeys], true
	}
	d.Keys = make([]KeyView, 0, len(keys))
	for i := len(keys) - 1; i >= 0; i-- { // oldest first, as GET .../keys lists them
		d.Keys = append(d.Keys, keyView(keys[i]))
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, d)
}
