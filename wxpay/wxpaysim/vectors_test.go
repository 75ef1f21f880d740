package wxpaysim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOfficialV2Vector posts the request of WeChat Pay's signature page
// (docs/WECHATPAY.md §6.1 V2-1) verbatim: its signature must be accepted, and the
// answer is a signed business failure since it is not a complete order.
func TestOfficialV2Vector(t *testing.T) {
	const key = "192006250b4c09247ec02edce69f6a2d"
	sim := &wxpaysim.Server{MchID: "10000100", AppID: "wxd930ea5d5a258f4f", APIKey: key, Logf: t.Logf}
	t.Cleanup(func() { sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	body := mustRead(t, "v2-1_request.xml")
	tests := []struct {
		name, body, wantReturn, wantErrCode string
	}{
		{"Verbatim", string(body), "SUCCESS", "LACK_PARAMS"},
		{"OneDigitChanged", strings.Replace(string(body), "9A0A8659", "9A0A8658", 1), "FAIL", ""},
		{"LowerCaseSign", strings.Replace(string(body), "9A0A8659F005D6984697E2CA0A9CF3B7", "9a0a8659f005d6984697e2ca0a9cf3b7", 1), "FAIL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/pay/unifiedorder", "text/xml", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			m, err := wxpay.ReadV2XML(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if m["return_code"] != tt.wantReturn || m["err_code"] != tt.wantErrCode {
				t.Fatalf("answer %v, want return_code %s err_code %q", m, tt.wantReturn, tt.wantErrCode)
			}
			if tt.wantReturn == "SUCCESS" {
				if err := wxpay.VerifyV2(m, wxpay.SignTypeMD5, key); err != nil {
					t.Fatalf("answer signature: %v", err)
				}
			}
		})
	}
}

// TestOfficialV3Vector sends the Native order of docs/WECHATPAY.md §6.2 V3-B with its
// Authorization exactly as given: the default merchant and test key accept
// it at its timestamp, and refuse it 6 minutes later.
func TestOfficialV3Vector(t *testing.T) {
	body := mustRead(t, "v3-b_body.json")
	sig := strings.TrimSpace(string(mustRead(t, "v3-b_signature.txt")))
	auth := `WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="` + sig + `"`
	tests := []struct {
		name       string
		now        time.Time
		wantStatus int
	}{
		{"AtItsTimestamp", time.Unix(1554208460+30, 0), 200},
		{"SixMinutesLater", time.Unix(1554208460+360, 0), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := &wxpaysim.Server{Clock: tollgate.ClockFunc(func() time.Time { return tt.now }), Logf: t.Logf}
			t.Cleanup(func() { sim.Close() })
			req := httptest.NewRequest("POST", "/v3/pay/transactions/native", bytes.NewReader(body))
			req.Header.Set("Authorization", auth)
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				var ans struct {
					CodeURL string `json:"code_url"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || ans.CodeURL == "" {
					t.Fatalf("answer %s", rec.Body)
				}
				msg := wxpay.V3ResponseMessage(rec.Header().Get("Wechatpay-Timestamp"), rec.Header().Get("Wechatpay-Nonce"), rec.Body.Bytes())
				if err := wxpay.VerifyV3Signature(sim.PlatformPublicKey(), msg, rec.Header().Get("Wechatpay-Signature")); err != nil {
					t.Fatalf("answer signature: %v", err)
				}
			}
		})
	}
}
