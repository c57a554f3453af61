package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestMetricsScrape runs the bridge against the OT Security fake and checks
// that /metrics parses, agrees with what the file sink wrote, and never shows
// the source's token.
func TestMetricsScrape(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add("device_alerts", site.SiteIP, site.SensorIPs[0], 20)
	dir := t.TempDir()
	started := time.Now()
	admin := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/state/s.db }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %s/out/events.jsonl }
`, dir, admin, srv.URL, plantedToken, dir))
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, io.Discard, &syncWriter{w: &logs}) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exited %d:\n%s", code, logs.String())
		}
	}()

	var fams map[string]*dto.MetricFamily
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, fams = scrapeMetrics(t, "http://"+admin+"/metrics")
		if fams != nil && sumFamily(fams["mdbridge_sink_delivered_total"]) == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed 20 delivered events:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(body, plantedToken) {
		t.Fatalf("/metrics shows the token:\n%s", body)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	written := float64(bytes.Count(b, []byte("\n")))
	if written != 20 {
		t.Fatalf("the file sink wrote %v events, want 20", written)
	}
	if got := sumFamily(fams["mdbridge_stream_events_total"]); got != written {
		t.Errorf("stream events sum to %v, the file sink has %v", got, written)
	}
	if got := labelled(fams["mdbridge_sink_delivered_total"], "sink", "archive"); got != written {
		t.Errorf("sink archive delivered %v, the file sink has %v", got, written)
	}
	if got := labelled(fams["mdbridge_events_total"], "kind", "ot.device_alert"); got != 20 {
		t.Errorf("events_total{kind=ot.device_alert} = %v, want 20", got)
	}
	if got := labelled(fams["mdbridge_sink_state"], "state", "up"); got != 1 {
		t.Errorf("sink_state{state=up} = %v, want 1", got)
	}
	if got := sumFamily(fams["mdbridge_sink_backlog_events"]); got != 0 {
		t.Errorf("backlog = %v, want 0", got)
	}
	if got := sumFamily(fams["mdbridge_journal_last_seq"]); got < 20 {
		t.Errorf("journal_last_seq = %v, want at least 20", got)
	}
	bi := fams["mdbridge_build_info"]
	if bi == nil || len(bi.Metric) != 1 || bi.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("build_info missing or not 1: %v", bi)
	}
	if h := fams["mdbridge_sink_delivery_seconds"]; h == nil || len(h.Metric) != 1 || h.Metric[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("sink_delivery_seconds missing or empty: %v", h)
	}
	for _, name := range []string{"go_goroutines", "mdbridge_stream_lag_seconds", "mdbridge_journal_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	// Records are what polls fetched before deduplication: every alert at
	// least once, and at least as many as became events.
	if got := sumFamily(fams["mdbridge_stream_records_total"]); got < 20 {
		t.Errorf("stream_records_total = %v, want at least the 20 alerts fetched", got)
	}
	scraped := time.Now()
	if got := sumFamily(fams["mdbridge_stream_last_success_timestamp_seconds"]); got < float64(started.Unix()) || got > float64(scraped.Unix()+1) {
		t.Errorf("stream_last_success_timestamp_seconds = %v, want between the test's start %d and the scrape %d", got, started.Unix(), scraped.Unix())
	}

	// /status tells the same, per stream.
	var status struct {
		Streams []struct {
			ID          string    `json:"id"`
			Events      uint64    `json:"events"`
			Records     uint64    `json:"records"`
			LastSuccess time.Time `json:"last_success"`
		} `json:"streams"`
	}
	getJSON(t, "http://"+admin+"/status", &status)
	if len(status.Streams) != 1 {
		t.Fatalf("/status lists %d streams, want 1: %+v", len(status.Streams), status)
	}
	st := status.Streams[0]
	if st.Records < 20 || st.Records < st.Events {
		t.Errorf("/status stream %s: records %d, want at least 20 and at least its events (%d)", st.ID, st.Records, st.Events)
	}
	if st.LastSuccess.Before(started) || st.LastSuccess.After(time.Now()) {
		t.Errorf("/status stream %s: last_success %v, want between the test's start %v and now", st.ID, st.LastSuccess, started)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

// scrapeMetrics fetches and parses a Prometheus text exposition; nil
// families when the endpoint is not up yet.
func scrapeMetrics(t *testing.T, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return "", nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return string(b), nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, b)
	}
	return string(b), fams
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func sumFamily(f *dto.MetricFamily) float64 {
	if f == nil {
		return -1
	}
	var s float64
	for _, m := range f.Metric {
		s += metricValue(m)
	}
	return s
}

// labelled sums the metrics of f whose label name has the value.
func labelled(f *dto.MetricFamily, name, value string) float64 {
	if f == nil {
		return -1
	}
	var s float64
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == name && l.GetValue() == value {
				s += metricValue(m)
			}
		}
	}
	return s
}
