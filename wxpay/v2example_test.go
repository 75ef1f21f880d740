package wxpay_test

import (
	"context"
	"errors"
	"fmt"

	"tollgate/wxpay"
)

// The worked example of WeChat Pay's signature page (vector V2-1).
func ExampleSignV2() {
	params := map[string]string{
		"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
		"body": "test", "nonce_str": "ibuaiVcKdpRxkhJA",
	}
	key := "192006250b4c09247ec02edce69f6a2d"
	md5, _ := wxpay.SignV2(params, wxpay.SignTypeMD5, key)
	hmac, _ := wxpay.SignV2(params, wxpay.SignTypeHMACSHA256, key)
	fmt.Println(md5)
	fmt.Println(hmac)
	// Output:
	// 9A0A8659F005D6984697E2CA0A9CF3B7
	// 6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6
}

// A notification handler answers with V2NotifyAck after verifying and
// processing; only the exact success body stops WeChat Pay's retries.
func ExampleV2NotifyAck() {
	fmt.Println(string(wxpay.V2NotifyAck(true, "")))
	fmt.Println(string(wxpay.V2NotifyAck(false, "amount mismatch")))
	// Output:
	// <xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>
	// <xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[amount mismatch]]></return_msg></xml>
}

// Placing a Native order and telling the failures apart. (Compiled, not
// run: it would call WeChat Pay.)
func ExampleV2Client_UnifiedOrder() {
	c := &wxpay.V2Client{
		AppID: "wx2421b1c4370ec43b", MchID: "10000100",
		APIKey: "192006250b4c09247ec02edce69f6a2d", SignType: wxpay.SignTypeHMACSHA256,
	}
	resp, err := c.UnifiedOrder(context.Background(), &wxpay.V2UnifiedOrderRequest{
		OutTradeNo: "tg_20261126_0001", Body: "tollgate credits", TotalFee: 5000,
		SpbillCreateIP: "203.0.113.7", NotifyURL: "https://tollgate.example/wxpay/v2/notify",
		TradeType: wxpay.V2TradeTypeNative, ProductID: "credits-5000",
	})
	var api *wxpay.APIError
	switch {
	case err == nil:
		fmt.Println("show a QR code for", resp.CodeURL)
	case wxpay.ErrorCode(err) == "ORDERPAID":
		fmt.Println("already paid: nothing to do")
	case wxpay.IsRetryable(err):
		fmt.Println("unknown outcome or retryable: query, then retry with the same out_trade_no")
	case errors.As(err, &api):
		fmt.Println("refused:", api.Code, api.Message)
	default:
		fmt.Println("not sent:", err)
	}
}
