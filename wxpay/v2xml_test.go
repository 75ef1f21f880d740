package wxpay_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/wxpay"
)

func TestDecodeV2XMLAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string]string
	}{
		{"cdata and bare number", `<xml><a><![CDATA[x y]]></a><total_fee>1</total_fee></xml>`,
			map[string]string{"a": "x y", "total_fee": "1"}},
		{"declaration and newlines", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n<return_code><![CDATA[FAIL]]></return_code>\n<return_msg><![CDATA[签名错误]]></return_msg>\n</xml>\n",
			map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}},
		{"empty elements", `<xml><a></a><b/><c><![CDATA[]]></c></xml>`,
			map[string]string{"a": "", "b": "", "c": ""}},
		{"predefined entities", `<xml><a>&lt;&amp;&gt;&#20013;</a></xml>`,
			map[string]string{"a": "<&>中"}},
		{"split cdata", `<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>`,
			map[string]string{"a": "x]]>y"}},
		{"value kept untrimmed", `<xml><a> x </a></xml>`,
			map[string]string{"a": " x "}},
		{"unknown fields kept", `<xml><new_field_2030>v</new_field_2030></xml>`,
			map[string]string{"new_field_2030": "v"}},
		{"empty root", `<xml></xml>`, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wxpay.DecodeV2XML([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecodeV2XMLRefuses(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", ``, wxpay.ErrMalformed},
		{"blank", " \n ", wxpay.ErrMalformed},
		{"not xml", `return_code=SUCCESS`, wxpay.ErrMalformed},
		{"json", `{"return_code":"SUCCESS"}`, wxpay.ErrMalformed},
		{"wrong root", `<root><a>1</a></root>`, wxpay.ErrMalformed},
		{"xxe doctype", `<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><a>&xxe;</a></xml>`, wxpay.ErrMalformed},
		{"doctype without entity", `<!DOCTYPE xml><xml><a>1</a></xml>`, wxpay.ErrMalformed},
		{"entity expansion", `<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><xml><a>&b;</a></xml>`, wxpay.ErrMalformed},
		{"undefined entity", `<xml><a>&xxe;</a></xml>`, wxpay.ErrMalformed},
		{"duplicate element", `<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>`, wxpay.ErrMalformed},
		{"duplicate sign", `<xml><sign>A</sign><a>1</a><sign>B</sign></xml>`, wxpay.ErrMalformed},
		{"nested element", `<xml><a><b>1</b></a></xml>`, wxpay.ErrMalformed},
		{"element injection", `<xml><attach>x</attach><total_fee>1<total_fee>2</total_fee></total_fee></xml>`, wxpay.ErrMalformed},
		{"text in root", `<xml>hello<a>1</a></xml>`, wxpay.ErrMalformed},
		{"non-XML space in root", "<xml>\u3000<a>1</a></xml>", wxpay.ErrMalformed},
		{"bom", "\uFEFF<xml><a>1</a></xml>", wxpay.ErrMalformed},
		{"attribute", `<xml><a x="1">1</a></xml>`, wxpay.ErrMalformed},
		{"namespace", `<xml xmlns:p="u"><p:a>1</p:a></xml>`, wxpay.ErrMalformed},
		{"comment", `<xml><a>1<!-- x -->2</a></xml>`, wxpay.ErrMalformed},
		{"processing instruction", `<xml><?php echo 1 ?><a>1</a></xml>`, wxpay.ErrMalformed},
		{"second root", `<xml><a>1</a></xml><xml><a>2</a></xml>`, wxpay.ErrMalformed},
		{"trailing text", `<xml><a>1</a></xml>junk`, wxpay.ErrMalformed},
		{"unclosed", `<xml><a>1</a>`, wxpay.ErrMalformed},
		{"mismatched tags", `<xml><a>1</b></xml>`, wxpay.ErrMalformed},
		{"invalid utf-8", "<xml><a>\xff\xfe</a></xml>", wxpay.ErrMalformed},
		{"invalid utf-8 in cdata", "<xml><a><![CDATA[\xc3\x28]]></a></xml>", wxpay.ErrMalformed},
		{"gbk declaration", `<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>`, wxpay.ErrMalformed},
		{"control character", "<xml><a>\x01</a></xml>", wxpay.ErrMalformed},
		{"oversized", "<xml><a>" + strings.Repeat("x", wxpay.MaxBodyBytes) + "</a></xml>", wxpay.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := wxpay.DecodeV2XML([]byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v (map %v), want %v", err, m, tt.want)
			}
			if m != nil {
				t.Errorf("a refused body still returned %v", m)
			}
		})
	}
}

func TestReadV2XMLStopsAtLimit(t *testing.T) {
	// An endless body must be refused after MaxBodyBytes+1 bytes.
	r := &endless{}
	if _, err := wxpay.ReadV2XML(r); !errors.Is(err, wxpay.ErrBodyTooLarge) {
		t.Fatalf("err = %v, want ErrBodyTooLarge", err)
	}
	if r.n > wxpay.MaxBodyBytes+4096 {
		t.Errorf("read %d bytes, want at most about %d", r.n, wxpay.MaxBodyBytes+1)
	}
	m, err := wxpay.ReadV2XML(strings.NewReader(`<xml><a>1</a></xml>`))
	if err != nil || m["a"] != "1" {
		t.Errorf("ReadV2XML = %v, %v", m, err)
	}
}

// endless is a reader that never ends and counts what was read from it.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += len(p)
	return len(p), nil
}

func TestEncodeV2XML(t *testing.T) {
	params := map[string]string{
		"sign": "ABC", "b": "2", "a": "x]]>y", "c": "<&>", "d": "", "e": "1\r\n2",
	}
	got := string(wxpay.EncodeV2XML(params))
	want := `<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a><b><![CDATA[2]]></b><c><![CDATA[<&>]]></c><d><![CDATA[]]></d>` +
		`<e><![CDATA[1]]>&#13;<![CDATA[` + "\n" + `2]]></e><sign><![CDATA[ABC]]></sign></xml>`
	if got != want {
		t.Errorf("EncodeV2XML =\n%s\nwant\n%s", got, want)
	}
	back, err := wxpay.DecodeV2XML([]byte(got))
	if err != nil || !maps.Equal(back, params) {
		t.Errorf("round trip = %v, %v", back, err)
	}
}

func TestEncodeV2XMLOfficialRequest(t *testing.T) {
	// The V2-1 request, encoded and signed, decodes to what was signed and
	// still verifies: what the client sends is what the emulator checks.
	var v signVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "sign_v2-1_official.json"), &v)
	p := maps.Clone(v.Params)
	p["sign"] = v.MD5
	m, err := wxpay.DecodeV2XML(wxpay.EncodeV2XML(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := wxpay.VerifyV2(m, wxpay.SignTypeMD5, v.Key); err != nil {
		t.Error(err)
	}
}

func TestV2NotifyAck(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ok     bool
		msg    string
		golden string
	}{
		{"success", true, "ignored", "ack_success.xml"},
		{"fail", false, "签名失败", "ack_fail.xml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "v2", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			got := wxpay.V2NotifyAck(tt.ok, tt.msg)
			if !bytes.Equal(got, bytes.TrimRight(want, "\n")) {
				t.Errorf("V2NotifyAck = %s\nwant %s", got, want)
			}
		})
	}
}

func BenchmarkDecodeV2XML(b *testing.B) {
	body := MustReadFile(b, "notify_v2-2_md5.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wxpay.DecodeV2XML(body); err != nil {
			b.Fatal(err)
		}
	}
}
