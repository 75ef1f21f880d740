package web

import (
	"net/http"
	"strings"
)

// Languages the pages speak.
const (
	langEN = "en"
	langZH = "zh"
)

// langCookie remembers the language the user switched to.
const langCookie = "tollgate_lang"

// pickLang chooses the page language: ?lang= (which also sets the cookie),
// then the cookie, then the session's locale (an app's, passed as
// session), then the first of Accept-Language's zh or en by quality.
func pickLang(w http.ResponseWriter, r *http.Request, session string) string {
	if l := r.URL.Query().Get("lang"); l == langEN || l == langZH {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langEN || c.Value == langZH) {
		return c.Value
	}
	if session == langEN || session == langZH {
		return session
	}
	return acceptLang(r.Header.Get("Accept-Language"))
}

// acceptLang returns zh or en, whichever Accept-Language prefers (English
// when it names neither).
func acceptLang(header string) string {
	best, bestQ := langEN, -1.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q = parseQ(v)
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		var l string
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			l = langZH
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			l = langEN
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// parseQ reads a quality value ("0.8"); anything malformed is 0.
func parseQ(s string) float64 {
	if s == "1" || strings.HasPrefix(s, "1.") {
		return 1
	}
	v, ok := strings.CutPrefix(s, "0.")
	if !ok {
		return 0
	}
	q, scale := 0.0, 0.1
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		q += float64(c-'0') * scale
		scale /= 10
	}
	return q
}

// messages holds every text of the pages and their scripts, per language.
// Both maps must have the same keys (a test checks).
var messages = map[string]map[string]string{
	langEN: {
		"title.checkout":           "Buy credits",
		"title.account":            "Your account",
		"title.error":              "Link problem",
		"lang.switch":              "中文",
		"merchant":                 "Merchant",
		"choose":                   "Choose a package",
		"credits":                  "credits",
		"about":                    "≈",
		"tokens":                   "tokens",
		"tokens.note":              "Token counts assume 3 input tokens per output token.",
		"credits.per_call":         "credits a call",
		"buy":                      "Pay with WeChat",
		"selected":                 "Selected",
		"scan":                     "Scan with WeChat to pay",
		"amount":                   "Amount",
		"order":                    "Order",
		"expires.in":               "Expires in",
		"waiting":                  "Waiting for payment…",
		"userpaying":               "Confirm the payment on your phone…",
		"creating":                 "Creating your order…",
		"success":                  "Payment received",
		"success.body":             "Your credits are ready to use.",
		"new.balance":              "New balance:",
		"closed":                   "This order was closed before it was paid.",
		"expired":                  "This order expired before it was paid. Nothing was charged.",
		"payerror":                 "The payment failed. Nothing was charged.",
		"refunded":                 "This order was refunded.",
		"try.again":                "Try again",
		"other.package":            "Choose another package",
		"error.generic":            "Something went wrong. Please try again.",
		"error.network":            "Network problem, retrying…",
		"sandbox":                  "Sandbox",
		"sandbox.note":             "Sandbox mode: no real money moves.",
		"sim.pay":                  "Pay with the emulator",
		"sim.fail":                 "Fail the payment",
		"account.link":             "Your account",
		"return.app":               "Back to the app",
		"return.cancel":            "Cancel and go back",
		"checkout.link":            "Buy more credits",
		"balance":                  "Balance",
		"bal.credits":              "Available",
		"bal.held":                 "Held",
		"bal.provisional":          "Provisional",
		"bal.debt":                 "Debt",
		"orders":                   "Orders",
		"no.orders":                "No orders yet.",
		"col.date":                 "Date",
		"col.order":                "Order",
		"col.amount":               "Amount",
		"col.credits":              "Credits",
		"col.status":               "Status",
		"refund":                   "Refund",
		"refund.confirm":           "Refund the unused credits of this order?",
		"refund.done":              "Refund requested",
		"refund.operator":          "Refunds are made by the operator of this service, not on this page.",
		"refund.contact":           "To ask for one: ",
		"usage":                    "Credits spent per day (last 30 days)",
		"no.usage":                 "No usage in the last 30 days.",
		"other":                    "other",
		"st.NOTPAY":                "Awaiting payment",
		"st.USERPAYING":            "Paying",
		"st.SUCCESS":               "Paid",
		"st.CLOSED":                "Closed",
		"st.REFUND":                "Refunded",
		"st.adjustment":            "Adjustment",
		"adjusted.by":              "Credit adjusted by the operator",
		"st.PAYERROR":              "Failed",
		"err.expired.title":        "This link has expired",
		"err.expired.body":         "Checkout links are valid for a limited time. Go back to the app and open a new one.",
		"err.invalid.title":        "This link is not valid",
		"err.invalid.body":         "The link is incomplete or was changed. Go back to the app and open a new one.",
		"err.internal.title":       "Something went wrong",
		"err.internal.body":        "Please try again in a moment.",
		"session.expires":          "This page is valid until",
		"secure.note":              "You never need an API key here; this link only lets you pay and see your balance.",
		"support":                  "Support",
		"show.qr":                  "Show QR code instead",
		"jsapi.title":              "Pay in WeChat",
		"jsapi.opening":            "Opening WeChat Pay…",
		"jsapi.confirm":            "Confirm the payment in WeChat Pay…",
		"jsapi.checking":           "Payment sent. Waiting for WeChat Pay to confirm it…",
		"jsapi.cancelled":          "Payment cancelled. Nothing was charged.",
		"jsapi.failed":             "WeChat Pay could not take the payment. Nothing was charged.",
		"jsapi.nobridge":           "WeChat Pay has not opened. If nothing happens, show the QR code instead.",
		"jsapi.retry":              "Open WeChat Pay again",
		"h5.opening":               "Opening WeChat Pay…",
		"h5.continue":              "Continue to WeChat Pay",
		"h5.back":                  "Checking your payment…",
		"h5.waiting":               "No payment received yet. If you paid, it shows here in a moment.",
		"h5.again":                 "Continue paying",
		"wechat.nooauth":           "Paying inside WeChat is not set up for this shop: long-press the QR code and choose \u201cScan QR code in image\u201d, or open this page in your phone's browser.",
		"retry.checkout":           "Open the checkout again",
		"err.oauth.state.title":    "This WeChat sign-in is not valid",
		"err.oauth.state.body":     "It expired, was already used or did not start on this page. Nothing was charged. Open the checkout again.",
		"err.oauth.code.title":     "WeChat did not accept the sign-in",
		"err.oauth.code.body":      "The authorization code is invalid or was already used. Nothing was charged. Open the checkout again.",
		"err.oauth.upstream.title": "WeChat could not be reached",
		"err.oauth.upstream.body":  "Nothing was charged. Try again in a moment, or pay with the QR code.",
		"err.oauth.off.title":      "Paying inside WeChat is not set up",
		"err.oauth.off.body":       "Nothing was charged. Pay with the QR code instead.",
	},
	langZH: {
		"title.checkout":           "购买额度",
		"title.account":            "我的账户",
		"title.error":              "链接有问题",
		"lang.switch":              "English",
		"merchant":                 "商户",
		"choose":                   "选择套餐",
		"credits":                  "额度",
		"about":                    "约",
		"tokens":                   "token",
		"tokens.note":              "token 数按每 1 个输出 token 对应 3 个输入 token 估算。",
		"credits.per_call":         "额度/次",
		"buy":                      "微信支付",
		"selected":                 "已选择",
		"scan":                     "请用微信扫码支付",
		"amount":                   "金额",
		"order":                    "订单号",
		"expires.in":               "剩余时间",
		"waiting":                  "等待支付…",
		"userpaying":               "请在手机上确认支付…",
		"creating":                 "正在创建订单…",
		"success":                  "支付成功",
		"success.body":             "额度已到账，可以使用了。",
		"new.balance":              "当前余额：",
		"closed":                   "该订单在支付前已关闭。",
		"expired":                  "该订单已过期，未扣款。",
		"payerror":                 "支付失败，未扣款。",
		"refunded":                 "该订单已退款。",
		"try.again":                "重试",
		"other.package":            "选择其他套餐",
		"error.generic":            "出错了，请重试。",
		"error.network":            "网络异常，正在重试…",
		"sandbox":                  "沙箱",
		"sandbox.note":             "沙箱模式：不会产生真实扣款。",
		"sim.pay":                  "用模拟器支付",
		"sim.fail":                 "模拟支付失败",
		"account.link":             "我的账户",
		"return.app":               "返回应用",
		"return.cancel":            "取消并返回",
		"checkout.link":            "继续购买",
		"balance":                  "余额",
		"bal.credits":              "可用",
		"bal.held":                 "冻结",
		"bal.provisional":          "临时额度",
		"bal.debt":                 "欠款",
		"orders":                   "订单",
		"no.orders":                "暂无订单。",
		"col.date":                 "日期",
		"col.order":                "订单号",
		"col.amount":               "金额",
		"col.credits":              "额度",
		"col.status":               "状态",
		"refund":                   "退款",
		"refund.confirm":           "确定退还该订单未使用的额度吗？",
		"refund.done":              "已申请退款",
		"refund.operator":          "退款由本服务的运营方办理，本页面不能自助退款。",
		"refund.contact":           "如需退款请联系：",
		"usage":                    "每日消耗额度（最近 30 天）",
		"no.usage":                 "最近 30 天没有使用记录。",
		"other":                    "其他",
		"st.NOTPAY":                "待支付",
		"st.USERPAYING":            "支付中",
		"st.SUCCESS":               "已支付",
		"st.CLOSED":                "已关闭",
		"st.REFUND":                "已退款",
		"st.adjustment":            "调整",
		"adjusted.by":              "运营方调整额度",
		"st.PAYERROR":              "支付失败",
		"err.expired.title":        "链接已过期",
		"err.expired.body":         "支付链接有时效。请回到应用重新打开一个新链接。",
		"err.invalid.title":        "链接无效",
		"err.invalid.body":         "链接不完整或已被修改。请回到应用重新打开一个新链接。",
		"err.internal.title":       "出错了",
		"err.internal.body":        "请稍后再试。",
		"session.expires":          "本页面有效期至",
		"secure.note":              "此页面无需 API 密钥，仅可用于支付和查看余额。",
		"support":                  "客服",
		"show.qr":                  "改用二维码支付",
		"jsapi.title":              "微信内支付",
		"jsapi.opening":            "正在打开微信支付…",
		"jsapi.confirm":            "请在微信支付中确认付款…",
		"jsapi.checking":           "已付款，正在等待微信支付确认…",
		"jsapi.cancelled":          "已取消支付，未扣款。",
		"jsapi.failed":             "微信支付未能完成付款，未扣款。",
		"jsapi.nobridge":           "微信支付尚未打开。如无反应，请改用二维码支付。",
		"jsapi.retry":              "重新打开微信支付",
		"h5.opening":               "正在跳转到微信支付…",
		"h5.continue":              "前往微信支付",
		"h5.back":                  "正在查询支付结果…",
		"h5.waiting":               "尚未收到付款。如已支付，稍后会在此显示。",
		"h5.again":                 "继续支付",
		"wechat.nooauth":           "本商户未开通微信内支付：请长按二维码，选择\u201c识别图中二维码\u201d，或在手机浏览器中打开本页面。",
		"retry.checkout":           "重新打开支付页面",
		"err.oauth.state.title":    "微信授权无效",
		"err.oauth.state.body":     "授权已过期、已被使用或并非从本页面发起，未产生扣款。请重新打开支付页面。",
		"err.oauth.code.title":     "微信未通过授权",
		"err.oauth.code.body":      "授权码无效或已被使用，未产生扣款。请重新打开支付页面。",
		"err.oauth.upstream.title": "暂时无法连接微信",
		"err.oauth.upstream.body":  "未产生扣款。请稍后重试，或改用二维码支付。",
		"err.oauth.off.title":      "未开通微信内支付",
		"err.oauth.off.body":       "未产生扣款。请改用二维码支付。",
	},
}

// tr returns the text of key in lang, or the key itself when missing (a
// test keeps that from happening).
func tr(lang, key string) string {
	if s, ok := messages[lang][key]; ok {
		return s
	}
	return key
}
