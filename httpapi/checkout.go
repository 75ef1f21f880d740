package httpapi

import (
	"net/http"

	"tollgate"
)

// CheckoutAccount is the account a hosted checkout (package web) opens
// for: the caller's, authenticated with an API key. A provisional access
// token may spend but not buy, so it cannot open a checkout.
func CheckoutAccount(r *http.Request) (tollgate.AccountID, error) {
	c, ok := tollgate.CallerFrom(r.Context())
	switch {
	case !ok:
		return "", tollgate.Errorf(tollgate.EUNAUTHORIZED, "an API key is required")
	case c.Provisional:
		return "", tollgate.Errorf(tollgate.EFORBIDDEN, "a provisional access token cannot open a checkout")
	}
	return c.Account, nil
}
