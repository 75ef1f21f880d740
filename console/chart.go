package console

import (
	"strconv"
	"time"

	"tollgate"
	"tollgate/httpapi"
	"tollgate/payment"
)

// chart is a bar chart of credits per day laid out on the server and
// drawn as SVG by the usage template (like the account page's, web/chart.go).
type chart struct {
	Width, Height, Left, Top, Right, Bottom int
	Bars                                    []bar
	YTicks, XTicks                          []tick
}

type bar struct {
	X, Y, W, H int
	Title      string
	Fill       string // "" for the usage chart's blue
}

type tick struct {
	Pos   int
	Label string
}

// dayChart lays out the days of the usage report (oldest first as the API
// gives them); nil when there is nothing to draw.
func dayChart(days []httpapi.UsageGroupView) *chart {
	if len(days) == 0 {
		return nil
	}
	days = fillDays(days)
	c := &chart{Width: 720, Height: 240, Left: 70, Top: 10, Right: 710, Bottom: 210}
	var top0 int64 = 1
	for _, d := range days {
		if int64(d.Credits) > top0 {
			top0 = int64(d.Credits)
		}
	}
	step := niceStep(top0 / 4)
	top := ((top0 + step - 1) / step) * step
	h := c.Bottom - c.Top
	slot := (c.Right - c.Left) / len(days)
	if slot < 1 {
		slot = 1
	}
	w := min(max(slot*7/10, 1), 32)
	for i, d := range days {
		bh := int(int64(h) * int64(d.Credits) / top)
		x := c.Left + i*slot + (slot-w)/2
		c.Bars = append(c.Bars, bar{X: x, Y: c.Bottom - bh, W: w, H: bh, Title: d.Day + ": " + group(int64(d.Credits))})
		if i == 0 || i == len(days)-1 || (len(days) > 2 && i == len(days)/2) {
			c.XTicks = append(c.XTicks, tick{Pos: x + w/2, Label: d.Day})
		}
	}
	for v := int64(0); v <= top; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: c.Bottom - int(int64(h)*v/top), Label: group(v)})
	}
	return c
}

// fillDays puts the days without usage between the report's first and
// last (the API lists only days with some) as zero, so the bars keep the
// calendar's spacing; a report of other shapes is left alone.
func fillDays(days []httpapi.UsageGroupView) []httpapi.UsageGroupView {
	first, err1 := time.Parse(time.DateOnly, days[0].Day)
	last, err2 := time.Parse(time.DateOnly, days[len(days)-1].Day)
	if err1 != nil || err2 != nil || last.Before(first) || last.Sub(first) > 400*24*time.Hour {
		return days
	}
	have := map[string]httpapi.UsageGroupView{}
	for _, d := range days {
		have[d.Day] = d
	}
	var out []httpapi.UsageGroupView
	for t := first; !t.After(last); t = t.AddDate(0, 0, 1) {
		k := t.Format(time.DateOnly)
		d, ok := have[k]
		if !ok {
			d = httpapi.UsageGroupView{Day: k}
		}
		out = append(out, d)
	}
	return out
}

// niceStep rounds n up to 1, 2 or 5 times a power of ten.
func niceStep(n int64) int64 {
	if n < 1 {
		return 1
	}
	p := int64(1)
	for p*10 <= n {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// Colours of the hourly chart's bars.
const (
	paidFill   = "#52c41a"
	failedFill = "#f5222d"
)

// hourChart lays out the orders of the 24 hours from from (Beijing time
// on the axis): per hour a green bar of paid orders beside a red one of
// failed ones (refused placements among them); nil when no order was
// placed in them.
func hourChart(hours []payment.OrderHour, from time.Time, paidLabel, failedLabel, refusedLabel string) *chart {
	if len(hours) == 0 {
		return nil
	}
	const n = 24
	slots := make([]payment.OrderHour, n)
	var top0 int64 = 1
	for _, h := range hours {
		i := int(h.Hour.Sub(from) / time.Hour)
		if i < 0 || i >= n {
			continue
		}
		slots[i] = h
		top0 = max(top0, h.Paid, h.Failed)
	}
	c := &chart{Width: 720, Height: 240, Left: 50, Top: 10, Right: 710, Bottom: 210}
	step := niceStep((top0 + 3) / 4)
	top := ((top0 + step - 1) / step) * step
	h := c.Bottom - c.Top
	slot := (c.Right - c.Left) / n
	w := max(slot*4/10, 1)
	for i, s := range slots {
		at := from.Add(time.Duration(i) * time.Hour).In(tollgate.Beijing)
		label := at.Format("15:00")
		x := c.Left + i*slot + (slot-2*w)/2
		ph := int(int64(h) * s.Paid / top)
		fh := int(int64(h) * s.Failed / top)
		c.Bars = append(c.Bars,
			bar{X: x, Y: c.Bottom - ph, W: w, H: ph, Fill: paidFill, Title: label + " " + paidLabel + ": " + strconv.FormatInt(s.Paid, 10)},
			bar{X: x + w, Y: c.Bottom - fh, W: w, H: fh, Fill: failedFill,
				Title: label + " " + failedLabel + ": " + strconv.FormatInt(s.Failed, 10) + " (" + refusedLabel + ": " + strconv.FormatInt(s.Refused, 10) + ")"})
		if i%6 == 0 || i == n-1 {
			c.XTicks = append(c.XTicks, tick{Pos: x + w, Label: label})
		}
	}
	for v := int64(0); v <= top; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: c.Bottom - int(int64(h)*v/top), Label: group(v)})
	}
	return c
}
