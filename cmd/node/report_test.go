package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/actormesh/actormesh/testkit"
)

// svgBlocks returns the <svg> elements of a page by id, failing the test unless each is well-formed XML.
func svgBlocks(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, block := range regexp.MustCompile(`(?s)<svg\b.*?</svg>`).FindAllString(page, -1) {
		d := xml.NewDecoder(strings.NewReader(block))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v\n%s", err, block)
			}
		}
		id := regexp.MustCompile(`^<svg id="([^"]+)"`).FindStringSubmatch(block)
		if id == nil {
			t.Fatalf("SVG without an id: %.80s", block)
		}
		out[id[1]] = block
	}
	return out
}

// reportJSON decodes the page's embedded data block.
func reportJSON(t *testing.T, page string) reportData {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no report-data block")
	}
	var d reportData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("report-data: %v\n%s", err, m[1])
	}
	return d
}

// polylinePoints returns the number of points of each polyline of an SVG block.
func polylinePoints(svg string) []int {
	var n []int
	for _, m := range regexp.MustCompile(`<polyline points="([^"]*)"`).FindAllStringSubmatch(svg, -1) {
		n = append(n, len(strings.Fields(m[1])))
	}
	return n
}

func renderReport(t *testing.T, rep testkit.BroadcastReport, params []reportParam) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeHTMLReport(&b, rep, params); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteHTMLReportDrawsTheSeries(t *testing.T) {
	rep := testkit.BroadcastReport{N: 17, Degree: 4, Messages: 4, Size: 64, Transport: "mem", Published: 3,
		Deliveries: 7, DeliveryRatio: 0.7, P50Ms: 20.5, P100Ms: 123.45, MaxHops: 4,
		Detail: &testkit.BroadcastDetail{
			Seed: 42,
			Messages: []testkit.MessageDetail{
				{Publisher: 3, Published: true, AtMs: 0, Expected: 4, Delays: []float64{10, 20, 30, 40}},
				{Publisher: 5, Published: true, AtMs: 100, Expected: 3, Delays: []float64{20.5, 123.45}},
				{Publisher: 9, Published: false, AtMs: 200, Expected: 3},
				{Publisher: 1, Published: true, AtMs: 300, Expected: 2, Delays: []float64{15}},
			},
			Delays:     []float64{10, 15, 20, 20.5, 30, 40, 123.45},
			DelayCount: 7,
			Hops:       map[int]int{1: 3, 2: 2, 4: 2}, // no delivery took 3 hops
		}}
	params := []reportParam{{"n", "17"}, {"degree", "4"}, {"transport", "</script><b>mem"}}
	page := renderReport(t, rep, params)

	svgs := svgBlocks(t, page)
	for _, id := range []string{"delay-cdf", "hops", "delivery"} {
		if svgs[id] == "" {
			t.Fatalf("no SVG %q", id)
		}
	}
	if got := polylinePoints(svgs["delay-cdf"]); !slices.Equal(got, []int{7}) {
		t.Errorf("CDF polylines have %v points, want one of 7 (the sample)", got)
	}
	if got := strings.Count(svgs["hops"], "<rect x="); got != 3 {
		t.Errorf("hop histogram: %d bars, want 3 (one per hop bucket)", got)
	}
	for _, label := range []string{">1</text>", ">2</text>", ">3</text>", ">4</text>"} {
		if !strings.Contains(svgs["hops"], label) {
			t.Errorf("hop axis lacks %s", label)
		}
	}
	// One step line per published message: its start, then two points per delivery.
	if got := polylinePoints(svgs["delivery"]); !slices.Equal(got, []int{9, 5, 3}) {
		t.Errorf("delivery polylines have %v points, want [9 5 3]", got)
	}
	if strings.Contains(page, "no data") {
		t.Error("page says no data")
	}

	d := reportJSON(t, page)
	if d.Figures.N != 17 || d.Figures.P100Ms != 123.45 || d.Figures.Detail != nil || d.DelayCount != 7 {
		t.Errorf("figures: %+v, delay count %d", d.Figures, d.DelayCount)
	}
	if !slices.Equal(d.Params, params) {
		t.Errorf("params: %v", d.Params)
	}
	wantCDF := [][2]float64{{10, 1. / 7}, {15, 2. / 7}, {20, 3. / 7}, {20.5, 4. / 7}, {30, 5. / 7}, {40, 6. / 7}, {123.45, 1}}
	if !slices.Equal(d.DelayCDF, wantCDF) {
		t.Errorf("delay CDF: %v, want %v", d.DelayCDF, wantCDF)
	}
	if !slices.Equal(d.Hops, [][2]int{{1, 3}, {2, 2}, {4, 2}}) {
		t.Errorf("hops: %v", d.Hops)
	}
	if len(d.Messages) != 4 || !slices.Equal(d.Messages[1].Delays, []float64{20.5, 123.45}) || d.Messages[2].Published {
		t.Errorf("messages: %+v", d.Messages)
	}

	// The figures the page prints; the parameter is escaped, not markup.
	for _, s := range []string{"123.45", "&#34;n&#34;: 17", "<th>-transport</th><td>&lt;/script&gt;&lt;b&gt;mem</td>"} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(page, "<b>mem") {
		t.Error("a parameter's markup is not escaped")
	}
}

func TestWriteHTMLReportWithoutDeliveries(t *testing.T) {
	for name, rep := range map[string]testkit.BroadcastReport{
		"no detail": {N: 5},
		"nothing delivered": {N: 5, Messages: 2, Detail: &testkit.BroadcastDetail{
			Messages: []testkit.MessageDetail{{Published: true, Expected: 4}, {Published: false, Expected: 4}},
			Hops:     map[int]int{},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			page := renderReport(t, rep, nil)
			svgs := svgBlocks(t, page)
			for _, id := range []string{"delay-cdf", "hops", "delivery"} {
				if !strings.Contains(svgs[id], "no data") {
					t.Errorf("SVG %q does not say no data:\n%s", id, svgs[id])
				}
				if strings.Contains(svgs[id], "<polyline") || strings.Contains(svgs[id], "NaN") {
					t.Errorf("SVG %q draws from no data:\n%s", id, svgs[id])
				}
			}
			d := reportJSON(t, page)
			if d.Figures.N != 5 || d.DelayCDF == nil || len(d.DelayCDF) != 0 || len(d.Hops) != 0 {
				t.Errorf("data: %+v", d)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := writeFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := writeFileAtomic(path, func(w io.Writer) error { _, _ = io.WriteString(w, "tw"); return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("failed write: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "one" {
		t.Fatalf("after a failed write the file holds %q (%v), want the old content", b, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := writeFileAtomic(filepath.Join(dir, "no", "such"), func(io.Writer) error { return nil }); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestSimHTMLReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	code, out, errOut := call(t, "sim", "-n", "8", "-messages", "3", "-interval", "10ms", "-settle", "0", "-idle", "0", "-latency", "1ms",
		"--html", path, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "report written to "+path) {
		t.Errorf("stderr: %q", errOut)
	}
	var printed testkit.BroadcastReport
	if strings.Count(strings.TrimSpace(out), "\n") != 0 || json.Unmarshal([]byte(out), &printed) != nil {
		t.Fatalf("--json with --html must still print one JSON object, got %q", out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	svgs := svgBlocks(t, page)
	for _, id := range []string{"delay-cdf", "hops", "delivery"} {
		if svgs[id] == "" {
			t.Errorf("no SVG %q", id)
		}
	}
	d := reportJSON(t, page)
	if d.Figures != printed {
		t.Errorf("page figures %+v, printed %+v", d.Figures, printed)
	}
	if len(d.Messages) != 3 || len(polylinePoints(svgs["delivery"])) != 3 {
		t.Fatalf("want 3 messages and 3 delivery lines: %+v", d.Messages)
	}
	for i, m := range d.Messages {
		if !m.Published || m.Expected != 7 || len(m.Delays) != m.Expected || !slices.IsSorted(m.Delays) || i > 0 && m.AtMs <= d.Messages[i-1].AtMs {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	if d.DelayCount != printed.Deliveries || len(d.DelayCDF) != printed.Deliveries || len(polylinePoints(svgs["delay-cdf"])) != 1 {
		t.Errorf("delay CDF: %d points of %d, deliveries %d", len(d.DelayCDF), d.DelayCount, printed.Deliveries)
	}
	hops := 0
	for _, h := range d.Hops {
		hops += h[1]
	}
	if hops != printed.Deliveries {
		t.Errorf("hop histogram counts %d deliveries, want %d", hops, printed.Deliveries)
	}
	if !strings.Contains(page, "<th>-seed</th>") || !strings.Contains(page, "<th>-latency</th><td>1ms</td>") {
		t.Error("parameter table lacks the seed or the latency")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestSimHTMLBadPath(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "missing", "r.html"), dir} {
		code, _, errOut := call(t, "sim", "-n", "4", "--html", path)
		if code != exitUsage || !strings.Contains(errOut, "--html") {
			t.Errorf("--html %s: exit %d, %q", path, code, errOut)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		top   float64
		whole bool
		want  string
	}{
		{145.3, false, "0 50 100 150"},
		{0.7, false, "0 0.2 0.4 0.6 0.8"},
		{2000, false, "0 500 1000 1500 2000"},
		{3, true, "0 1 2 3"},
		{1, true, "0 1"},
		{0, false, "0 0.2 0.4 0.6 0.8 1"}, // nothing to scale: a unit axis
		{math.Inf(1), false, "0 0.2 0.4 0.6 0.8 1"},
	} {
		var labels []string
		for _, v := range niceTicks(c.top, c.whole) {
			labels = append(labels, tickLabel(v))
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("niceTicks(%v, %v) = %s, want %s", c.top, c.whole, got, c.want)
		}
	}
}
