package wxpay

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// DecodeV2XML decodes an API v2 body: a root element <xml> whose children
// are flat elements holding text or CDATA. It returns every child, known or
// not, because a signature covers every field received.
//
// It refuses, with an error wrapping ErrMalformed: a DOCTYPE or any other
// directive, comments, processing instructions other than the XML
// declaration, a root other than <xml>, attributes, namespaces, nested
// elements, a repeated element, text outside the children, invalid UTF-8 or
// a non-UTF-8 encoding declaration, and an empty body. A body longer than
// MaxBodyBytes is refused with ErrBodyTooLarge. Values are returned exactly
// as received (not trimmed); the five predefined entities and character
// references are decoded.
func DecodeV2XML(body []byte) (map[string]string, error) {
	m, err := decodeFlatXML(body, "xml")
	if err != nil {
		return nil, fmt.Errorf("wxpay v2: decode xml: %w", err)
	}
	return m, nil
}

// ReadV2XML reads at most MaxBodyBytes+1 bytes from r and decodes them with
// DecodeV2XML, so an oversized body is refused without being read whole.
func ReadV2XML(r io.Reader) (map[string]string, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wxpay v2: read body: %w", err)
	}
	return DecodeV2XML(body)
}

// xmlSpace holds the characters XML counts as white space (U+00A0 and
// U+3000 are not).
const xmlSpace = " \t\r\n"

// malformed returns an error wrapping ErrMalformed for a refusal by the
// flat-XML rules (as opposed to a syntax error reported by encoding/xml).
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decodeFlatXML decodes a document <root><k>v</k>...</root> under the rules
// of DecodeV2XML.
func decodeFlatXML(body []byte, root string) (map[string]string, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%d bytes: %w", len(body), ErrBodyTooLarge)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, malformed("empty body")
	}
	if !utf8.Valid(body) {
		return nil, malformed("invalid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		m        = make(map[string]string)
		depth    int  // 0 outside the root, 1 inside it, 2 inside a child
		done     bool // the root has been closed
		name     string
		value    strings.Builder
		anyToken bool
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		first := !anyToken
		anyToken = true
		switch t := tok.(type) {
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return nil, malformed("processing instruction <?%s?>", t.Target)
			}
		case xml.Directive:
			return nil, malformed("directive <!%.20s> (DOCTYPE and entities are refused)", t)
		case xml.Comment:
			return nil, malformed("comment")
		case xml.CharData:
			if depth == 2 {
				value.Write(t)
			} else if len(bytes.Trim(t, xmlSpace)) != 0 {
				return nil, malformed("text outside a field")
			}
		case xml.StartElement:
			if t.Name.Space != "" || len(t.Attr) != 0 {
				return nil, malformed("namespace or attribute on <%s>", t.Name.Local)
			}
			switch {
			case depth == 0 && done:
				return nil, malformed("second root element <%s>", t.Name.Local)
			case depth == 0 && t.Name.Local != root:
				return nil, malformed("root <%s>, want <%s>", t.Name.Local, root)
			case depth == 1:
				if _, dup := m[t.Name.Local]; dup {
					return nil, malformed("duplicate element <%s>", t.Name.Local)
				}
				name = t.Name.Local
				value.Reset()
			case depth == 2:
				return nil, malformed("nested element <%s> in <%s>", t.Name.Local, name)
			}
			depth++
		case xml.EndElement:
			depth--
			switch depth {
			case 1:
				m[name] = value.String()
			case 0:
				done = true
			}
		}
	}
	if !done {
		return nil, malformed("no <%s> root element", root)
	}
	return m, nil
}

// EncodeV2XML encodes params as an API v2 body: root <xml>, one element per
// parameter in name order with "sign" last, every value in CDATA (a literal
// "]]>" is split across two sections, a CR is written as &#13;). Names must
// be XML names (WeChat Pay's are ASCII identifiers); characters XML cannot carry (control characters,
// invalid UTF-8) are replaced by U+FFFD, so such a value no longer matches
// its signature and the receiver will refuse it.
func EncodeV2XML(params map[string]string) []byte {
	return encodeFlatXML(params, "xml")
}

// encodeFlatXML encodes params under the given root element.
func encodeFlatXML(params map[string]string, root string) []byte {
	names := make([]string, 0, len(params))
	for k := range params {
		if k != "sign" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	if _, ok := params["sign"]; ok {
		names = append(names, "sign")
	}
	var b bytes.Buffer
	b.WriteString("<" + root + ">")
	for _, k := range names {
		b.WriteString("<" + k + ">")
		writeCDATA(&b, params[k])
		b.WriteString("</" + k + ">")
	}
	b.WriteString("</" + root + ">")
	return b.Bytes()
}

// writeCDATA writes s as one or more CDATA sections.
func writeCDATA(b *bytes.Buffer, s string) {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if isXMLChar(r) {
			return r
		}
		return '\uFFFD'
	}, s)
	s = strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>")
	// A parser turns a literal CR into LF, even in CDATA, so a CR (which
	// only a character reference can carry in) goes out as one too.
	s = strings.ReplaceAll(s, "\r", "]]>&#13;<![CDATA[")
	b.WriteString("<![CDATA[")
	b.WriteString(s)
	b.WriteString("]]>")
}

// isXMLChar reports whether r is a character XML 1.0 can carry.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// v2AckSuccess is the exact reply WeChat Pay expects to stop retrying a
// notification.
const v2AckSuccess = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"

// V2NotifyAck returns the reply body to a v2 notification (payment or
// refund). With ok it is exactly the documented success answer and msg is
// ignored; otherwise return_code is FAIL and return_msg is msg, which makes
// WeChat Pay deliver the notification again later.
func V2NotifyAck(ok bool, msg string) []byte {
	if ok {
		return []byte(v2AckSuccess)
	}
	var b bytes.Buffer
	b.WriteString("<xml><return_code><![CDATA[FAIL]]></return_code><return_msg>")
	writeCDATA(&b, msg)
	b.WriteString("</return_msg></xml>")
	return b.Bytes()
}
