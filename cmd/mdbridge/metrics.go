package main

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mdbridge/mdbridge/pipeline"
)

// bridgeCollector turns the runner's snapshot and the journal's stats into
// Prometheus metrics on every scrape. It holds no counters of its own, so
// /metrics and /status always agree. Labels are stream and sink names and
// event kinds only: never a URL, a token or an error text.
type bridgeCollector struct {
	admin *adminServer
	now   func() time.Time

	streamPolls, streamErrors, streamEvents, streamGaps *prometheus.Desc
	streamWatermark, streamLag, streamFailing           *prometheus.Desc
	streamRecords, streamLastSuccess                    *prometheus.Desc

	sinkDelivered, sinkRetries, sinkDeadLettered, sinkBacklog, sinkState *prometheus.Desc

	journalBytes, journalEntries, journalLastSeq *prometheus.Desc

	events    *prometheus.Desc
	buildInfo *prometheus.Desc
}

func newBridgeCollector(a *adminServer) *bridgeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mdbridge_"+name, help, labels, nil)
	}
	return &bridgeCollector{
		admin:             a,
		now:               time.Now,
		streamPolls:       d("stream_polls_total", "Polls of the stream.", "stream"),
		streamErrors:      d("stream_errors_total", "Failed polls of the stream.", "stream"),
		streamEvents:      d("stream_events_total", "Events the stream committed to the journal.", "stream"),
		streamGaps:        d("stream_gaps_total", "Records the stream knows it skipped.", "stream"),
		streamRecords:     d("stream_records_total", "Records fetched by the stream's successful polls, before deduplication.", "stream"),
		streamLastSuccess: d("stream_last_success_timestamp_seconds", "When the stream's last successful poll fetched its records (0: none yet).", "stream"),
		streamWatermark:   d("stream_watermark_timestamp_seconds", "Newest record time committed by the stream (0: none yet).", "stream"),
		streamLag:         d("stream_lag_seconds", "Seconds between now and the stream's watermark (0: no watermark yet).", "stream"),
		streamFailing:     d("stream_failing", "1 while the stream's last poll failed.", "stream"),
		sinkDelivered:     d("sink_delivered_total", "Events delivered to the sink.", "sink"),
		sinkRetries:       d("sink_retries_total", "Failed delivery attempts that were retried.", "sink"),
		sinkDeadLettered:  d("sink_dead_lettered_total", "Events given up on and written to the sink's dead-letter file.", "sink"),
		sinkBacklog:       d("sink_backlog_events", "Journal events the sink has not delivered yet.", "sink"),
		sinkState:         d("sink_state", "1 for the sink's current state (up, retrying, disabled), 0 for the others.", "sink", "state"),
		journalBytes:      d("journal_bytes", "Bytes held by the journal."),
		journalEntries:    d("journal_entries", "Entries held by the journal."),
		journalLastSeq:    d("journal_last_seq", "Last journal sequence number handed out."),
		events:            d("events_total", "Events journaled since start, by kind.", "kind"),
		buildInfo:         d("build_info", "Always 1; the labels say which build runs.", "version", "goversion"),
	}
}

// Describe implements prometheus.Collector.
func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.streamPolls, c.streamErrors, c.streamEvents, c.streamGaps, c.streamWatermark, c.streamLag, c.streamFailing,
		c.streamRecords, c.streamLastSuccess,
		c.sinkDelivered, c.sinkRetries, c.sinkDeadLettered, c.sinkBacklog, c.sinkState,
		c.journalBytes, c.journalEntries, c.journalLastSeq, c.events, c.buildInfo,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Before the runner is set only
// build_info is emitted.
func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, version, runtime.Version())
	r := c.admin.runner.Load()
	if r == nil {
		return
	}
	snap := r.Snapshot()
	now := c.now()
	for _, s := range snap.Streams {
		ch <- prometheus.MustNewConstMetric(c.streamPolls, prometheus.CounterValue, float64(s.Polls), s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamErrors, prometheus.CounterValue, float64(s.Errors), s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamEvents, prometheus.CounterValue, float64(s.Events), s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamGaps, prometheus.CounterValue, float64(s.Gaps), s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamRecords, prometheus.CounterValue, float64(s.Records), s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamLastSuccess, prometheus.GaugeValue, unixSeconds(s.LastSuccess), s.ID)
		wm, lag := unixSeconds(s.Watermark), 0.0
		if !s.Watermark.IsZero() {
			lag = max(now.Sub(s.Watermark).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.streamWatermark, prometheus.GaugeValue, wm, s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamLag, prometheus.GaugeValue, lag, s.ID)
		ch <- prometheus.MustNewConstMetric(c.streamFailing, prometheus.GaugeValue, boolValue(s.Failing), s.ID)
	}
	for _, s := range snap.Sinks {
		ch <- prometheus.MustNewConstMetric(c.sinkDelivered, prometheus.CounterValue, float64(s.Delivered), s.Name)
		ch <- prometheus.MustNewConstMetric(c.sinkRetries, prometheus.CounterValue, float64(s.Retries), s.Name)
		ch <- prometheus.MustNewConstMetric(c.sinkDeadLettered, prometheus.CounterValue, float64(s.DeadLettered), s.Name)
		ch <- prometheus.MustNewConstMetric(c.sinkBacklog, prometheus.GaugeValue, float64(s.Lag), s.Name)
		for _, st := range []string{pipeline.SinkUp, pipeline.SinkRetrying, pipeline.SinkDisabled} {
			ch <- prometheus.MustNewConstMetric(c.sinkState, prometheus.GaugeValue, boolValue(s.State == st), s.Name, st)
		}
	}
	for k, v := range snap.Kinds {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(v), k)
	}
	if store := c.admin.store.Load(); store != nil {
		st, err := store.Stats()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.journalBytes, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(c.journalBytes, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(c.journalEntries, prometheus.GaugeValue, float64(st.Entries))
		ch <- prometheus.MustNewConstMetric(c.journalLastSeq, prometheus.GaugeValue, float64(st.LastSeq))
	}
}

// unixSeconds is t as a Prometheus timestamp value, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// deliveryHistogram is mdbridge_sink_delivery_seconds: how long each
// Deliver call of a sink took, failed ones included.
type deliveryHistogram struct{ h *prometheus.HistogramVec }

func newDeliveryHistogram() *deliveryHistogram {
	return &deliveryHistogram{h: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mdbridge_sink_delivery_seconds",
		Help:    "Duration of each delivery of a batch to the sink, failed attempts included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"sink"})}
}

// observe is the runner's pipeline.Options.ObserveDelivery.
func (h *deliveryHistogram) observe(sink string, d time.Duration, _ int) {
	h.h.WithLabelValues(sink).Observe(d.Seconds())
}

// newMetricsRegistry is the admin server's private registry: the bridge's
// collector, the delivery histogram (when given), and the Go runtime and
// process collectors.
func newMetricsRegistry(a *adminServer, deliveries *deliveryHistogram) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newBridgeCollector(a),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if deliveries != nil {
		reg.MustRegister(deliveries.h)
	}
	return reg
}
