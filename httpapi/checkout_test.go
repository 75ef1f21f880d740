package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"tollgate"
	"tollgate/httpapi"
)

func TestCheckoutAccount(t *testing.T) {
	r := httptest.NewRequest("POST", "/v1/checkout/sessions", nil)
	if _, err := httpapi.CheckoutAccount(r); tollgate.ErrorCode(err) != tollgate.EUNAUTHORIZED {
		t.Errorf("no caller: %v, want EUNAUTHORIZED", err)
	}
	prov := r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "acct_1", KeyID: "provisional", Provisional: true}))
	if _, err := httpapi.CheckoutAccount(prov); tollgate.ErrorCode(err) != tollgate.EFORBIDDEN {
		t.Errorf("provisional token: %v, want EFORBIDDEN", err)
	}
	key := r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "acct_1", KeyID: "key_1"}))
	if a, err := httpapi.CheckoutAccount(key); err != nil || a != "acct_1" {
		t.Errorf("API key: %q, %v", a, err)
	}
}
