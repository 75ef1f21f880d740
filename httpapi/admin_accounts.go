package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"tollgate"
	"tollgate/auth"
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
	Metadata   json.RawMessage    `json:"metadata"`
	Disabled   bool               `json:"disabled"`
	DisabledAt *time.Time         `json:"disabled_at"`
	CreatedAt  time.Time          `json:"created_at"`
	// Credits, Held and Debt are as last committed (the detail's balance
	// is exact).
	Credits tollgate.Credits `json:"credits"`
	Held    tollgate.Credits `json:"held"`
	Debt    tollgate.Credits `json:"debt"`
}

func profileView(p auth.Profile) AccountView {
	v := AccountView{Account: p.Account, Label: p.Label, Metadata: p.Metadata, Disabled: p.Disabled(), CreatedAt: p.CreatedAt,
		Credits: p.Left - p.Held - p.Debt, Held: p.Held, Debt: p.Debt}
	if p.ExternalID != "" {
		ext := p.ExternalID
		v.ExternalID = &ext
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

// listAccounts answers GET /admin/accounts?q=&limit=&cursor=.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	cur, err := decodeCursor(r, 1)
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
		q.After = tollgate.AccountID(cur[0])
	}
	ps, err := s.Auth.ListAccounts(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[AccountView]{Object: "list", Data: make([]AccountView, 0, len(ps))}
	for _, p := range ps {
		out.Data = append(out.Data, profileView(p))
	}
	if len(ps) == limit {
		out.NextCursor = encodeCursor(string(ps[len(ps)-1].Account))
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// patchAccountBody is the body of PATCH /admin/accounts/{account_id}:
// every field optional; external_id "" (or null) removes it.
type patchAccountBody struct {
	Label      *string         `json:"label"`
	ExternalID json.RawMessage `json:"external_id"`
	Metadata   json.RawMessage `json:"metadata"`
	Disabled   *bool           `json:"disabled"`
	Reason     string          `json:"reason"`
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
	if patch.Label == nil && patch.ExternalID == nil && patch.Metadata == nil && patch.Disabled == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "nothing to change: give label, external_id, metadata or disabled"))
		return
	}
	id := tollgate.AccountID(r.PathValue("account_id"))
	p, err := s.Auth.UpdateProfile(r.Context(), id, patch)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	attrs := []any{"account", id, "actor", actorOf(r), "reason", b.Reason}
	if b.Disabled != nil {
		attrs = append(attrs, "disabled", *b.Disabled)
	}
	s.log().InfoContext(r.Context(), "admin: account changed", attrs...)
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, profileView(p))
}

// maxReason bounds every reason an operator gives, in bytes.
const maxReason = 500

// checkReason accepts a reason of at most maxReason bytes of text
// (required when need is set).
func checkReason(reason string, need bool) error {
	if need && strings.TrimSpace(reason) == "" {
		return tollgate.Errorf(tollgate.EINVALID, "reason is required: say why, it is kept with the record")
	}
	if len(reason) > maxReason {
		return tollgate.Errorf(tollgate.EINVALID, "reason is at most %d bytes", maxReason)
	}
	for _, c := range reason {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return tollgate.Errorf(tollgate.EINVALID, "reason must not contain control characters")
		}
	}
	return nil
}
