package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// Decimal is an exact non-negative decimal number such as "7.1234", read
// from a JSON string or number without ever passing through a float. The
// zero value is zero.
type Decimal struct {
	text string
	r    *big.Rat
}

var (
	plainDecimal = regexp.MustCompile(`^[0-9]{1,18}(\.[0-9]{1,18})?$`)
	expDecimal   = regexp.MustCompile(`^[0-9]{1,18}(\.[0-9]{1,18})?([eE][+-]?[0-9]{1,2})?$`)
)

// ParseDecimal parses a plain decimal: digits, optionally a point and more
// digits (at most 18 on each side); no sign, exponent or fraction syntax.
func ParseDecimal(s string) (Decimal, error) { return parseDecimal(s, false) }

// parseDecimal parses s; allowExp also accepts a two-digit exponent, as
// JSON numbers from a rate feed may carry one.
func parseDecimal(s string, allowExp bool) (Decimal, error) {
	re := plainDecimal
	if allowExp {
		re = expDecimal
	}
	if !re.MatchString(s) {
		return Decimal{}, fmt.Errorf("%q is not a non-negative decimal number", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return Decimal{}, fmt.Errorf("%q is not a decimal number", s)
	}
	return Decimal{text: s, r: r}, nil
}

// MustDecimal is ParseDecimal for constants; it panics on a bad literal.
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DecimalOf returns r (non-negative) as a Decimal, written as r's exact
// fraction when r has no finite decimal form ("1000000/3"). It is for
// values computed from configuration, such as a credit's price derived
// from credits per CNY.
func DecimalOf(r *big.Rat) Decimal {
	r = new(big.Rat).Abs(r)
	text := r.RatString()
	if d, err := ParseDecimal(r.FloatString(18)); err == nil && d.r.Cmp(r) == 0 {
		text = strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	}
	return Decimal{text: text, r: r}
}

// Rat returns d as a new big.Rat the caller may modify.
func (d Decimal) Rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Set(d.r)
}

// Sign returns 0 if d is zero and 1 otherwise (d is never negative).
func (d Decimal) Sign() int {
	if d.r == nil {
		return 0
	}
	return d.r.Sign()
}

// String returns d as it was written, or "0" for the zero value.
func (d Decimal) String() string {
	if d.r == nil {
		return "0"
	}
	return d.text
}

// UnmarshalJSON accepts a JSON string ("0.15") or number (0.15).
func (d *Decimal) UnmarshalJSON(b []byte) error {
	v, err := decodeDecimal(b, false)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a JSON string, so no reader turns it into a float.
func (d Decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func decodeDecimal(b []byte, allowExp bool) (Decimal, error) {
	b = bytes.TrimSpace(b)
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return Decimal{}, fmt.Errorf("decimal: %w", err)
		}
	}
	return parseDecimal(s, allowExp)
}

// ceil returns the smallest integer >= r, for r >= 0.
func ceil(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// roundHalfUp rounds r >= 0 to the nearest integer, halves up:
// floor(r + 1/2) = floor((2·num + den) / (2·den)).
func roundHalfUp(r *big.Rat) *big.Int {
	num := new(big.Int).Lsh(r.Num(), 1)
	num.Add(num, r.Denom())
	return num.Quo(num, new(big.Int).Lsh(r.Denom(), 1))
}
