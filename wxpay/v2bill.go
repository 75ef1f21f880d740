package wxpay

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"time"

	"tollgate"
)

// Bill types of API v2 downloadbill.
const (
	V2BillTypeAll     = "ALL"     // payments and refunds
	V2BillTypeSuccess = "SUCCESS" // payments only
	V2BillTypeRefund  = "REFUND"  // refunds only
)

// V2BillRequest asks for the bill of one day.
type V2BillRequest struct {
	// Date is the bill's day; its calendar date in Beijing time is sent
	// (bill_date, yyyyMMdd).
	Date time.Time
	// BillType is one of V2BillType*, ALL when empty.
	BillType string
	// Gzip asks for a compressed download (tar_type=GZIP).
	Gzip bool
}

// DownloadBill downloads and parses the bill of one day
// (POST /pay/downloadbill). The bill itself is not signed by WeChat Pay, so
// it is a report to reconcile against, not proof of payment. A day without
// a bill answers an *APIError with Communication set, Code the error_code
// (e.g. "20002", No Bill Exist) and Message the return_msg.
func (c *V2Client) DownloadBill(ctx context.Context, r V2BillRequest) (*Bill, error) {
	if r.Date.IsZero() {
		return nil, fmt.Errorf("%w: downloadbill needs a date", ErrV2Request)
	}
	billType := r.BillType
	if billType == "" {
		billType = V2BillTypeAll
	}
	p := map[string]string{
		"bill_date": r.Date.In(tollgate.Beijing).Format("20060102"),
		"bill_type": billType,
	}
	if r.Gzip {
		p["tar_type"] = "GZIP"
	}
	key, err := c.key(ctx)
	if err != nil {
		return nil, err
	}
	call := v2Call{op: "downloadbill", path: "/pay/downloadbill"}
	req, err := c.signedBody(call, p, c.signType(), key)
	if err != nil {
		return nil, err
	}
	body, err := c.send(ctx, call, req, MaxBillBytes)
	if err != nil {
		return nil, err
	}
	return parseV2BillAnswer(body)
}

// parseV2BillAnswer tells a FAIL answer from a bill, plain or gzipped.
func parseV2BillAnswer(body []byte) (*Bill, error) {
	const op = "downloadbill"
	trimmed := bytes.TrimSpace(body)
	if bytes.HasPrefix(trimmed, []byte("<xml>")) || bytes.HasPrefix(trimmed, []byte("<?xml")) {
		m, err := DecodeV2XML(trimmed)
		if err != nil {
			return nil, &TransportError{Op: op, Err: err}
		}
		if m["return_code"] == "SUCCESS" {
			return nil, &TransportError{Op: op, Err: fmt.Errorf("XML answer with return_code SUCCESS and no bill: %w", ErrMalformed)}
		}
		return nil, &APIError{Version: 2, Communication: true, Code: m["error_code"], Message: m["return_msg"]}
	}
	var r io.Reader = bytes.NewReader(body)
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, &TransportError{Op: op, Err: fmt.Errorf("gzip: %w: %v", ErrMalformed, err)}
		}
		defer zr.Close()
		r = zr
	}
	b, err := ParseBill(r)
	if err != nil {
		return nil, &TransportError{Op: op, Err: err}
	}
	return b, nil
}
