// Package wxpaysim is an in-memory WeChat Pay emulator: a real HTTP server
// that speaks the merchant APIs v2 and v3 as documented (see
// docs/WECHATPAY.md), keeps orders and refunds with their states
// and expiry, and delivers signed notifications with WeChat Pay's retry
// schedule. It is not a client and holds no business logic.
//
// A merchant client written from WeChat Pay's public documentation works
// against it unchanged except for the base URL and keys. Its zero value
// works (merchant DefaultMchID/DefaultAppID, the test keys in keys.go);
// Config returns what a client needs. It is modelled on tailscale's
// testcontrol: knobs and fault hooks are exported fields, state lives under
// one mutex, and any request it does not model gets a loud 404 (logged).
//
// # Merchant APIs
//
// v2 (XML, sign_type MD5 or HMAC-SHA256, the API key; the /sandboxnew
// copies are signed with the sandbox key from /sandboxnew/pay/getsignkey):
//
//	POST /pay/unifiedorder      NATIVE (code_url) and JSAPI (prepay_id)
//	POST /pay/orderquery        trade_state NOTPAY|USERPAYING|SUCCESS|CLOSED|REFUND|PAYERROR
//	POST /pay/closeorder        ORDERPAID if paid, ORDERCLOSED if closed
//	POST /secapi/pay/refund     asynchronous: PROCESSING, then SUCCESS + notification
//	POST /pay/refundquery
//	POST /pay/downloadbill      backtick-prefixed CSV in yuan; "No Bill Exist"
//	POST /sandboxnew/pay/{unifiedorder,orderquery,closeorder,refund,refundquery,downloadbill,getsignkey}
//
// The client certificate that /secapi/ needs in production is not checked.
//
// v3 (JSON, WECHATPAY2-SHA256-RSA2048 Authorization checked for mchid,
// serial_no, a 5-minute timestamp window and the signature over the API
// path without any mount prefix; answers signed with the platform key,
// Wechatpay-Serial = PlatformKeyID, or the certificate serial in
// certificate mode, Request-ID on each):
//
//	POST /v3/pay/transactions/native and /v3/pay/transactions/jsapi (payer.openid required)
//	POST /v3/pay/transactions/h5   h5_url; scene_info.payer_client_ip (an IP) and h5_info.type (iOS|Android|Wap) required
//	GET  /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=
//	GET  /v3/pay/transactions/id/{transaction_id}?mchid=
//	POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close   204 (also when already closed)
//	POST /v3/refund/domestic/refunds
//	GET  /v3/refund/domestic/refunds/{out_refund_no}
//	GET  /v3/bill/tradebill?bill_date=YYYY-MM-DD, then GET its download_url (unsigned file)
//	GET  /v3/certificates   public key mode (default): 404 RESOURCE_NOT_EXISTS, such a merchant has no
//	                        platform certificates; with PlatformCertificates: every listed certificate,
//	                        PEM encrypted with the APIv3 key (AEAD_AES_256_GCM, associated data "certificate")
//
// WeChat web authorization (snsapi_base, for the openid of a JSAPI payer),
// served on the same handler as open.weixin.qq.com and api.weixin.qq.com:
//
//	GET /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=snsapi_base&state=
//	    302 to redirect_uri?code=…&state=…; the openid is the openid query parameter (tests), else
//	    the browser's wxpaysim_openid cookie, else a new one set in that cookie; 400 on a bad request,
//	    and on a redirect_uri whose host is not the app's web authorization domain (RedirectHosts;
//	    default the host the emulator is addressed by and BaseURL's), as WeChat's 10003
//	GET /sns/oauth2/access_token?appid=&secret=&code=&grant_type=authorization_code
//	    {"access_token","expires_in":7200,"refresh_token","openid","scope"}, or (HTTP 200 like WeChat)
//	    {"errcode":40029,"errmsg":"invalid code"} (unknown, or older than OAuthCodeTTL, 5 min),
//	    40163 "code been used", 40125 "invalid appsecret" (AppSecret), 40013, 40002, 41008.
//	    A code is spent only by a successful exchange.
//
// Operator keys: MerchantPublicKey and MerchantSerial verify requests signed
// with the operator's apiclient_key.pem; PlatformKey and PlatformKeyID sign
// as the operator's WeChat Pay public key; PlatformCertificates gives
// PlatformKey a self-signed certificate (serial = Wechatpay-Serial), and
// RotateCertificate (POST /sim/rotate-certificate) replaces it by a new key
// and certificate while the old stays listed for the overlap, unless
// ?retire=1. NotifyRootCAs are the CAs trusted for https notify URLs.
//
// Errors are the real ones: v2 return_code=FAIL "签名错误" for a bad
// signature; result_code=FAIL with LACK_PARAMS, PARAM_ERROR,
// INVALID_REQUEST "201 商户订单号重复" (same out_trade_no, other
// parameters), ORDERPAID, ORDERCLOSED, ORDERNOTEXIST, NOTENOUGH (refunds
// beyond the paid amount), REFUNDNOTEXIST, SYSTEMERROR; v3 401 SIGN_ERROR,
// 400 PARAM_ERROR with detail.field, 400 INVALID_REQUEST, 404
// ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS, 500 SYSTEM_ERROR. The same
// out_trade_no with identical parameters returns the same code_url; the
// same out_refund_no returns the same refund. An unpaid order past its
// time_expire (default OrderTTL, 2 h) reads CLOSED.
//
// Not modelled, on purpose: the 5-minute wait before closing an order, the
// 1-minute spacing of refunds, rate limits other than QueryLimitPerMinute
// (FREQUENCY_LIMITED on order queries, off by default), the 1-year
// refund window, micropay, and bills appearing only
// the next morning (any day up to today is served at once). Re-entry with
// identical parameters of a paid order answers ORDERPAID, of a closed one
// ORDERCLOSED; v3 uses the v2 spelling ORDERPAID (WeChat's v3 code for it
// is undocumented). For H5 and JSAPI: the 5-minute life of an h5_url, the
// Referer check against the merchant's H5 domain, the cancel answer of the
// sheet, and /sns/userinfo. The payment sheet has no WeChat user of its
// own: it checks that the payer is the order's openid only when the
// request names the payer (an "openid" field, or the wxpaysim_openid
// cookie that bridge.js sends from the emulator's own origin, as in
// tollgate's dev mode); a request naming no payer, such as a page on
// another origin or a test posting the params, pays for whoever the order
// was placed for. Nor does the emulator check that an openid belongs to
// the appid (any well-formed openid can be ordered for), or the JS-SDK
// safe domain of the page calling the sheet.
//
// # Notifications
//
// Paying an order (and finishing a refund) sends a notification to its
// notify_url: a HEAD handshake first (before v2 notifications, and v3 ones
// too with HandshakeV3; NoHandshake turns it off; it models the seed
// article, WeChat Pay documents no such request), then the POST — v2
// XML signed with the order's sign type and without sign_type, or the v3
// JSON envelope with an AEAD_AES_256_GCM resource and Wechatpay-* headers.
// Unacknowledged notifications (v2: HTTP 200 and XML return_code SUCCESS;
// v3: any 2xx) are retried after
//
//	15s 15s 30s 3m 10m 20m 30m 30m 30m 60m 3h 3h 3h 6h 6h  (24h4m in all)
//
// each attempt bounded by AnswerDeadline (5 s), all waits multiplied by
// TimeScale (0.001: about 87 s). A URL that fails 3 handshakes in a row is no
// longer called. v2 retries resend the same body (same nonce_str) unless
// FreshNonceOnRetry; v3 retries are signed afresh. SignTestProbes sends a
// WECHATPAY/SIGNTEST/ probe before each v3 notification. Close stops every
// delivery goroutine.
//
// # Simulation API
//
// Served by the same handler, for tests, demos and the reliability harness:
//
//	POST /sim/orders/{out_trade_no}/pay         the user pays: SUCCESS, notification sent (409 if not payable)
//	POST /sim/orders/{out_trade_no}/pay?late=1  also pays a CLOSED order (the close-vs-pay race)
//	POST /sim/orders/{out_trade_no}/fail        the payment fails: PAYERROR
//	POST /sim/orders/{out_trade_no}/userpaying  USERPAYING (the user is entering the password)
//	GET  /sim/orders                            ground truth: every order with its refunds
//	GET  /sim/orders/{out_trade_no}
//	POST /sim/refunds/{out_refund_no}/complete  finish a PROCESSING refund now
//	GET  /sim/notifications                     every delivery attempt (Delivery)
//	GET  /sim/faults, POST /sim/faults          fault injection (Faults as JSON)
//	POST /sim/clock {"advance":"3h"}            move the emulator's clock forward
//	GET  /sim/stats                             verified calls per endpoint, peak order queries per minute, lies told
//	GET  /sim/config                            merchant ids and keys for clients
//	POST /sim/orders/{out_trade_no}/lie?kind=K  every answer about the order tells lie K ("" ends it)
//	POST /sim/orders/{out_trade_no}/notify-lie?kind=K  one signed notification telling lie K, now
//	GET  /sim/lies                              every lie told (LieTold)
//	POST /sim/rotate-certificate[?retire=1]     certificate mode: a new platform key and certificate signs;
//	                                            {"serial": new, "serials": listed}; 409 in public key mode
//	POST /sim/orders/{out_trade_no}/notify-signed-by?serial=S  the paid v3 order's notification, once, signed
//	                                            by certificate S even if retired (a rotated-out key)
//	GET  /sim/h5/pay?prepay_id=&redirect_url=   an H5 order's payment page (h5_url): amount and a Pay button;
//	                                            400 if redirect_url's host is not in RedirectHosts (as for OAuth)
//	POST /sim/h5/pay                            the Pay button: pays, then 302 to redirect_url (409 if not payable)
//	POST /sim/jsapi/pay                         the JSAPI payment sheet: getBrandWCPayRequest params (appId,
//	                                            timeStamp, nonceStr, package, signType RSA, paySign checked
//	                                            with the merchant public key) -> {"err_msg":"get_brand_wcpay_request:ok"},
//	                                            or 400 {"err_msg":"get_brand_wcpay_request:fail","reason":…} paying nothing;
//	                                            a payer named (body "openid", else the wxpaysim_openid cookie) must be
//	                                            the order's payer.openid;
//	                                            CORS: any origin (OPTIONS preflight answered)
//	GET  /sim/jsapi/bridge.js                   defines window.WeixinJSBridge.invoke for a page outside WeChat,
//	                                            posting to this emulator's absolute /sim/jsapi/pay URL
//
// Faults (duplicates, drops, delays, reordering, SYSTEMERROR per endpoint,
// probes, lies) draw from one math/rand source seeded by Faults.Seed, so a
// seed replays. The same operations are methods for in-process use: Pay,
// Fail, PayLate, UserPaying, Order, Orders, CompleteRefund, Notifications,
// SetFaults, Advance, Config, LieAbout, NotifyLie, LiesTold,
// RotateCertificate, RetireCertificates, CertificateSerials, NotifySignedBy.
//
// # A lying WeChat Pay
//
// The emulator can lie: answers and notifications that are correctly
// signed (v2: the order's sign type and key; v3: the platform key; v2
// refund notifications: req_info encrypted with the key) but whose
// content is false. The lie kinds (lies.go) are another amount
// (LieAmount), another appid or mch_id (LieAppID, LieMchID), the states
// USERPAYING, REFUND, REVOKED, PAYERROR, CLOSED, an undocumented state
// (LieUnknown: UnknownTradeState), told in order query answers and payment
// notifications; and another refund amount (LieRefundAmount) in the answer
// to a refund call, refund queries and refund notifications. A state lie
// brings the fields that go with it: a REFUND lie about an unpaid order
// carries a made-up transaction_id, a lie that a paid order failed carries
// none; a v2 payment notification telling a state lie says result_code
// FAIL with err_code and trade_state set to the state.
//
// Faults.Lies gives each kind a rate: one seeded draw per answer, and for
// a notification only its first POST lies (the retries tell the truth, as
// a receiver that refuses the lie will then see). LieAbout makes every
// answer about one order lie until it is ended; NotifyLie sends one lying
// notification at any point of the order's life (before payment, after
// payment, after its close or refund). The truth never changes: Orders and
// GET /sim/orders keep it, so a test compares the merchant's books with
// it; the lies told are listed by LiesTold and counted in Stats.Lies, and
// a notification attempt that lied says so in Delivery.Lie.
package wxpaysim
