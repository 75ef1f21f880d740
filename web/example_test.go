package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"tollgate"
	"tollgate/web"
	"tollgate/web/webfake"
)

// A server authenticates the API key, then the handler signs a checkout
// link for that account; the link alone opens the checkout page.
func ExampleHandler() {
	flow := &webfake.Flow{}
	h := &web.Handler{
		Secret:   []byte("a server secret of at least 32 bytes"),
		Orders:   flow,
		Accounts: flow,
		Catalog:  flow,
		Account: func(r *http.Request) (tollgate.AccountID, error) {
			return "acct_42", nil // the server's API-key middleware decides
		},
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	res, _ := http.Post(srv.URL+"/v1/checkout/sessions", "application/json", strings.NewReader(`{"package_id":"plus"}`))
	var link struct {
		URL string `json:"url"`
	}
	_ = decodeJSON(res, &link)
	page, _ := http.Get(link.URL)
	page.Body.Close()
	fmt.Println(res.StatusCode, page.StatusCode, page.Header.Get("Content-Type"))
	// Output: 201 200 text/html; charset=utf-8
}
