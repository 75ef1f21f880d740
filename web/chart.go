package web

import (
	"sort"
	"time"
)

// chartDays is how many days the usage chart covers, today included.
const chartDays = 30

// chartModels is how many models get their own colour; the rest are
// "other".
const chartModels = 5

// palette colours the models, then "other" (grey).
var palette = []string{"#07c160", "#1677ff", "#fa8c16", "#eb2f96", "#722ed1", "#8c8c8c"}

// Chart is a stacked bar chart of credits spent per day and model, laid
// out on the server and drawn as SVG by the account template.
type Chart struct {
	Width, Height int
	// Plot area.
	Left, Top, Right, Bottom int
	Bars                     []Bar
	YTicks                   []Tick
	XTicks                   []Tick
	Legend                   []LegendItem
	Empty                    bool
}

// Bar is one segment of a day's stack.
type Bar struct {
	X, Y, W, H int
	Color      string
	Title      string // tooltip: day, model, credits
}

// Tick is an axis label at a position.
type Tick struct {
	Pos   int
	Label string
}

// LegendItem names a colour.
type LegendItem struct {
	Color, Label, Total string
}

// buildChart lays out usage from the chartDays days ending on now's day
// (days in loc). otherLabel names the models past chartModels.
func buildChart(usage []Usage, now time.Time, loc *time.Location, lang, otherLabel string) Chart {
	c := Chart{Width: 720, Height: 260, Left: 64, Top: 12, Right: 708, Bottom: 228}
	today := dayStart(now, loc)
	first := today.AddDate(0, 0, -(chartDays - 1))
	perDay := make([]map[string]int64, chartDays)
	totals := map[string]int64{}
	for _, u := range usage {
		d := dayIndex(first, u.CreatedAt.In(loc))
		if d < 0 || d >= chartDays || u.Credits <= 0 {
			continue
		}
		if perDay[d] == nil {
			perDay[d] = map[string]int64{}
		}
		perDay[d][u.Model] += int64(u.Credits)
		totals[u.Model] += int64(u.Credits)
	}
	series := topModels(totals, otherLabel)
	var max int64
	for _, m := range perDay {
		var sum int64
		for _, v := range m {
			sum += v
		}
		max = maxInt(max, sum)
	}
	c.Empty = max == 0
	top := niceCeil(max)
	plotH := c.Bottom - c.Top
	for i := 0; i <= 4; i++ {
		v := top * int64(i) / 4
		c.YTicks = append(c.YTicks, Tick{Pos: c.Bottom - int(int64(plotH)*int64(i)/4), Label: compact(v, lang)})
	}
	slot := (c.Right - c.Left) / chartDays
	for d := 0; d < chartDays; d++ {
		day := first.AddDate(0, 0, d)
		x := c.Left + d*slot
		if d%5 == 4 || d == 0 {
			c.XTicks = append(c.XTicks, Tick{Pos: x + slot/2, Label: day.Format("01-02")})
		}
		y := c.Bottom
		for _, s := range series {
			v := s.of(perDay[d])
			if v == 0 {
				continue
			}
			h := int(int64(plotH) * v / top)
			if h < 1 {
				h = 1
			}
			y -= h
			c.Bars = append(c.Bars, Bar{X: x + 2, Y: y, W: slot - 4, H: h, Color: s.color,
				Title: day.Format("2006-01-02") + " · " + s.label + " · " + groupDigits(v)})
		}
	}
	for _, s := range series {
		c.Legend = append(c.Legend, LegendItem{Color: s.color, Label: s.label, Total: compact(s.total, lang)})
	}
	return c
}

// series is one coloured stack layer: a model, or every model of "other".
type series struct {
	label, color string
	models       map[string]bool // nil: every model not named elsewhere
	named        map[string]bool
	total        int64
}

func (s series) of(day map[string]int64) int64 {
	var v int64
	for m, n := range day {
		if (s.models != nil && s.models[m]) || (s.models == nil && !s.named[m]) {
			v += n
		}
	}
	return v
}

// topModels returns the chartModels biggest models by total, then one
// "other" series for the rest, if any.
func topModels(totals map[string]int64, otherLabel string) []series {
	names := make([]string, 0, len(totals))
	for m := range totals {
		names = append(names, m)
	}
	sort.Slice(names, func(i, j int) bool {
		if totals[names[i]] != totals[names[j]] {
			return totals[names[i]] > totals[names[j]]
		}
		return names[i] < names[j]
	})
	var out []series
	named := map[string]bool{}
	for i, m := range names {
		if i == chartModels {
			break
		}
		named[m] = true
		out = append(out, series{label: m, color: palette[i], models: map[string]bool{m: true}, total: totals[m]})
	}
	if len(names) > chartModels {
		var rest int64
		for _, m := range names[chartModels:] {
			rest += totals[m]
		}
		out = append(out, series{label: otherLabel, color: palette[len(palette)-1], named: named, total: rest})
	}
	return out
}

func dayStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// dayIndex is the number of calendar days from first to t's day.
func dayIndex(first, t time.Time) int {
	d := dayStart(t, first.Location())
	// Calendar arithmetic, not hours/24: a zone with DST would skew it.
	y1, m1, d1 := first.Date()
	y2, m2, d2 := d.Date()
	a := time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)
	b := time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a).Hours() / 24)
}

// niceCeil rounds v up to a round axis top: 1, 1.2, 1.5, 1.6, 2, 2.5, 3, 4, 5,
// 6 or 8 times a power of ten, divisible by 4 so the four ticks are whole
// numbers (at least 4).
func niceCeil(v int64) int64 {
	if v <= 4 {
		return 4
	}
	p := int64(1)
	for p*10 < v {
		p *= 10
	}
	for _, m := range []int64{10, 12, 15, 16, 20, 25, 30, 40, 50, 60, 80, 100} {
		top := p * m
		if top%40 == 0 && top/10 >= v {
			return top / 10
		}
	}
	return p * 10
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
