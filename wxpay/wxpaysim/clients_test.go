package wxpaysim_test

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"testing"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// The clients Clients builds place orders with the emulator in both API
// versions, signed and verified with its test keys.
func TestConfigClientsTalkToTheEmulator(t *testing.T) {
	sim := &wxpaysim.Server{}
	defer sim.Close()
	ts := httptest.NewServer(sim)
	defer ts.Close()
	v2, v3, err := sim.Config().Clients(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v2.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{OutTradeNo: "clients-v2-0001", Body: "credits", TotalFee: 100,
		SpbillCreateIP: "127.0.0.1", NotifyURL: "http://127.0.0.1:1/notify", TradeType: wxpay.V2TradeTypeNative, ProductID: "p"}); err != nil {
		t.Errorf("v2 unified order: %v", err)
	}
	if _, err := v3.NativeOrder(ctx, &wxpay.V3NativeOrderRequest{OutTradeNo: "clients-v3-0001", Description: "credits", Total: 100,
		NotifyURL: "http://127.0.0.1:1/notify/v3"}); err != nil {
		t.Errorf("v3 native order: %v", err)
	}
	if v2.Certificate == nil {
		t.Error("the v2 client has no client certificate: refunds would be refused")
	}
}

func TestClientCertificate(t *testing.T) {
	c, err := wxpaysim.ClientCertificate("1900000109")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "1900000109" || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("certificate for %q, usages %v", cert.Subject.CommonName, cert.ExtKeyUsage)
	}
}
