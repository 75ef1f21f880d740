package wxpay_test

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"tollgate/wxpay"
)

// A merchant signs the V3-A order query of docs/WECHATPAY.md §6.2 and builds its
// Authorization header. PKCS#1 v1.5 signatures are deterministic.
func ExampleSignV3() {
	pemBytes, err := os.ReadFile("testdata/v3/merchant_key.pem")
	if err != nil {
		log.Fatal(err)
	}
	key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(strings.ReplaceAll(string(pemBytes), "TESTING KEY", "PRIVATE KEY")))
	if err != nil {
		log.Fatal(err)
	}
	msg := wxpay.V3RequestMessage("GET", "/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid=1230000109",
		"1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", nil)
	sig, err := wxpay.SignV3(key, msg)
	if err != nil {
		log.Fatal(err)
	}
	auth := wxpay.V3Authorization{MchID: "1230000109", NonceStr: "593BEC0C930BF1AFEB40B4A08C8FB242", Timestamp: "1554208460",
		SerialNo: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", Signature: sig}
	header, _, _ := strings.Cut(auth.String(), ",signature=")
	fmt.Println(header)
	fmt.Println(sig[:40])
	// Output:
	// WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
	// VOOyRh7Ho+M2BZ3La/NM1i/lY93eHfnlV9vb7KeJ
}

// A notify handler: verify and decrypt, check the transaction against the
// merchant's own order, then acknowledge. Any error answers 4xx/5xx and
// changes nothing; WeChat Pay delivers again.
func ExampleV3Client_ParseNotificationRequest() {
	var client *wxpay.V3Client // configured elsewhere, Keyring and APIv3Key set
	http.HandleFunc("/wxpay/notify", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return // the handshake some deployments expect
		}
		n, err := client.ParseNotificationRequest(r)
		if err == nil {
			var tx *wxpay.V3Transaction
			if tx, err = n.Transaction(); err == nil {
				// Compare tx.MchID, tx.AppID, tx.OutTradeNo and tx.Amount.Total
				// with the order, then credit it exactly once.
				_ = tx
			}
		}
		wxpay.WriteV3NotifyAck(w, err)
	})
}

// The V3-E notification of docs/WECHATPAY.md §6.2, verified with the WeChat Pay public
// key and decrypted with the APIv3 key.
func ExampleParseV3Notification() {
	body, _ := os.ReadFile("testdata/v3/notify_v3-e.json")
	pub, _ := os.ReadFile("testdata/v3/wechatpay_pub.pem")
	keyring := wxpay.NewV3Keyring()
	if err := keyring.AddPublicKeyPEM("PUB_KEY_ID_0112300001092025010100000000000001", pub); err != nil {
		log.Fatal(err)
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", "1554208500")
	h.Set("Wechatpay-Nonce", "fdasflkja484w")
	h.Set("Wechatpay-Serial", "PUB_KEY_ID_0112300001092025010100000000000001")
	h.Set("Wechatpay-Signature", "QKR3u45FpkMmyRHMbUUE8EiaD/0ENK2G9jMXuVmwONVypZF0gtX26eedklCgnCACDTEiIZ2TxJ9uKhVKC6xOVl+CCDMv+WAWYw/x5ycOorz0D3uaUKE0XyqjCabQdHd4BQOAU6AvhqzwfawAyQ6IoBoDyXU71E0uuX+jw8mP5bN0LmfrHgfLhv96LQgUuLnSDMC6jdX6hWtsH9HJE2dFIuSUuwzTk1j+A/eLgVw5JiwDbJwENy//tNCjz9KlBGhVuQ0mChv8GKdJbk1YHrGX75VAzWCoG25rhth+L3dpfLJglOkaaTNqIHviSDQzn2AkSYcK96JjuI5LnePHFYv7jQ==")
	n, err := wxpay.ParseV3Notification(h, body, keyring, "0123456789abcdefghijklmnopqrstuv", time.Unix(1554208530, 0))
	if err != nil {
		log.Fatal(err)
	}
	tx, err := n.Transaction()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n.EventType, tx.OutTradeNo, tx.TradeState, tx.Amount.Total, "fen")

	// The same notification ten minutes later is refused.
	_, err = wxpay.ParseV3Notification(h, body, keyring, "0123456789abcdefghijklmnopqrstuv", time.Unix(1554209100, 0))
	fmt.Println(err)
	// Output:
	// TRANSACTION.SUCCESS 1217752501201407033233368018 SUCCESS 100 fen
	// wxpay v3 notification: timestamp is 10m0s from the local clock (limit 5m0s)
}
