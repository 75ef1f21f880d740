package payment

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestRequestHashKeepsNativeKeys: a native request hashes as before methods
// existed, so an Idempotency-Key recorded by an older version still
// replays after an upgrade; h5 and jsapi (and each openid) hash apart.
func TestRequestHashKeepsNativeKeys(t *testing.T) {
	old := sha256.Sum256([]byte(`{"p":"plus","a":0,"f":"0123456789abcdef0123"}`))
	r := CreateOrderRequest{PackageID: "plus", DeviceFingerprint: "0123456789abcdef0123"}
	for _, m := range []string{"", MethodNative} {
		r.Method = m
		if got := requestHash(r); got != hex.EncodeToString(old[:]) {
			t.Fatalf("method %q hashes to %s, not the pre-method hash", m, got)
		}
	}
	seen := map[string]string{}
	for _, c := range []CreateOrderRequest{
		{PackageID: "plus", DeviceFingerprint: "0123456789abcdef0123"},
		{PackageID: "plus", DeviceFingerprint: "0123456789abcdef0123", Method: MethodH5},
		{PackageID: "plus", DeviceFingerprint: "0123456789abcdef0123", Method: MethodJSAPI, OpenID: "o1"},
		{PackageID: "plus", DeviceFingerprint: "0123456789abcdef0123", Method: MethodJSAPI, OpenID: "o2"},
	} {
		h := requestHash(c)
		if prev, ok := seen[h]; ok {
			t.Fatalf("%+v hashes like %s", c, prev)
		}
		seen[h] = c.Method + "/" + c.OpenID
	}
}
