package wxpay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"tollgate/wxpay"
)

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestV3ClientBill fetches a link then the file; the bill date is the
// Beijing calendar day (18:00 UTC on the 26th is the 27th in Beijing).
func TestV3ClientBill(t *testing.T) {
	bill := MustReadV3(t, "bill_all.csv")
	sum := sha1.Sum(bill)
	hash := hex.EncodeToString(sum[:])
	tests := []struct {
		name      string
		prefix    string
		gzip      bool
		file      []byte
		hash      string
		linkHost  string // replaces the server's host in download_url
		wantQuery string
		want      error
	}{
		{name: "Plain", file: bill, hash: hash, wantQuery: "bill_date=2026-11-27&bill_type=ALL"},
		{name: "Gzip", gzip: true, file: gzipBytes(t, bill), hash: hash, wantQuery: "bill_date=2026-11-27&bill_type=ALL&tar_type=GZIP"},
		{name: "UpperCaseHash", prefix: "/sandbox/wxpay", file: bill, hash: strings.ToUpper(hash), wantQuery: "bill_date=2026-11-27&bill_type=ALL"},
		{name: "HashMismatch", file: append(append([]byte(nil), bill...), ' '), hash: hash, want: wxpay.ErrBadSignature},
		{name: "BadGzip", file: []byte{0x1f, 0x8b, 0, 0}, hash: hash, want: wxpay.ErrMalformed},
		{name: "ForeignHost", file: bill, hash: hash, linkHost: "evil.example", want: wxpay.ErrV3Request},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, tt.prefix)
			c := newV3TestClient(t, srv, tt.prefix)
			host := srv.URL
			if tt.linkHost != "" {
				host = "http://" + tt.linkHost
			}
			f.answer(200, `{"hash_type":"SHA1","hash_value":"`+tt.hash+`","download_url":"`+host+tt.prefix+`/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO"}`, nil)
			link, err := c.TradeBill(context.Background(), wxpay.V3BillRequest{Date: time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC), Gzip: tt.gzip})
			if err != nil {
				t.Fatal(err)
			}
			f.answer(200, string(tt.file), nil)
			b, err := c.DownloadBill(context.Background(), link)
			checkErrIs(t, err, tt.want)
			seen := f.requests()
			if tt.want == wxpay.ErrV3Request {
				if len(seen) != 1 {
					t.Errorf("%d requests, want the link request only", len(seen))
				}
				return
			}
			if want := "/v3/bill/tradebill?" + tt.wantQuery; tt.want == nil && seen[0].Canonical != want {
				t.Errorf("link request %s, want %s", seen[0].Canonical, want)
			}
			if len(seen) != 2 || seen[1].Canonical != "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO" {
				t.Errorf("download requests %+v", seen)
			}
			if tt.want != nil {
				return
			}
			if len(b.Records) != 3 || b.Records[0].OutTradeNo != "tg_20261126_0001" {
				t.Errorf("bill = %+v", b)
			}
		})
	}
}

func TestV3ClientBillErrors(t *testing.T) {
	f, srv := newV3FakeServer(t, "")
	c := newV3TestClient(t, srv, "")
	f.answer(400, `{"code":"NO_STATEMENT_EXIST","message":"请求的账单文件不存在"}`, nil)
	_, err := c.Bill(context.Background(), wxpay.V3BillRequest{Date: v3TestNow, BillType: wxpay.V3BillTypeSuccess})
	var api *wxpay.APIError
	if !errors.As(err, &api) || api.Code != "NO_STATEMENT_EXIST" || api.Retryable() {
		t.Fatalf("err = %v, want NO_STATEMENT_EXIST", err)
	}
	if _, err := c.TradeBill(context.Background(), wxpay.V3BillRequest{}); !errors.Is(err, wxpay.ErrV3Request) {
		t.Errorf("no date: %v", err)
	}
	if _, err := c.TradeBill(context.Background(), wxpay.V3BillRequest{Date: v3TestNow, BillType: "ALL&x=1"}); !errors.Is(err, wxpay.ErrV3Request) {
		t.Errorf("bad bill type: %v", err)
	}
	f.answer(200, `{"hash_type":"MD5","hash_value":"00","download_url":"`+srv.URL+`/v3/billdownload/file?token=t"}`, nil)
	if _, err := c.TradeBill(context.Background(), wxpay.V3BillRequest{Date: v3TestNow}); !errors.Is(err, wxpay.ErrMalformed) {
		t.Errorf("MD5 link: %v", err)
	}
}
