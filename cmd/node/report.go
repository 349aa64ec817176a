package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/actormesh/actormesh/testkit"
)

// reportParam is one parameter of a run: a flag of node sim and its value, in flag syntax.
type reportParam struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// reportData is the raw data of the report's charts, embedded in the page as JSON (script#report-data).
type reportData struct {
	Params []reportParam `json:"params"`
	// Figures is the object node sim --json prints.
	Figures testkit.BroadcastReport `json:"figures"`
	// DelayCDF holds the points of the delay chart: [delay ms, share of deliveries at most that late].
	DelayCDF [][2]float64 `json:"delay_cdf"`
	// DelayCount is the number of deliveries DelayCDF is drawn from (at most testkit.MaxDelaySample points).
	DelayCount int `json:"delay_count"`
	// Hops holds the bars of the hop histogram, [hops, deliveries], by hop count.
	Hops [][2]int `json:"hops"`
	// Messages holds each message's publication and delivery delays, as testkit measured them.
	Messages []testkit.MessageDetail `json:"messages"`
}

// reportPage is what the page template renders.
type reportPage struct {
	Title     string
	Command   string
	MaxSample int // testkit.MaxDelaySample
	Summary   [][2]string
	Params    []reportParam
	CDF       chart
	Hops      chart
	Delivery  chart
	Figures   string          // the --json object, indented
	Data      json.RawMessage // reportData
}

// writeHTMLReport writes one self-contained HTML page about a broadcast run: the delay CDF, the hop histogram,
// each message's delivery over time (inline SVG, no scripts), the run's parameters and its figures. The charts'
// data is also embedded as JSON in <script type="application/json" id="report-data">.
func writeHTMLReport(w io.Writer, rep testkit.BroadcastReport, params []reportParam) error {
	figures, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report figures: %w", err)
	}
	d := rep.Detail
	if d == nil {
		d = &testkit.BroadcastDetail{}
	}
	data := reportData{Params: params, Figures: rep, DelayCount: d.DelayCount, DelayCDF: [][2]float64{},
		Hops: [][2]int{}, Messages: d.Messages}
	if data.Params == nil {
		data.Params = []reportParam{}
	}
	if data.Messages == nil {
		data.Messages = []testkit.MessageDetail{}
	}
	for i, v := range d.Delays {
		data.DelayCDF = append(data.DelayCDF, [2]float64{v, float64(d.DelayRank(i)+1) / float64(max(d.DelayCount, 1))})
	}
	for _, h := range slices.Sorted(maps.Keys(d.Hops)) {
		data.Hops = append(data.Hops, [2]int{h, d.Hops[h]})
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("report data: %w", err)
	}
	cmdLine := []string{"node sim"}
	for _, p := range params {
		cmdLine = append(cmdLine, "-"+p.Name, p.Value)
	}
	page := reportPage{
		Title: fmt.Sprintf("actormesh broadcast: %d nodes, degree %d, %d x %d B messages", rep.N, rep.Degree,
			rep.Messages, rep.Size),
		Command:   strings.Join(cmdLine, " "),
		MaxSample: testkit.MaxDelaySample,
		Summary:   broadcastRows(rep),
		Params:    params,
		CDF:       cdfChart(data.DelayCDF, d.DelayCount),
		Hops:      hopChart(data.Hops),
		Delivery:  deliveryChart(data.Messages),
		Figures:   string(figures),
		Data:      raw,
	}
	return reportTmpl.Execute(w, page)
}

// Chart geometry, in SVG user units: the plot area is inset by the margins.
const (
	chartW, chartH                 = 720, 360
	marginL, marginR               = 70, 20
	marginT, marginB               = 16, 50
	plotX0, plotX1, plotY0, plotY1 = marginL, chartW - marginR, chartH - marginB, marginT // Y0 is the bottom
	maxLinePoints                  = 250                                                  // deliveries drawn per message line
)

// chart is one SVG chart ready to print: every coordinate is already in SVG units.
type chart struct {
	ID, Title, XLabel, YLabel string
	// NoData replaces the plot with a note.
	NoData         bool
	XTicks, YTicks []tick
	Lines          []polyline
	Bars           []bar
}

// Geometry the template reads.
func (chart) W() int          { return chartW }
func (chart) H() int          { return chartH }
func (chart) X0() int         { return plotX0 }
func (chart) X1() int         { return plotX1 }
func (chart) Y0() int         { return plotY0 }
func (chart) Y1() int         { return plotY1 }
func (chart) PlotW() int      { return plotX1 - plotX0 }
func (chart) PlotH() int      { return plotY0 - plotY1 }
func (chart) MidX() int       { return (plotX0 + plotX1) / 2 }
func (chart) MidY() int       { return (plotY0 + plotY1) / 2 }
func (chart) XLabelY() int    { return chartH - 10 }
func (chart) YLabelX() int    { return 18 }
func (chart) TickLabelY() int { return plotY0 + 18 }

// tick is an axis tick: its position along the axis and its label.
type tick struct {
	Pos   string
	Label string
}

// polyline is one line of a chart with a tooltip.
type polyline struct {
	Points, Color, Title string
}

// bar is one bar of a histogram with its count printed above it.
type bar struct {
	X, Y, W, H, LabelX, LabelY string
	Count                      int
	Title                      string
}

// linear maps [0, max] to pixels [lo, hi].
type linear struct{ max, lo, hi float64 }

func (s linear) px(v float64) float64 { return s.lo + (s.hi-s.lo)*min(max(v, 0), s.max)/s.max }

// num formats a coordinate.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceTicks returns ticks 0, step, 2*step, ... up to the first at or beyond top, with step 1, 2, 2.5 or 5 times a
// power of ten, about five of them; integer steps only when whole is set.
func niceTicks(top float64, whole bool) []float64 {
	if !(top > 0) || math.IsInf(top, 0) {
		top = 1
	}
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if whole {
		step = math.Max(1, math.Round(step))
	}
	n := int(math.Ceil(top/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		ticks[i] = float64(i) * step
	}
	return ticks
}

// tickLabel prints a tick value without float noise (0.30000000000000004).
func tickLabel(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// axisTicks places ticks on an axis.
func axisTicks(values []float64, s linear) []tick {
	out := make([]tick, len(values))
	for i, v := range values {
		out[i] = tick{Pos: num(s.px(v)), Label: tickLabel(v)}
	}
	return out
}

// shareTicks are the ticks of a 0..1 axis.
var shareTicks = []float64{0, 0.25, 0.5, 0.75, 1}

// cdfChart plots the share of deliveries against their delay: one point per sample value, drawn from count
// deliveries.
func cdfChart(points [][2]float64, count int) chart {
	c := chart{ID: "delay-cdf", Title: "Propagation delay CDF", XLabel: "delay since publication (ms)",
		YLabel: "share of deliveries"}
	if len(points) == 0 {
		c.NoData = true
		return c
	}
	xt := niceTicks(points[len(points)-1][0], false)
	xs := linear{xt[len(xt)-1], plotX0, plotX1}
	ys := linear{1, plotY0, plotY1}
	c.XTicks, c.YTicks = axisTicks(xt, xs), axisTicks(shareTicks, ys)
	var b strings.Builder
	for i, p := range points {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(num(xs.px(p[0])) + "," + num(ys.px(p[1])))
	}
	title := fmt.Sprintf("%d deliveries", count)
	if len(points) < count {
		title = fmt.Sprintf("%d of %d deliveries, evenly spaced by delay rank", len(points), count)
	}
	c.Lines = []polyline{{Points: b.String(), Color: "#1f5fa8", Title: title}}
	return c
}

// hopChart draws a bar per hop count present, on a category axis from the least to the most hops.
func hopChart(buckets [][2]int) chart {
	c := chart{ID: "hops", Title: "Hop-count histogram", XLabel: "hops from the publisher", YLabel: "deliveries"}
	if len(buckets) == 0 {
		c.NoData = true
		return c
	}
	lo, hi, most := buckets[0][0], buckets[len(buckets)-1][0], 0
	for _, b := range buckets {
		most = max(most, b[1])
	}
	yt := niceTicks(float64(most), true)
	ys := linear{yt[len(yt)-1], plotY0, plotY1}
	c.YTicks = axisTicks(yt, ys)
	band := float64(plotX1-plotX0) / float64(hi-lo+1)
	for h := lo; h <= hi; h += (hi-lo)/20 + 1 { // at most about 20 labels
		c.XTicks = append(c.XTicks, tick{Pos: num(plotX0 + band*(float64(h-lo)+0.5)), Label: strconv.Itoa(h)})
	}
	for _, b := range buckets {
		x := plotX0 + band*(float64(b[0]-lo)+0.15)
		y := ys.px(float64(b[1]))
		c.Bars = append(c.Bars, bar{X: num(x), Y: num(y), W: num(band * 0.7), H: num(plotY0 - y),
			LabelX: num(x + band*0.35), LabelY: num(y - 4), Count: b[1],
			Title: fmt.Sprintf("%d hop(s): %d deliveries", b[0], b[1])})
	}
	return c
}

// deliveryChart draws one step line per message: the share of its receivers reached against the time since it was
// published, coloured from blue (first published) to red (last). A line has two points per delivery after its
// start (0, 0); past maxLinePoints deliveries, it is thinned to that many (evenly by rank, the first and last
// kept). The embedded JSON keeps every delay.
func deliveryChart(msgs []testkit.MessageDetail) chart {
	c := chart{ID: "delivery", Title: "Delivery of each message over time", XLabel: "time since publication (ms)",
		YLabel: "share of receivers reached"}
	top, some := 0.0, false
	for _, m := range msgs {
		if m.Published && m.Expected > 0 && len(m.Delays) > 0 {
			top, some = max(top, m.Delays[len(m.Delays)-1]), true
		}
	}
	if !some {
		c.NoData = true
		return c
	}
	xt := niceTicks(top, false)
	xs := linear{xt[len(xt)-1], plotX0, plotX1}
	ys := linear{1, plotY0, plotY1}
	c.XTicks, c.YTicks = axisTicks(xt, xs), axisTicks(shareTicks, ys)
	for i, m := range msgs {
		if !m.Published || m.Expected == 0 {
			continue
		}
		// A step line: flat until a delivery, then up by its share.
		var b strings.Builder
		b.WriteString(num(xs.px(0)) + "," + num(ys.px(0)))
		y := num(ys.px(0))
		k := min(len(m.Delays), maxLinePoints)
		for j := range k {
			r := j
			if k < len(m.Delays) {
				r = int(math.Round(float64(j) * float64(len(m.Delays)-1) / float64(k-1)))
			}
			x := num(xs.px(m.Delays[r]))
			b.WriteString(" " + x + "," + y)
			y = num(ys.px(float64(r+1) / float64(m.Expected)))
			b.WriteString(" " + x + "," + y)
		}
		hue := 220.0
		if len(msgs) > 1 {
			hue = 220 - 220*float64(i)/float64(len(msgs)-1)
		}
		last := "never"
		if len(m.Delays) > 0 {
			last = fmt.Sprintf("the last after %.1f ms", m.Delays[len(m.Delays)-1])
		}
		c.Lines = append(c.Lines, polyline{Points: b.String(), Color: fmt.Sprintf("hsl(%.0f,70%%,45%%)", hue),
			Title: fmt.Sprintf("message %d from node %d at %.0f ms: %d of %d receivers, %s", i, m.Publisher, m.AtMs,
				len(m.Delays), m.Expected, last)})
	}
	return c
}

// writeFileAtomic writes a file through a temporary file in its directory renamed over it, so that the file is
// either the old one or complete.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	bw := bufio.NewWriter(tmp)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkOutputPath tells whether a file can be created at path: its directory exists and it is not a directory.
func checkOutputPath(path string) error {
	if path == "" || strings.HasSuffix(path, string(filepath.Separator)) {
		return fmt.Errorf("%q: want a file name", path)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", filepath.Dir(path))
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

var reportTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 2px 12px 2px 0; vertical-align: top; }
th { font-weight: 600; } code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f5f5f5; padding: 1em; overflow-x: auto; }
svg { max-width: 100%; height: auto; font-size: 12px; }
svg .frame { fill: none; stroke: #888; } svg .grid { stroke: #e4e4e4; } svg .axis text { fill: #444; }
svg .label { fill: #222; font-size: 13px; } svg .nodata { fill: #888; font-size: 16px; }
svg .bars rect { fill: #4a7fc1; } svg .bars text { fill: #222; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="note">Rerun with: <code>{{.Command}}</code></p>
<table class="summary">
{{- range .Summary}}
<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{- end}}
</table>

<h2>Propagation delay</h2>
<p class="note">Share of all deliveries (to live nodes other than the publisher) that arrived within a delay; past
{{.MaxSample}} deliveries, the line is drawn through {{.MaxSample}} of them, evenly spaced by rank.</p>
{{template "chart" .CDF}}

<h2>Hops</h2>
<p class="note">Number of deliveries by the hops the message took from its publisher.</p>
{{template "chart" .Hops}}

<h2>Delivery over time</h2>
<p class="note">One line per message: the share of its receivers reached against the time since it was published,
coloured by publication order, from blue (first) to red (last). Hover a line for its message.</p>
{{template "chart" .Delivery}}

<h2>Parameters</h2>
<table class="params">
{{- range .Params}}
<tr><th>-{{.Name}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>

<h2>Figures</h2>
<p class="note">The object <code>node sim --json</code> prints.</p>
<pre id="figures">{{.Figures}}</pre>
<script type="application/json" id="report-data">{{.Data}}</script>
</body>
</html>
{{define "chart" -}}
<svg id="{{.ID}}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{.W}} {{.H}}" width="{{.W}}" height="{{.H}}" role="img" aria-label="{{.Title}}">
<title>{{.Title}}</title>
{{- if .NoData}}
<rect class="frame" x="{{.X0}}" y="{{.Y1}}" width="{{.PlotW}}" height="{{.PlotH}}"/>
<text class="nodata" x="{{.MidX}}" y="{{.MidY}}" text-anchor="middle">no data</text>
{{- else}}
<g class="grid">
{{- range .XTicks}}
<line x1="{{.Pos}}" y1="{{$.Y0}}" x2="{{.Pos}}" y2="{{$.Y1}}"/>
{{- end}}
{{- range .YTicks}}
<line x1="{{$.X0}}" y1="{{.Pos}}" x2="{{$.X1}}" y2="{{.Pos}}"/>
{{- end}}
</g>
<rect class="frame" x="{{.X0}}" y="{{.Y1}}" width="{{.PlotW}}" height="{{.PlotH}}"/>
<g class="axis">
{{- range .XTicks}}
<text x="{{.Pos}}" y="{{$.TickLabelY}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
{{- range .YTicks}}
<text x="{{$.X0}}" y="{{.Pos}}" dx="-6" dy="4" text-anchor="end">{{.Label}}</text>
{{- end}}
</g>
{{- if .Bars}}
<g class="bars">
{{- range .Bars}}
<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Title}}</title></rect>
<text x="{{.LabelX}}" y="{{.LabelY}}" text-anchor="middle">{{.Count}}</text>
{{- end}}
</g>
{{- end}}
{{- if .Lines}}
<g class="lines" fill="none" stroke-width="1.5" stroke-linejoin="round">
{{- range .Lines}}
<polyline points="{{.Points}}" stroke="{{.Color}}" stroke-opacity="0.6"><title>{{.Title}}</title></polyline>
{{- end}}
</g>
{{- end}}
{{- end}}
<text class="label" x="{{.MidX}}" y="{{.XLabelY}}" text-anchor="middle">{{.XLabel}}</text>
<text class="label" x="{{.YLabelX}}" y="{{.MidY}}" text-anchor="middle" transform="rotate(-90 {{.YLabelX}} {{.MidY}})">{{.YLabel}}</text>
</svg>
{{- end}}`))
