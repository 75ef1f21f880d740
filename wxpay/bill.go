package wxpay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Bill is a parsed transaction bill (交易账单) as downloadbill returns it:
// a header line, one record per transaction or refund, a summary header and
// one summary row. Amounts are exact: yuan with decimals become integer fen,
// never floats.
type Bill struct {
	Header        []string // column names of the records, as in the file
	Records       []BillRecord
	SummaryHeader []string
	Summary       BillSummary
}

// BillRecord is one line of a bill. Columns a bill type lacks (SUCCESS
// bills have no refund columns) are zero. Fields holds every column by its
// (Chinese) header name, the typed ones included.
type BillRecord struct {
	TradeTime     string // 交易时间, yyyy-MM-dd HH:mm:ss Beijing time
	AppID         string // 公众账号ID
	MchID         string // 商户号
	SubMchID      string // 特约商户号 ("0" for ordinary merchants)
	DeviceInfo    string // 设备号
	TransactionID string // 微信订单号
	OutTradeNo    string // 商户订单号
	OpenID        string // 用户标识
	TradeType     string // 交易类型, e.g. NATIVE
	TradeState    string // 交易状态, e.g. SUCCESS, REFUND
	BankType      string // 付款银行
	FeeType       string // 货币种类
	RefundID      string // 微信退款单号
	OutRefundNo   string // 商户退款单号
	RefundType    string // 退款类型
	RefundStatus  string // 退款状态
	Body          string // 商品名称
	Attach        string // 商户数据包
	FeeRate       string // 费率, e.g. "0.60%"
	// RefundRequestTime and RefundSuccessTime (退款申请时间, 退款成功时间)
	// appear in REFUND bills only.
	RefundRequestTime string
	RefundSuccessTime string

	SettlementTotalFee      int64 // 应结订单金额, fen
	CouponFee               int64 // 代金券金额, fen
	RefundFee               int64 // 退款金额, fen
	RechargeCouponRefundFee int64 // 充值券退款金额, fen
	TotalFee                int64 // 订单金额, fen
	RequestRefundFee        int64 // 申请退款金额, fen
	// ServiceFeeMilliFen is 手续费, given by WeChat Pay with five decimals
	// of a yuan, in units of 0.001 fen (0.00018 yuan is 18).
	ServiceFeeMilliFen int64

	Fields map[string]string
}

// BillSummary is the summary row of a bill.
type BillSummary struct {
	Count                   int64 // 总交易单数
	SettlementTotalFee      int64 // 应结订单总金额, fen
	RefundFee               int64 // 退款总金额, fen
	RechargeCouponRefundFee int64 // 充值券退款总金额, fen
	TotalFee                int64 // 订单总金额, fen
	RequestRefundFee        int64 // 申请退款总金额, fen
	ServiceFeeMilliFen      int64 // 手续费总金额, 0.001 fen
	Fields                  map[string]string
}

// MaxBillBytes bounds a bill download, after decompression.
const MaxBillBytes = 256 << 20

// strings maps header names to the string fields of a record.
func (r *BillRecord) strings() map[string]*string {
	return map[string]*string{
		"交易时间": &r.TradeTime, "公众账号ID": &r.AppID, "商户号": &r.MchID, "特约商户号": &r.SubMchID,
		"子商户号": &r.SubMchID, "设备号": &r.DeviceInfo, "微信订单号": &r.TransactionID,
		"商户订单号": &r.OutTradeNo, "用户标识": &r.OpenID, "交易类型": &r.TradeType,
		"交易状态": &r.TradeState, "付款银行": &r.BankType, "货币种类": &r.FeeType,
		"微信退款单号": &r.RefundID, "商户退款单号": &r.OutRefundNo, "退款类型": &r.RefundType,
		"退款状态": &r.RefundStatus, "商品名称": &r.Body, "商户数据包": &r.Attach, "费率": &r.FeeRate,
		"退款申请时间": &r.RefundRequestTime, "退款成功时间": &r.RefundSuccessTime,
	}
}

// amounts maps header names to amount fields of a record and their scale
// (decimal places of a yuan per unit: 2 for fen, 5 for 0.001 fen).
func (r *BillRecord) amounts() map[string]scaled {
	return map[string]scaled{
		"应结订单金额": {&r.SettlementTotalFee, 2}, "代金券金额": {&r.CouponFee, 2},
		"退款金额": {&r.RefundFee, 2}, "充值券退款金额": {&r.RechargeCouponRefundFee, 2},
		"订单金额": {&r.TotalFee, 2}, "申请退款金额": {&r.RequestRefundFee, 2},
		"手续费": {&r.ServiceFeeMilliFen, 5},
	}
}

// amounts maps header names to the fields of a summary.
func (s *BillSummary) amounts() map[string]scaled {
	return map[string]scaled{
		"总交易单数": {&s.Count, 0}, "应结订单总金额": {&s.SettlementTotalFee, 2},
		"总交易额": {&s.SettlementTotalFee, 2}, "退款总金额": {&s.RefundFee, 2},
		"总退款金额": {&s.RefundFee, 2}, "充值券退款总金额": {&s.RechargeCouponRefundFee, 2},
		"手续费总金额": {&s.ServiceFeeMilliFen, 5}, "订单总金额": {&s.TotalFee, 2},
		"申请退款总金额": {&s.RequestRefundFee, 2},
	}
}

// scaled is a destination for a decimal amount with its scale.
type scaled struct {
	dst   *int64
	scale int
}

// ParseBill parses a bill in WeChat Pay's text format: UTF-8 (a leading
// BOM is skipped), comma-separated, every data field prefixed with a
// backtick, a header line, the records, a summary header and a summary row.
// Fields are split on ",`", so a comma inside a value (a product name) is
// kept. Any deviation (a row whose width differs from its header, an amount
// that is not an exact decimal or has sub-unit digits, a missing summary) is
// an error wrapping ErrMalformed.
func ParseBill(r io.Reader) (*Bill, error) {
	lines, err := billLines(r)
	if err != nil {
		return nil, err
	}
	if len(lines) < 3 {
		return nil, fmt.Errorf("wxpay: bill of %d lines, want header, summary header and summary: %w", len(lines), ErrMalformed)
	}
	b := &Bill{Header: strings.Split(lines[0], ",")}
	i := 1
	for ; i < len(lines) && strings.HasPrefix(lines[i], "`"); i++ {
		rec, err := parseBillRecord(b.Header, lines[i])
		if err != nil {
			return nil, fmt.Errorf("wxpay: bill line %d: %w", i+1, err)
		}
		b.Records = append(b.Records, rec)
	}
	if len(lines) != i+2 || !strings.HasPrefix(lines[i+1], "`") {
		return nil, fmt.Errorf("wxpay: bill line %d: want a summary header and one summary row at the end: %w", i+1, ErrMalformed)
	}
	b.SummaryHeader = strings.Split(lines[i], ",")
	fields, err := billFields(b.SummaryHeader, lines[i+1])
	if err != nil {
		return nil, fmt.Errorf("wxpay: bill summary: %w", err)
	}
	b.Summary.Fields = fields
	if err := setAmounts(fields, b.Summary.amounts()); err != nil {
		return nil, fmt.Errorf("wxpay: bill summary: %w", err)
	}
	return b, nil
}

// billLines returns the non-empty lines of a bill without BOM and CR.
func billLines(r io.Reader) ([]string, error) {
	cr := &countingReader{r: io.LimitReader(r, MaxBillBytes+1)}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		line := sc.Bytes()
		if len(lines) == 0 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines = append(lines, string(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("wxpay: read bill: %w", err)
	}
	if cr.n > MaxBillBytes {
		return nil, fmt.Errorf("wxpay: bill over %d bytes: %w", MaxBillBytes, ErrBodyTooLarge)
	}
	return lines, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

// Read implements io.Reader.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// billFields splits a data line by its header.
func billFields(header []string, line string) (map[string]string, error) {
	vals := strings.Split(strings.TrimPrefix(line, "`"), ",`")
	if len(vals) != len(header) {
		return nil, fmt.Errorf("%d fields under a header of %d: %w", len(vals), len(header), ErrMalformed)
	}
	m := make(map[string]string, len(header))
	for i, h := range header {
		m[h] = vals[i]
	}
	return m, nil
}

// parseBillRecord types one record line.
func parseBillRecord(header []string, line string) (BillRecord, error) {
	var rec BillRecord
	fields, err := billFields(header, line)
	if err != nil {
		return rec, err
	}
	rec.Fields = fields
	for name, dst := range rec.strings() {
		if v, ok := fields[name]; ok {
			*dst = v
		}
	}
	return rec, setAmounts(fields, rec.amounts())
}

// setAmounts parses the amount columns present in fields.
func setAmounts(fields map[string]string, amounts map[string]scaled) error {
	for name, a := range amounts {
		v, ok := fields[name]
		if !ok {
			continue
		}
		n, err := parseDecimal(v, a.scale)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*a.dst = n
	}
	return nil
}

// ParseYuanFen parses an amount of yuan written with decimals ("0.03",
// "45.0", "-1.5", "12") into exact integer fen. More than two decimals are
// accepted only when the extra ones are zeros; anything else is an error
// wrapping ErrMalformed. An empty string is 0.
func ParseYuanFen(s string) (int64, error) { return parseDecimal(s, 2) }

// parseDecimal parses s, a decimal number, into an integer count of units
// of 10^-scale, refusing non-zero digits past the scale and overflow.
func parseDecimal(s string, scale int) (int64, error) {
	if s == "" {
		return 0, nil
	}
	bad := func() (int64, error) {
		return 0, fmt.Errorf("amount %q is not an exact decimal with %d places: %w", s, scale, ErrMalformed)
	}
	neg := strings.HasPrefix(s, "-")
	intPart, frac, hasDot := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if intPart == "" || hasDot && frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return bad()
	}
	if len(frac) > scale {
		if strings.Trim(frac[scale:], "0") != "" {
			return bad()
		}
		frac = frac[:scale]
	}
	frac += strings.Repeat("0", scale-len(frac))
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n == math.MinInt64 {
		return bad()
	}
	if neg {
		n = -n
	}
	return n, nil
}

// allDigits reports whether s is made of ASCII digits only.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
