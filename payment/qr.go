package payment

import (
	"context"

	qrcode "github.com/skip2/go-qrcode"

	"tollgate"
)

// QRCodePNG renders an order's code_url as a PNG QR code of size×size
// pixels (256 when size ≤ 0) for the checkout page. Errors: ENOTFOUND (no
// such order for account), ECONFLICT (the order has no code_url: not
// placed, or no longer payable).
func (s *Service) QRCodePNG(ctx context.Context, account tollgate.AccountID, outTradeNo string, size int) ([]byte, error) {
	const op = "payment.QRCodePNG"
	o, err := s.GetOrder(ctx, account, outTradeNo)
	if err != nil {
		return nil, err
	}
	if o.CodeURL == "" || !o.Status.Pending() {
		return nil, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "order has no payable QR code"}
	}
	if size <= 0 {
		size = 256
	}
	png, err := qrcode.Encode(o.CodeURL, qrcode.Medium, size)
	if err != nil {
		return nil, wrap(op, tollgate.EINTERNAL, err)
	}
	return png, nil
}
