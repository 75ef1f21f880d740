package console

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

const (
	langEN     = "en"
	langZH     = "zh"
	langCookie = "tollgate_console_lang"
)

// pickLang: ?lang= (remembered in a cookie), the cookie, then
// Accept-Language's first zh or en.
func pickLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == langEN || l == langZH {
		if w != nil {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/admin/", MaxAge: 365 * 24 * 3600,
				HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		return l
	}
	if ck, err := r.Cookie(langCookie); err == nil && (ck.Value == langEN || ck.Value == langZH) {
		return ck.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			return langZH
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return langEN
		}
	}
	return langEN
}

// pageData is what every template gets.
type pageData struct {
	Lang, Title, Path string
	CSRF              string
	LoggedIn          bool
	Flash, FlashErr   string
	Body              any
}

// T translates key (the key itself when missing: a test keeps both
// languages complete).
func (p *pageData) T(key string) string {
	if m, ok := messages[p.Lang][key]; ok {
		return m
	}
	return key
}

// Status translates a status value v as prefix+v, or shows v itself when
// there is no text for it (a status added later).
func (p *pageData) Status(prefix, v string) string {
	if m, ok := messages[p.Lang][prefix+v]; ok {
		return m
	}
	return v
}

// Other is the language the switch offers.
func (p *pageData) Other() string {
	if p.Lang == langZH {
		return langEN
	}
	return langZH
}

func (c *Console) page(w http.ResponseWriter, r *http.Request, s *session, title string) *pageData {
	p := &pageData{Lang: pickLang(w, r), Path: r.URL.Path}
	p.Title = p.T(title)
	if s != nil {
		p.LoggedIn, p.CSRF = true, s.csrf
		p.Flash, p.FlashErr = c.takeFlash(r.Context(), s)
	}
	return p
}

var funcs = template.FuncMap{
	"fen": func(f tollgate.Fen) string {
		neg := ""
		if f < 0 {
			neg, f = "-", -f
		}
		return fmt.Sprintf("%s¥%s.%02d", neg, group(int64(f)/100), int64(f)%100)
	},
	"credits": func(c tollgate.Credits) string { return signed(int64(c)) },
	"num":     func(n int64) string { return signed(n) },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(tollgate.Beijing).Format("2006-01-02 15:04")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.In(tollgate.Beijing).Format("2006-01-02 15:04")
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"pct": func(a, b int) string {
		if b == 0 {
			return "—"
		}
		return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 1, 64) + "%"
	},
	"pct64": func(a, b int64) string {
		if b == 0 {
			return "—"
		}
		return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 1, 64) + "%"
	},
	"u":    func(parts ...string) string { return pathURL(parts...) },
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"list": func(v ...any) []any { return v },
	"pair": func(a, b any) struct{ A, B any } { return struct{ A, B any }{a, b} },
}

func signed(n int64) string {
	if n < 0 {
		return "-" + group(-n)
	}
	return group(n)
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}

// messages are every text of the console, per language (same keys: a
// test checks).
var messages = map[string]map[string]string{
	langEN: {
		"brand":               "tollgate console",
		"lang.switch":         "中文",
		"nav.overview":        "Overview",
		"nav.accounts":        "Accounts",
		"nav.orders":          "Orders",
		"nav.usage":           "Usage",
		"nav.catalog":         "Catalog",
		"nav.refunds":         "Refunds",
		"nav.webhooks":        "Webhooks",
		"nav.platforms":       "Platforms",
		"title.webhooks":      "Webhook endpoints",
		"title.webhook":       "Webhook endpoint",
		"title.platforms":     "Platforms",
		"webhooks.note":       "Each endpoint receives the events it subscribed to, signed (Standard Webhooks) with its secret; a failed delivery is retried with backoff for up to 3 days.",
		"webhook.events":      "Events",
		"webhook.platform":    "Platform",
		"webhook.platformfor": "Platform (optional: only its users' events)",
		"webhook.operators":   "operator's (all)",
		"description":         "Description",
		"webhook.failing":     "Failing since",
		"webhook.lastok":      "Last delivered",
		"webhook.create":      "Add an endpoint",
		"webhook.secret":      "Signing secret",
		"webhook.secret.once": "Copy this secret now: it is shown once and never again. Your receiver verifies each delivery's webhook-signature with it.",
		"webhook.previous":    "The previous secret also signs until",
		"webhook.rotate":      "Rotate the secret",
		"webhook.enable":      "Enable the endpoint",
		"webhook.delete":      "Delete the endpoint",
		"webhook.delete.note": "Deleting removes the endpoint and its deliveries; events are no longer sent to it.",
		"webhook.lost":        "Done, but the secret could not be kept to show you (the session store is unavailable). Rotate the secret to get a new one.",
		"webhook.created":     "Endpoint added.",
		"webhook.rotated":     "Secret rotated: the old one keeps signing for 24 hours.",
		"webhook.enabled":     "Endpoint enabled.",
		"webhook.deleted":     "Endpoint deleted.",
		"deliveries":          "Deliveries",
		"event":               "Event",
		"attempts":            "Attempts",
		"last.status":         "Last answer",
		"last.error":          "Last error",
		"next.attempt":        "Next attempt / delivered",
		"delivered":           "delivered",
		"delivery.retry":      "Retry",
		"delivery.retried":    "Delivery queued to be sent now.",
		"wd.pending":          "pending",
		"wd.delivered":        "delivered",
		"wd.failed":           "failed",
		"platforms.note":      "A platform is an app selling to its own users: its key (tgp-…) creates checkouts and accounts for its users, and reaches only those.",
		"name":                "Name",
		"platform.hosts":      "Return URL hosts",
		"platform.hosts.ph":   "app.example, shop.example (empty: any host)",
		"platform.anyhost":    "any",
		"platform.create":     "Create a platform",
		"platform.key":        "New platform key",
		"platform.lost":       "The platform was created, but its key could not be kept to show you (the session store is unavailable). Revoke it and create another.",
		"platform.created":    "Platform %q created.",
		"platform.revoked":    "Platform key revoked.",
		"title.refunds":       "Refunds",
		"rf.pending":          "pending",
		"rf.succeeded":        "succeeded",
		"rf.failed":           "failed",
		"err.paused":          "Too many wrong admin tokens from many addresses: console logins are paused for 15 minutes. Sessions already open keep working, and so does the admin API; nothing was changed.",
		"edit":                "Label, external id and metadata",
		"edit.ext.ph":         "your app's user id (empty: none)",
		"edit.submit":         "Save",
		"edit.done":           "Saved.",
		"edit.badmeta":        "Metadata must be a JSON object, e.g. {\"plan\": \"pro\"} ({} for none). Nothing was changed.",
		"edit.dupext":         "The external id %q already belongs to another account. Nothing was changed.",
		"key.lost":            "The key was created, but its secret could not be kept to show you (the session store is unavailable). Revoke it and create another.",
		"logout":              "Log out",
		"title.login":         "Log in",
		"title.error":         "Refused",
		"title.overview":      "Overview",
		"title.accounts":      "Accounts",
		"title.account":       "Account",
		"title.orders":        "Orders",
		"title.order":         "Order",
		"title.usage":         "Usage",
		"title.catalog":       "Catalog in force",
		"title.key":           "New API key",
		"login.token":         "Admin token",
		"login.submit":        "Log in",
		"login.bad":           "That is not the admin token.",
		"login.expired":       "Your session ended. Log in again.",
		"login.note":          "The token is the one serve was started with (--admin-token or its file).",
		"err.crosssite":       "Refused: this form was posted from another site.",
		"err.tokenquery":      "Refused: never put a token in a URL (it ends up in logs and history). Log in with the form.",
		"err.throttled":       "Too many wrong admin tokens from your address. Logins from it are refused for 15 minutes; nothing was changed.",
		"err.unavailable":     "The session store is unavailable right now. Try again shortly; nothing was changed.",
		"err.session":         "Your session has expired or is not valid. Log in again; nothing was changed.",
		"err.csrf":            "Refused: the form's security token is missing or wrong. Reload the page and try again; nothing was changed.",
		"err.form":            "The form could not be read.",
		"back":                "Back to the console",
		"hourly":              "Payments and failures, last 24 hours",
		"hourly.chart":        "Paid and failed orders per hour over the last 24 hours",
		"placed":              "Placed",
		"paid":                "Paid",
		"failed":              "Failed or closed",
		"refused":             "Refused by WeChat Pay",
		"health":              "Provider health",
		"health.note":         "Circuit breaker per deployment; calls and failures since this instance started.",
		"health.none":         "No provider is configured.",
		"provider":            "Provider",
		"deployment":          "Deployment",
		"breaker":             "Breaker",
		"breaker.closed":      "closed",
		"breaker.open":        "open",
		"breaker.half-open":   "half-open",
		"breaker.":            "unknown",
		"upstream.calls":      "Calls",
		"upstream.errors":     "Failures",
		"today":               "Today",
		"month":               "This month",
		"payments":            "Payments",
		"gross":               "Gross",
		"fees":                "Merchant fees",
		"refunds":             "Refunds",
		"net":                 "Net",
		"provider.cost":       "Provider cost",
		"margin":              "Margin",
		"requests":            "Requests",
		"credits.used":        "Credits used",
		"adjustments":         "Adjustments",
		"added":               "added",
		"removed":             "removed",
		"rollout":             "WeChat Pay rollout and failure guard",
		"debt.outstanding":    "Debt outstanding",
		"debt.credits":        "Credits owed",
		"debt.accounts":       "Accounts in debt",
		"rollout.none":        "No rollout is configured: every payer gets WeChat Pay.",
		"rollout.percent":     "Share of payers",
		"rollout.paused":      "Paused until",
		"rollout.running":     "Running",
		"rollout.window":      "Failures in the window",
		"rollout.max":         "Pauses above",
		"recent.orders":       "Latest orders",
		"search":              "Search",
		"search.ph":           "account id, external id or label",
		"account":             "Account",
		"label":               "Label",
		"external.id":         "External id",
		"metadata":            "Metadata",
		"status":              "Status",
		"created":             "Created",
		"available":           "Available",
		"held":                "Held",
		"provisional":         "Provisional",
		"debt":                "Debt",
		"disabled":            "Disabled",
		"active":              "Active",
		"next.page":           "Next page",
		"none":                "Nothing here.",
		"balance":             "Balance",
		"lots":                "Lots",
		"lot.kind":            "Kind",
		"granted":             "Granted",
		"used":                "Used",
		"left":                "Left",
		"refunded":            "Refunded",
		"holds":               "Active holds",
		"expires":             "Expires",
		"amount":              "Amount",
		"keys":                "API keys",
		"key.prefix":          "Key",
		"key.revoked":         "Revoked",
		"key.revoke":          "Revoke",
		"key.create":          "Create a key",
		"key.shown.once":      "Copy this key now: it is shown once and never again.",
		"adjust":              "Adjust credits",
		"adjust.credits":      "Credits (+ to add, − to remove)",
		"adjust.asdebt":       "Record what the balance cannot cover as debt",
		"adjust.submit":       "Adjust",
		"adjust.done":         "Adjusted.",
		"reason":              "Reason",
		"reason.ph":           "why (kept with the record)",
		"disable":             "Disable the account",
		"enable":              "Enable the account",
		"disable.note":        "Disabling refuses every key and token of the account at once.",
		"disable.done":        "Account disabled.",
		"enable.done":         "Account enabled.",
		"key.done":            "Key created.",
		"revoke.done":         "Key revoked.",
		"orders":              "Orders",
		"order":               "Order",
		"usage":               "Usage",
		"filter":              "Filter",
		"from":                "From",
		"to":                  "To",
		"any":                 "any",
		"method":              "Method",
		"fee":                 "Fee",
		"transaction":         "Transaction",
		"wechat.view":         "WeChat Pay's view (order query)",
		"wechat.state":        "Trade state",
		"wechat.amount":       "Amount",
		"wechat.error":        "WeChat Pay could not be asked",
		"refund":              "Refund",
		"refund.amount":       "Amount in fen (empty: all the unused credit)",
		"refund.submit":       "Refund",
		"refund.done":         "Refund asked.",
		"requested.by":        "Asked by",
		"credits":             "Credits",
		"day":                 "Day",
		"model":               "Model",
		"input.tokens":        "Input tokens",
		"output.tokens":       "Output tokens",
		"usage.chart":         "Credits spent per day (Beijing time)",
		"usage.bymodel":       "By model",
		"usage.byday":         "By day",
		"catalog.source":      "Source",
		"catalog.digest":      "Digest",
		"catalog.loaded":      "Loaded",
		"catalog.merchant":    "Merchant",
		"catalog.models":      "Models",
		"catalog.adv":         "On the checkout",
		"catalog.packages":    "Packages",
		"catalog.price":       "Price per 1M tokens (input / output)",
		"catalog.deploy":      "Deployments",
		"yes":                 "yes",
		"no":                  "no",
	},
	langZH: {
		"brand":               "tollgate 控制台",
		"lang.switch":         "English",
		"nav.overview":        "概览",
		"nav.accounts":        "账户",
		"nav.orders":          "订单",
		"nav.usage":           "用量",
		"nav.catalog":         "目录",
		"nav.refunds":         "退款",
		"nav.webhooks":        "Webhook",
		"nav.platforms":       "平台",
		"title.webhooks":      "Webhook 端点",
		"title.webhook":       "Webhook 端点",
		"title.platforms":     "平台",
		"webhooks.note":       "每个端点接收其订阅的事件，并用其密钥签名（Standard Webhooks）；投递失败会按退避重试，最长 3 天。",
		"webhook.events":      "事件",
		"webhook.platform":    "平台",
		"webhook.platformfor": "平台（可选：只接收该平台用户的事件）",
		"webhook.operators":   "运营方（全部）",
		"description":         "描述",
		"webhook.failing":     "持续失败自",
		"webhook.lastok":      "最近投递成功",
		"webhook.create":      "添加端点",
		"webhook.secret":      "签名密钥",
		"webhook.secret.once": "请立即复制此密钥：它只显示这一次。接收方用它验证每次投递的 webhook-signature。",
		"webhook.previous":    "旧密钥仍可签名，直到",
		"webhook.rotate":      "轮换密钥",
		"webhook.enable":      "启用端点",
		"webhook.delete":      "删除端点",
		"webhook.delete.note": "删除后端点及其投递记录一并移除，不再向其发送事件。",
		"webhook.lost":        "操作已完成，但无法保存密钥以显示给您（会话存储不可用）。请再次轮换密钥以获取新密钥。",
		"webhook.created":     "端点已添加。",
		"webhook.rotated":     "密钥已轮换：旧密钥在 24 小时内仍可签名。",
		"webhook.enabled":     "端点已启用。",
		"webhook.deleted":     "端点已删除。",
		"deliveries":          "投递",
		"event":               "事件",
		"attempts":            "尝试次数",
		"last.status":         "最近响应",
		"last.error":          "最近错误",
		"next.attempt":        "下次尝试 / 投递时间",
		"delivered":           "已投递",
		"delivery.retry":      "重试",
		"delivery.retried":    "已安排立即重新投递。",
		"wd.pending":          "待投递",
		"wd.delivered":        "已投递",
		"wd.failed":           "失败",
		"platforms.note":      "平台即向其自有用户销售的应用：其密钥（tgp-…）可为其用户创建结账和账户，且只能访问这些用户。",
		"name":                "名称",
		"platform.hosts":      "返回地址主机",
		"platform.hosts.ph":   "app.example, shop.example（留空：不限主机）",
		"platform.anyhost":    "任意",
		"platform.create":     "创建平台",
		"platform.key":        "新的平台密钥",
		"platform.lost":       "平台已创建，但无法保存其密钥以显示给您（会话存储不可用）。请吊销它并重新创建。",
		"platform.created":    "平台 %q 已创建。",
		"platform.revoked":    "平台密钥已吊销。",
		"title.refunds":       "退款",
		"rf.pending":          "处理中",
		"rf.succeeded":        "已成功",
		"rf.failed":           "失败",
		"err.paused":          "来自多个地址的错误管理令牌过多：控制台登录暂停 15 分钟。已登录的会话和管理 API 不受影响；未做任何更改。",
		"edit":                "标签、外部 ID 与元数据",
		"edit.ext.ph":         "您应用中的用户 ID（留空：无）",
		"edit.submit":         "保存",
		"edit.done":           "已保存。",
		"edit.badmeta":        "元数据必须是 JSON 对象，例如 {\"plan\": \"pro\"}（无则填 {}）。未做任何更改。",
		"edit.dupext":         "外部 ID %q 已属于另一个账户。未做任何更改。",
		"key.lost":            "密钥已创建，但无法保存其密文以显示给您（会话存储不可用）。请吊销它并重新创建。",
		"logout":              "退出",
		"title.login":         "登录",
		"title.error":         "已拒绝",
		"title.overview":      "概览",
		"title.accounts":      "账户",
		"title.account":       "账户",
		"title.orders":        "订单",
		"title.order":         "订单",
		"title.usage":         "用量",
		"title.catalog":       "当前目录",
		"title.key":           "新的 API 密钥",
		"login.token":         "管理员令牌",
		"login.submit":        "登录",
		"login.bad":           "管理员令牌不正确。",
		"login.expired":       "会话已结束，请重新登录。",
		"login.note":          "即启动 serve 时的令牌（--admin-token 或其文件）。",
		"err.crosssite":       "已拒绝：此表单来自其他网站。",
		"err.tokenquery":      "已拒绝：切勿把令牌放进网址（会留在日志和历史记录里）。请用表单登录。",
		"err.throttled":       "来自您地址的错误管理令牌过多，15 分钟内拒绝其登录；未做任何更改。",
		"err.unavailable":     "会话存储暂时不可用，请稍后重试；未做任何更改。",
		"err.session":         "会话已过期或无效，请重新登录；未做任何更改。",
		"err.csrf":            "已拒绝：表单的安全令牌缺失或不正确。请刷新页面重试；未做任何更改。",
		"err.form":            "无法读取表单。",
		"back":                "返回控制台",
		"hourly":              "近 24 小时的支付与失败",
		"hourly.chart":        "近 24 小时每小时的已支付与失败订单",
		"placed":              "下单",
		"paid":                "已支付",
		"failed":              "失败或已关闭",
		"refused":             "被微信支付拒绝",
		"health":              "上游服务健康",
		"health.note":         "每个部署的熔断器；调用与失败次数自本实例启动起计。",
		"health.none":         "未配置上游服务。",
		"provider":            "服务商",
		"deployment":          "部署",
		"breaker":             "熔断器",
		"breaker.closed":      "关闭（正常）",
		"breaker.open":        "打开（暂停调用）",
		"breaker.half-open":   "半开（试探中）",
		"breaker.":            "未知",
		"upstream.calls":      "调用",
		"upstream.errors":     "失败",
		"today":               "今天",
		"month":               "本月",
		"payments":            "支付笔数",
		"gross":               "总收入",
		"fees":                "商户手续费",
		"refunds":             "退款",
		"net":                 "净收入",
		"provider.cost":       "上游成本",
		"margin":              "毛利",
		"requests":            "请求数",
		"credits.used":        "消耗额度",
		"adjustments":         "人工调整",
		"added":               "增加",
		"removed":             "扣减",
		"rollout":             "微信支付灰度与失败保护",
		"debt.outstanding":    "未结欠款",
		"debt.credits":        "欠款额度",
		"debt.accounts":       "欠款账户数",
		"rollout.none":        "未配置灰度：所有付款人都使用微信支付。",
		"rollout.percent":     "付款人比例",
		"rollout.paused":      "暂停至",
		"rollout.running":     "运行中",
		"rollout.window":      "窗口内失败",
		"rollout.max":         "超过即暂停",
		"recent.orders":       "最新订单",
		"search":              "搜索",
		"search.ph":           "账户 ID、外部 ID 或标签",
		"account":             "账户",
		"label":               "标签",
		"external.id":         "外部 ID",
		"metadata":            "元数据",
		"status":              "状态",
		"created":             "创建时间",
		"available":           "可用",
		"held":                "冻结",
		"provisional":         "临时额度",
		"debt":                "欠款",
		"disabled":            "已停用",
		"active":              "正常",
		"next.page":           "下一页",
		"none":                "暂无数据。",
		"balance":             "余额",
		"lots":                "额度批次",
		"lot.kind":            "类型",
		"granted":             "发放",
		"used":                "已用",
		"left":                "剩余",
		"refunded":            "已退款",
		"holds":               "进行中的冻结",
		"expires":             "到期",
		"amount":              "金额",
		"keys":                "API 密钥",
		"key.prefix":          "密钥",
		"key.revoked":         "已吊销",
		"key.revoke":          "吊销",
		"key.create":          "创建密钥",
		"key.shown.once":      "请立即复制此密钥：它只显示这一次。",
		"adjust":              "调整额度",
		"adjust.credits":      "额度（+ 增加，− 扣减）",
		"adjust.asdebt":       "余额不足的部分记为欠款",
		"adjust.submit":       "调整",
		"adjust.done":         "已调整。",
		"reason":              "原因",
		"reason.ph":           "原因（随记录保存）",
		"disable":             "停用账户",
		"enable":              "启用账户",
		"disable.note":        "停用后该账户的所有密钥和令牌立即失效。",
		"disable.done":        "账户已停用。",
		"enable.done":         "账户已启用。",
		"key.done":            "密钥已创建。",
		"revoke.done":         "密钥已吊销。",
		"orders":              "订单",
		"order":               "订单",
		"usage":               "用量",
		"filter":              "筛选",
		"from":                "起",
		"to":                  "止",
		"any":                 "全部",
		"method":              "方式",
		"fee":                 "手续费",
		"transaction":         "微信支付单号",
		"wechat.view":         "微信支付侧（查询订单）",
		"wechat.state":        "交易状态",
		"wechat.amount":       "金额",
		"wechat.error":        "无法查询微信支付",
		"refund":              "退款",
		"refund.amount":       "金额（分；留空：退还全部未用额度）",
		"refund.submit":       "退款",
		"refund.done":         "已申请退款。",
		"requested.by":        "申请人",
		"credits":             "额度",
		"day":                 "日期",
		"model":               "模型",
		"input.tokens":        "输入 token",
		"output.tokens":       "输出 token",
		"usage.chart":         "每日消耗额度（北京时间）",
		"usage.bymodel":       "按模型",
		"usage.byday":         "按日期",
		"catalog.source":      "来源",
		"catalog.digest":      "摘要",
		"catalog.loaded":      "加载时间",
		"catalog.merchant":    "商户",
		"catalog.models":      "模型",
		"catalog.adv":         "结算页展示",
		"catalog.packages":    "套餐",
		"catalog.price":       "每百万 token 价格（输入 / 输出）",
		"catalog.deploy":      "部署",
		"yes":                 "是",
		"no":                  "否",
	},
}
