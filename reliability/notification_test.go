package reliability

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	mrand "math/rand"
	"net/http"
	"strconv"
	"testing"
	"time"

	"tollgate/internal/operatorkeys"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// v3TestCluster is a cluster as far as the v3 notification builders need:
// the operator's keys and the serial of its platform certificate.
func v3TestCluster(t *testing.T) (*Cluster, *wxpay.V3Keyring) {
	t.Helper()
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wechatpay, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := operatorkeys.Write(t.TempDir(), "", "", merchant, wechatpay)
	if err != nil {
		t.Fatal(err)
	}
	cl := &Cluster{APIVersion: "v3", NotifyPath: NotifyPathV3, Keys: k, PlatformSerial: "5157F09EFDC096DE15EBE81A47057A72",
		SimConfig: wxpaysim.Config{MchID: k.MchID, AppID: k.AppID}}
	ring := wxpay.NewV3Keyring()
	if err := ring.Add(cl.PlatformSerial, &wechatpay.PublicKey); err != nil {
		t.Fatal(err)
	}
	return cl, ring
}

func header(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

// TestV3NotificationsAsTollgateReadsThem runs every notification the
// harness builds for API v3 through wxpay.ParseV3Notification, the
// verifier serve uses: the genuine and tampered ones verify (the tampered
// one with its other amount), each forgery is refused, or verifies but
// names another merchant, exactly as its kind says.
func TestV3NotificationsAsTollgateReadsThem(t *testing.T) {
	cl, ring := v3TestCluster(t)
	rng := mrand.New(mrand.NewSource(1))
	p := Payment{OutTradeNo: "tg20261207ABCDEFGHJKLMNPQRST", TransactionID: "4200000000000000000001", Total: 5000}
	parse := func(n Notification) (*wxpay.V3Transaction, error) {
		v, err := wxpay.ParseV3Notification(header(n.Header), n.Body, ring, cl.Keys.APIv3Key, time.Now())
		if err != nil {
			return nil, err
		}
		return v.Transaction()
	}

	tx, err := parse(cl.Genuine(p, "nonce0000000000000000000000000001"))
	if err != nil {
		t.Fatalf("genuine: %v", err)
	}
	if tx.OutTradeNo != p.OutTradeNo || tx.TransactionID != p.TransactionID || tx.Amount.Total != 5000 ||
		tx.MchID != cl.Keys.MchID || tx.AppID != cl.Keys.AppID || tx.TradeState != "SUCCESS" {
		t.Errorf("genuine: %+v", tx)
	}
	tx, err = parse(cl.Tamper(p, 1, rng))
	if err != nil || tx.Amount.Total != 5001 {
		t.Errorf("tampered by 1 fen: %+v, %v; want it verified with total 5001", tx, err)
	}

	for _, kind := range cl.CatalogueKinds() {
		tx, err := parse(cl.Forge(kind, p, rng))
		var want error
		switch kind {
		case ForgeStale:
			want = wxpay.ErrTooOld
		case ForgeProbe:
			want = wxpay.ErrSignatureProbe
		case ForgeEmptySig, ForgeNoHeaders:
			want = wxpay.ErrNotSigned
		case ForgeUnknownSerial:
			want = wxpay.ErrUnknownSerial
		case ForgeOtherMchID, ForgeOtherAppID:
			if err != nil || (tx.MchID == cl.Keys.MchID && tx.AppID == cl.Keys.AppID) {
				t.Errorf("%s: %+v, %v; want it verified, for another merchant or app", kind, tx, err)
			}
			continue
		default:
			want = wxpay.ErrBadSignature
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v; want %v", kind, err, want)
		}
	}
	if len(ForgeKindsV3)+1 != len(cl.CatalogueKinds()) {
		t.Errorf("the catalogue has %d kinds, want the run's %d and unknown_serial", len(cl.CatalogueKinds()), len(ForgeKindsV3))
	}
}

// TestReplayExpect: a v3 replay is expected acknowledged inside the
// 5-minute window, refused past it, either near its edge; v2 always
// acknowledged.
func TestReplayExpect(t *testing.T) {
	v3 := &Cluster{APIVersion: "v3"}
	for _, c := range []struct {
		age       time.Duration
		ack, sure bool
	}{
		{0, true, true}, {4 * time.Minute, true, true}, {5 * time.Minute, false, false},
		{5*time.Minute - 5*time.Second, true, false}, {6 * time.Minute, false, true}, {25 * time.Hour, false, true},
	} {
		n := Notification{Header: map[string]string{wxpay.HeaderV3Timestamp: strconv.FormatInt(time.Now().Add(-c.age).Unix(), 10)}}
		if ack, sure := v3.replayExpect(n); ack != c.ack || sure != c.sure {
			t.Errorf("signed %v ago: ack %v sure %v, want %v %v", c.age, ack, sure, c.ack, c.sure)
		}
	}
	if ack, sure := (&Cluster{APIVersion: "v2"}).replayExpect(Notification{}); !ack || !sure {
		t.Error("v2 replay not expected acknowledged")
	}
}

// TestSignatureRefusalsCounted: a genuine notification refused for its
// signature is counted; lies, probes and other refusals are not.
func TestSignatureRefusalsCounted(t *testing.T) {
	truth := &Truth{Notifications: []wxpaysim.Delivery{
		{Kind: "payment", Method: "POST", Status: 400, Reply: `{"code":"FAIL","message":"refused: bad_signature"}`, OutTradeNo: "a"},
		{Kind: "refund", Method: "POST", Status: 400, Reply: `<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[refused: too_old]]></return_msg></xml>`},
		{Kind: "payment", Method: "POST", Status: 400, Reply: `{"code":"FAIL","message":"refused: bad_signature"}`, Lie: "amount"},
		{Kind: "payment", Method: "POST", Status: 400, Reply: `{"code":"FAIL","message":"refused: signature_probe"}`, Probe: true},
		{Kind: "payment", Method: "POST", Status: 400, Reply: `{"code":"FAIL","message":"refused: amount_mismatch"}`},
		{Kind: "payment", Method: "POST", Status: 200, Reply: `{"code":"SUCCESS"}`, Outcome: wxpaysim.OutcomeAcked},
	}}
	r := &Report{}
	r.deliveries(truth, nil, nil)
	if len(r.SignatureRefused) != 2 {
		t.Errorf("signature refusals %+v; want 2", r.SignatureRefused)
	}
}
