package wxpay

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"tollgate"
)

// Bill types of API v3 /v3/bill/tradebill (the same as v2's).
const (
	V3BillTypeAll     = "ALL"     // payments and refunds
	V3BillTypeSuccess = "SUCCESS" // payments only
	V3BillTypeRefund  = "REFUND"  // refunds only
)

// V3BillRequest asks for the transaction bill of one day.
type V3BillRequest struct {
	// Date is the bill's day; its calendar date in Beijing time is sent
	// (bill_date, YYYY-MM-DD).
	Date time.Time
	// BillType is one of V3BillType*, ALL when empty.
	BillType string
	// Gzip asks for a compressed download (tar_type=GZIP).
	Gzip bool
}

// V3BillLink is the answer of /v3/bill/tradebill: where to download the
// bill and the SHA-1 of its uncompressed content. The URL is short-lived.
type V3BillLink struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// TradeBill asks for the download link of one day's transaction bill
// (GET /v3/bill/tradebill). A day without a bill, or a bill not ready yet,
// is an *APIError (400 NO_STATEMENT_EXIST, STATEMENT_CREATING).
func (c *V3Client) TradeBill(ctx context.Context, r V3BillRequest) (*V3BillLink, error) {
	if r.Date.IsZero() {
		return nil, fmt.Errorf("wxpay v3 trade bill: a date is required: %w", ErrV3Request)
	}
	billType := r.BillType
	if billType == "" {
		billType = V3BillTypeAll
	}
	if billType != V3BillTypeAll && billType != V3BillTypeSuccess && billType != V3BillTypeRefund {
		return nil, fmt.Errorf("wxpay v3 trade bill: bill_type %q: %w", billType, ErrV3Request)
	}
	q := "bill_date=" + r.Date.In(tollgate.Beijing).Format(time.DateOnly) + "&bill_type=" + billType
	if r.Gzip {
		q += "&tar_type=GZIP"
	}
	var link V3BillLink
	if _, err := c.do(ctx, v3Call{op: "trade bill", method: http.MethodGet, path: "/v3/bill/tradebill", query: q}, &link); err != nil {
		return nil, err
	}
	if link.HashType != "SHA1" || len(link.HashValue) != 2*sha1.Size || link.DownloadURL == "" {
		return nil, &TransportError{Op: "v3 trade bill", Err: fmt.Errorf("link with hash %.10q %.50q: %w", link.HashType, link.HashValue, ErrMalformed)}
	}
	return &link, nil
}

// DownloadBill downloads the bill of link (a signed GET of its URL, which
// must be on the client's BaseURL), decompresses it if gzipped, checks its
// SHA-1 against the link (a mismatch is a *TransportError wrapping
// ErrBadSignature) and parses it. The file itself is not signed by WeChat
// Pay: it is a report to reconcile against, not proof of payment.
func (c *V3Client) DownloadBill(ctx context.Context, link *V3BillLink) (*Bill, error) {
	const op = "bill download"
	call, err := c.downloadCall(link.DownloadURL)
	if err != nil {
		return nil, err
	}
	resp, body, rop, err := c.roundTrip(ctx, call, MaxBillBytes)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if err := c.verifyAnswer(ctx, rop, resp, body); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("wxpay v3 %s: %w", rop, v3APIError(resp.StatusCode, body))
	}
	text, err := gunzipV3Bill(body)
	if err != nil {
		return nil, &TransportError{Op: "v3 " + rop, Err: err}
	}
	sum := sha1.Sum(text)
	want := strings.ToLower(link.HashValue)
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(want)) != 1 {
		return nil, &TransportError{Op: "v3 " + rop, Err: fmt.Errorf("bill SHA-1 differs from the link's: %w", ErrBadSignature)}
	}
	b, err := ParseBill(bytes.NewReader(text))
	if err != nil {
		return nil, &TransportError{Op: "v3 " + op, Err: err}
	}
	return b, nil
}

// Bill is TradeBill followed by DownloadBill.
func (c *V3Client) Bill(ctx context.Context, r V3BillRequest) (*Bill, error) {
	link, err := c.TradeBill(ctx, r)
	if err != nil {
		return nil, err
	}
	return c.DownloadBill(ctx, link)
}

// downloadCall turns a download URL into a call on the client's BaseURL.
// A URL elsewhere (another scheme, host or path prefix) is refused, so the
// signed request never goes to a host the merchant did not configure.
func (c *V3Client) downloadCall(rawURL string) (v3Call, error) {
	const op = "bill download"
	base := c.BaseURL
	if base == "" {
		base = DefaultV3BaseURL
	}
	b, err1 := url.Parse(strings.TrimRight(base, "/"))
	u, err2 := url.Parse(rawURL)
	if err1 != nil || err2 != nil || u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil || u.Fragment != "" {
		return v3Call{}, fmt.Errorf("wxpay v3 %s: URL %q is not on %s: %w", op, rawURL, base, ErrV3Request)
	}
	path, ok := strings.CutPrefix(u.EscapedPath(), b.EscapedPath())
	if !ok || !strings.HasPrefix(path, "/v3/") {
		return v3Call{}, fmt.Errorf("wxpay v3 %s: URL %q is not on %s: %w", op, rawURL, base, ErrV3Request)
	}
	return v3Call{op: op, method: http.MethodGet, path: path, query: u.RawQuery}, nil
}

// gunzipV3Bill returns body, decompressed if it is gzip, within
// MaxBillBytes.
func gunzipV3Bill(body []byte) ([]byte, error) {
	if !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v: %w", err, ErrMalformed)
	}
	defer zr.Close()
	text, err := io.ReadAll(io.LimitReader(zr, MaxBillBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v: %w", err, ErrMalformed)
	}
	if len(text) > MaxBillBytes {
		return nil, fmt.Errorf("bill over %d bytes: %w", MaxBillBytes, ErrBodyTooLarge)
	}
	return text, nil
}
