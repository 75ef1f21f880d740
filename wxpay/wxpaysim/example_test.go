package wxpaysim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"tollgate/wxpay/wxpaysim"
)

// The emulator mounted under a prefix, as tollgate serve mounts it. Clients
// sign v3 requests over the API path (/v3/...), as they would for
// api.mch.weixin.qq.com, and use the merchant material from Config.
func ExampleServer() {
	sim := &wxpaysim.Server{TimeScale: 0.001} // retries of 24h4m take ~87 s
	defer sim.Close()
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", sim))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cfg := sim.Config()
	fmt.Println(cfg.MchID, cfg.AppID, cfg.PlatformKeyID)

	resp, err := http.Get(srv.URL + "/sandbox/wxpay/sim/orders")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// 1230000109 wxd678efh567hg6787 PUB_KEY_ID_0112300001092025010100000000000001
	// 200 OK
}
