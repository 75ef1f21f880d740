package httpapi

import (
	"net/http"

	"tollgate"
)

// MaxAppUserKeys bounds the live keys (neither revoked nor expired) an app
// may hold for one of its users through POST /v1/account/keys: an app
// that mints a key on every login would otherwise grow the key table
// without end. The operator's own POST /admin/accounts/{id}/keys is not
// bounded by it.
const MaxAppUserKeys = 20

// appKeyRequest is the body of POST /v1/account/keys: the app's user
// (and, with the admin token, the platform it belongs to), and the same
// optional limits as the admin's key routes.
type appKeyRequest struct {
	ExternalID string `json:"external_id"`
	Platform   string `json:"platform"`
	keyRequest
}

// createAppUserKey answers POST /v1/account/keys: an app (its platform
// key, or the admin token naming the platform) gets an API key for its
// user external_id, whose account is found or made as a checkout session
// finds or makes it. The key is shown once. A platform key reaches its
// own users only; an account's API key is refused, like a disabled
// account.
func (s *Server) createAppUserKey(w http.ResponseWriter, r *http.Request) {
	app, ok := tollgate.AppFrom(r.Context())
	if !ok {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EFORBIDDEN,
			"POST /v1/account/keys needs a platform key or the admin token, not an account's API key"))
		return
	}
	var req appKeyRequest
	if err := ReadJSON(r, &req, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	platform := req.Platform
	switch {
	case req.ExternalID == "":
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "external_id is required: the app's id of the user"))
		return
	case !app.Admin && req.Platform != "" && req.Platform != app.Platform:
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EFORBIDDEN, "a platform key acts for its own platform only"))
		return
	case !app.Admin:
		platform = app.Platform
	}
	// Everything the request says is checked before the account is made:
	// bad input changes nothing.
	l, err := s.keyLimits(req.keyRequest)
	if err == nil {
		err = l.Validate(s.now())
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	account, _, err := s.Auth.PlatformAccount(r.Context(), platform, req.ExternalID)
	if err == nil {
		err = s.Auth.CheckAccount(r.Context(), account)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	ks, err := s.Auth.Keys(r.Context(), account)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	live, now := 0, s.now()
	for _, k := range ks {
		if k.RevokedAt.IsZero() && !k.Limits.Expired(now) {
			live++
		}
	}
	if live >= MaxAppUserKeys {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.ECONFLICT,
			"the user has %d live keys, the most an app may hold; keep the key you were given, or ask the operator to revoke old ones", live))
		return
	}
	plain, k, err := s.Auth.NewKey(r.Context(), account, l)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().InfoContext(r.Context(), "app: key created", "account", account, "key", k.ID, "platform", platform, "admin", app.Admin)
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusCreated, KeyCreated{Account: account, APIKey: plain, KeyView: keyView(k)})
}
