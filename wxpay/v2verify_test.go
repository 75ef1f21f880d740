package wxpay_test

import (
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/wxpay"
)

// TestVerifyV2Mutations forges the V2-2 notification in every way an
// attacker or a buggy sender could and expects each to be refused.
func TestVerifyV2Mutations(t *testing.T) {
	var v signVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	type mutation struct {
		name   string
		mutate func(p map[string]string) // applied to a correctly signed map
		key    string                    // "" means v.Key
		want   error
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		return string(b)
	}
	mutations := []mutation{
		{"flipped first hex digit", func(p map[string]string) { p["sign"] = flip(p["sign"], 0) }, "", wxpay.ErrBadSignature},
		{"flipped last hex digit", func(p map[string]string) { p["sign"] = flip(p["sign"], len(p["sign"])-1) }, "", wxpay.ErrBadSignature},
		// WeChat Pay documents and sends upper-case hex; a lower-case
		// signature was not made by it, so it is refused (see VerifyV2).
		{"lower-case hex", func(p map[string]string) { p["sign"] = strings.ToLower(p["sign"]) }, "", wxpay.ErrBadSignature},
		{"truncated", func(p map[string]string) { p["sign"] = p["sign"][:31] }, "", wxpay.ErrBadSignature},
		{"extended", func(p map[string]string) { p["sign"] += "00" }, "", wxpay.ErrBadSignature},
		{"empty sign", func(p map[string]string) { p["sign"] = "" }, "", wxpay.ErrNotSigned},
		{"no sign", func(p map[string]string) { delete(p, "sign") }, "", wxpay.ErrNotSigned},
		{"field added", func(p map[string]string) { p["coupon_fee"] = "10" }, "", wxpay.ErrBadSignature},
		{"field removed", func(p map[string]string) { delete(p, "attach") }, "", wxpay.ErrBadSignature},
		{"amount changed", func(p map[string]string) { p["total_fee"] = "100" }, "", wxpay.ErrBadSignature},
		{"amount +1 fen", func(p map[string]string) { p["total_fee"] = "2" }, "", wxpay.ErrBadSignature},
		{"other order", func(p map[string]string) { p["out_trade_no"] = "1409811654" }, "", wxpay.ErrBadSignature},
		{"other mch_id", func(p map[string]string) { p["mch_id"] = "10000101" }, "", wxpay.ErrBadSignature},
		{"value moved between fields", func(p map[string]string) { p["attach"], p["bank_type"] = p["bank_type"], p["attach"] }, "", wxpay.ErrBadSignature},
		{"sign_type claimed", func(p map[string]string) { p["sign_type"] = wxpay.SignTypeHMACSHA256 }, "", wxpay.ErrBadSignature},
		{"wrong key", func(map[string]string) {}, "192006250b4c09247ec02edce69f6a2e", wxpay.ErrBadSignature},
		{"empty key", func(map[string]string) {}, "-", wxpay.ErrBadSignature},
	}
	for _, st := range []string{wxpay.SignTypeMD5, wxpay.SignTypeHMACSHA256} {
		for _, m := range mutations {
			t.Run(st+"/"+m.name, func(t *testing.T) {
				p := maps.Clone(v.Params)
				sign, err := wxpay.SignV2(p, st, v.Key)
				if err != nil {
					t.Fatal(err)
				}
				p["sign"] = sign
				m.mutate(p)
				key := v.Key
				switch m.key {
				case "":
				case "-":
					key = ""
				default:
					key = m.key
				}
				for _, verifyAs := range []string{st, ""} {
					if err := wxpay.VerifyV2(p, verifyAs, key); !errors.Is(err, m.want) {
						t.Errorf("VerifyV2(signType %q) = %v, want %v", verifyAs, err, m.want)
					}
				}
			})
		}
	}
}

// TestVerifyV2AlgorithmSwap checks that a signature made with one algorithm
// never verifies under the other one named explicitly.
func TestVerifyV2AlgorithmSwap(t *testing.T) {
	var v signVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	for _, c := range []struct{ sign, verifyAs string }{
		{v.MD5, wxpay.SignTypeHMACSHA256},
		{v.HMACSHA256, wxpay.SignTypeMD5},
		{v.HMACSHA256[:32], wxpay.SignTypeMD5},
		{v.HMACSHA256[:32], ""},
	} {
		p := maps.Clone(v.Params)
		p["sign"] = c.sign
		if err := wxpay.VerifyV2(p, c.verifyAs, v.Key); !errors.Is(err, wxpay.ErrBadSignature) {
			t.Errorf("sign %s verified as %q: err = %v, want ErrBadSignature", c.sign, c.verifyAs, err)
		}
	}
}

func BenchmarkSignV2MD5(b *testing.B)  { benchmarkSignV2(b, wxpay.SignTypeMD5) }
func BenchmarkSignV2HMAC(b *testing.B) { benchmarkSignV2(b, wxpay.SignTypeHMACSHA256) }

func benchmarkSignV2(b *testing.B, signType string) {
	var v signVector
	MustLoadJSON(b, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wxpay.SignV2(v.Params, signType, v.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyV2(b *testing.B) {
	var v signVector
	MustLoadJSON(b, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	p := maps.Clone(v.Params)
	p["sign"] = v.HMACSHA256
	b.ReportAllocs()
	for b.Loop() {
		if err := wxpay.VerifyV2(p, "", v.Key); err != nil {
			b.Fatal(err)
		}
	}
}
