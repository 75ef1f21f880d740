package web

import (
	"io/fs"
	"regexp"
	"testing"
	"time"

	"tollgate"
)

func TestMessagesHaveBothLanguages(t *testing.T) {
	for k := range messages[langEN] {
		if messages[langZH][k] == "" {
			t.Errorf("%q has no Chinese text", k)
		}
	}
	for k := range messages[langZH] {
		if messages[langEN][k] == "" {
			t.Errorf("%q has no English text", k)
		}
	}
}

// TestEveryTextIsTranslated finds the keys the templates (.T "key") and
// the checkout script (M["key"], M.key) use: each has both languages.
func TestEveryTextIsTranslated(t *testing.T) {
	uses := map[string]bool{}
	js, err := assetFS.ReadFile("assets/checkout.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\bM(?:\["([a-z0-9.]+)"\]|\.([a-z]+)\b)`).FindAllStringSubmatch(string(js), -1) {
		uses[m[1]+m[2]] = true
	}
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range files {
		b, _ := templateFS.ReadFile(f)
		for _, m := range regexp.MustCompile(`\.T "([a-z0-9.]+)"`).FindAllStringSubmatch(string(b), -1) {
			uses[m[1]] = true
		}
	}
	for _, k := range []string{"wechat.nooauth", "retry.checkout", "show.qr"} {
		uses[k] = true // used from Go
	}
	for _, s := range []string{"state", "code", "upstream", "off"} {
		uses["err.oauth."+s+".title"], uses["err.oauth."+s+".body"] = true, true
	}
	if len(uses) < 60 {
		t.Fatalf("found only %d keys: the patterns no longer match", len(uses))
	}
	for k := range uses {
		if messages[langEN][k] == "" || messages[langZH][k] == "" {
			t.Errorf("%q is used but not translated in both languages", k)
		}
	}
}

func TestAcceptLang(t *testing.T) {
	for in, want := range map[string]string{
		"":                        langEN,
		"zh":                      langZH,
		"zh-Hans-CN":              langZH,
		"en-GB,zh;q=0.9":          langEN,
		"fr,zh-TW;q=0.3,en;q=0.2": langZH,
		"en;q=0.1,zh;q=bogus":     langEN,
		"ZH-cn":                   langZH,
		"de":                      langEN,
	} {
		if got := acceptLang(in); got != want {
			t.Errorf("acceptLang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		n          int64
		en, zh, gd string
	}{
		{0, "0", "0", "0"},
		{999, "999", "999", "999"},
		{1_400_000, "1.4M", "140万", "1,400,000"},
		{30_000_000, "30M", "3000万", "30,000,000"},
		{250_000, "250K", "25万", "250,000"},
		{120_000_000, "120M", "1.2亿", "120,000,000"},
		{114_285_714, "114M", "1.1亿", "114,285,714"},
		{5_333_333, "5.3M", "533万", "5,333,333"},
	} {
		if en, zh, gd := compact(c.n, langEN), compact(c.n, langZH), groupDigits(c.n); en != c.en || zh != c.zh || gd != c.gd {
			t.Errorf("%d: %q %q %q", c.n, en, zh, gd)
		}
	}
	if got := tokensFor(1_400_000, ModelPrice{Input: 150_000, Output: 600_000}); got != 5_333_333 {
		t.Errorf("tokensFor = %d", got)
	}
	if got := tokensFor(100, ModelPrice{}); got != 0 {
		t.Errorf("tokensFor unpriced = %d", got)
	}
}

func TestChart(t *testing.T) {
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC) // 04:00 on the 28th in CST
	usage := []Usage{
		{Model: "a", Credits: 100, CreatedAt: now},
		{Model: "a", Credits: 50, CreatedAt: now.Add(-time.Hour)},
		{Model: "b", Credits: 30, CreatedAt: now.AddDate(0, 0, -29)},
		{Model: "b", Credits: 999, CreatedAt: now.AddDate(0, 0, -30)}, // outside the window
	}
	c := buildChart(usage, now, tollgate.Beijing, langEN, "other")
	if len(c.Bars) != 2 || c.Empty || len(c.Legend) != 2 || c.Legend[0].Label != "a" {
		t.Fatalf("%+v", c)
	}
	last := c.Bars[1]
	if last.H != c.Bottom-c.Top-(c.Bottom-c.Top)*50/200 && last.Title != "2026-11-28 · a · 150" {
		t.Fatalf("bar %+v", last)
	}
	if c.Bars[1].Title != "2026-11-28 · a · 150" {
		t.Fatalf("bar %+v", c.Bars[1])
	}
	for _, tk := range c.YTicks {
		if tk.Pos < c.Top || tk.Pos > c.Bottom {
			t.Fatalf("tick %+v outside the plot", tk)
		}
	}
	if niceCeil(150) != 160 || niceCeil(110_000) != 120_000 || niceCeil(7) != 8 || niceCeil(0) != 4 || niceCeil(1_000_001) != 1_200_000 || niceCeil(9) != 10 {
		t.Fatal("niceCeil")
	}
	if e := buildChart(nil, now, tollgate.Beijing, langEN, "other"); !e.Empty || len(e.Bars) != 0 {
		t.Fatal("empty chart")
	}
}
