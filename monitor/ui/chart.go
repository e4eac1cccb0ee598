package ui

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// point is one value of a series at a time.
type point struct {
	At    time.Time
	Value float64 // milliseconds
}

// series is one line of a chart.
type series struct {
	Name  string
	Class string // CSS class: p50, p90, p99, mean
	Pts   []point
}

// span is a shaded interval (an alert).
type span struct {
	From, To time.Time
	Class    string // critical, warning, info
	Title    string
}

// mark is a vertical line (a change point).
type mark struct {
	At    time.Time
	Title string
}

// band is a horizontal range (the baseline's p50..p99).
type band struct {
	Low, High float64 // milliseconds
	Title     string
}

// chart is everything drawn in one latency chart.
type chart struct {
	From, To time.Time
	Series   []series
	Band     *band
	Spans    []span
	Marks    []mark
}

const (
	chartW, chartH = 720.0, 240.0
	padL, padR     = 56.0, 8.0
	padT, padB     = 8.0, 24.0
)

// svg renders the chart as inline SVG: one <polyline class="series ..."> per
// series, the band as a rect, spans as shaded rects, marks as lines; y is in
// milliseconds from 0 to a rounded maximum. Every text goes through
// template escaping.
func (c *chart) svg() template.HTML {
	maxV := 0.0
	for _, s := range c.Series {
		for _, p := range s.Pts {
			maxV = math.Max(maxV, p.Value)
		}
	}
	if c.Band != nil {
		maxV = math.Max(maxV, c.Band.High*1.1)
	}
	top := niceCeil(maxV)
	span := c.To.Sub(c.From).Seconds()
	x := func(t time.Time) float64 {
		f := t.Sub(c.From).Seconds() / span
		return padL + math.Max(0, math.Min(1, f))*(chartW-padL-padR)
	}
	y := func(v float64) float64 {
		return chartH - padB - (v/top)*(chartH-padT-padB)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="latency chart" preserveAspectRatio="none">`, chartW, chartH)
	// Grid and y labels.
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y(v), chartW-padR, y(v))
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-4, y(v)+4, template.HTMLEscapeString(fmtMS(v)))
	}
	// x labels: start, middle, end.
	for _, f := range []float64{0, 0.5, 1} {
		t := c.From.Add(time.Duration(f * float64(c.To.Sub(c.From))))
		anchor := map[float64]string{0: "start", 0.5: "middle", 1: "end"}[f]
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x(t), chartH-6, anchor,
			template.HTMLEscapeString(t.UTC().Format("Jan 2 15:04")))
	}
	for _, s := range c.Spans {
		x1, x2 := x(s.From), x(s.To)
		fmt.Fprintf(&b, `<rect class="span %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
			template.HTMLEscapeString(s.Class), x1, padT, math.Max(1, x2-x1), chartH-padT-padB, template.HTMLEscapeString(s.Title))
	}
	if c.Band != nil {
		fmt.Fprintf(&b, `<rect class="band" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
			padL, y(c.Band.High), chartW-padL-padR, math.Max(1, y(c.Band.Low)-y(c.Band.High)), template.HTMLEscapeString(c.Band.Title))
	}
	for _, s := range c.Series {
		var pts strings.Builder
		for i, p := range s.Pts {
			if i > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", x(p.At), y(p.Value))
		}
		fmt.Fprintf(&b, `<polyline class="series %s" points="%s"><title>%s</title></polyline>`,
			template.HTMLEscapeString(s.Class), pts.String(), template.HTMLEscapeString(s.Name))
	}
	for _, m := range c.Marks {
		fmt.Fprintf(&b, `<line class="mark" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>%s</title></line>`,
			x(m.At), padT, x(m.At), chartH-padB, template.HTMLEscapeString(m.Title))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text only
}

// sparkline renders one small line of values (no axes).
func sparkline(from, to time.Time, pts []point) template.HTML {
	const w, h = 120.0, 24.0
	if len(pts) == 0 {
		return template.HTML(`<svg class="spark" viewBox="0 0 120 24"></svg>`)
	}
	maxV := 0.0
	for _, p := range pts {
		maxV = math.Max(maxV, p.Value)
	}
	if maxV == 0 {
		maxV = 1
	}
	span := to.Sub(from).Seconds()
	var b strings.Builder
	b.WriteString(`<svg class="spark" viewBox="0 0 120 24" preserveAspectRatio="none"><polyline class="series mean" points="`)
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fx := math.Max(0, math.Min(1, p.At.Sub(from).Seconds()/span))
		fmt.Fprintf(&b, "%.1f,%.1f", fx*w, h-1-(p.Value/maxV)*(h-2))
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers only
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1 ms).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtMS formats milliseconds for axes and tables.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.2f ms", v)
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	case v < 10000:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f s", v/1000)
	}
}
