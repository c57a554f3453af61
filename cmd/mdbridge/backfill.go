package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/sinks/format"
)

// cmdBackfill fetches one stream's records of a time window from the
// upstream API again and renders them to stdout, or delivers them to one
// configured sink. It never opens the state file, so no watermark, seen
// index or cursor moves, and it runs beside a running bridge.
func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	source := fs.String("source", "", "the source to fetch from (its name under sources:)")
	stream := fs.String("stream", "", "the stream, as named in the source's streams: key (device_alerts, scans, ...)")
	since := fs.String("since", "", "fetch records from this time on: RFC 3339, or a duration ago such as 2h")
	until := fs.String("until", "", "fetch records before this time (default: now): RFC 3339 or a duration ago")
	to := fs.String("to", "", "deliver to this sink (its name under sinks:) instead of printing to stdout")
	formatName := fs.String("format", "", "render as json, cef, leef or ocsf (default json on stdout, the sink's own with --to)")
	site := fs.String("site", "", "only this OT Security site (its siteIp)")
	sensor := fs.String("sensor", "", "only this OT Security sensor (its sensorIp)")
	timeout := fs.Duration("timeout", 0, "give up after this long (default: never; a failing sink is retried until then)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backfill: unexpected argument %q", fs.Arg(0))
	}
	if *path == "" || *source == "" || *stream == "" || *since == "" {
		return errors.New("backfill: -c FILE, --source NAME, --stream NAME and --since T are required")
	}
	now := time.Now()
	from, err := parseWhen(*since, now)
	if err != nil {
		return fmt.Errorf("backfill --since: %w", err)
	}
	end, err := parseWhen(*until, now)
	if err != nil {
		return fmt.Errorf("backfill --until: %w", err)
	}
	if !end.IsZero() && !from.Before(end) {
		return fmt.Errorf("backfill: --since %s is not before --until %s",
			from.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	if *formatName != "" {
		if err := format.Validate(*formatName); err != nil {
			return fmt.Errorf("backfill --format: %w", err)
		}
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("config %s:\n%w", *path, err)
	}
	sc, ok := cfg.Sources[*source]
	if !ok {
		return fmt.Errorf("backfill: no source %q in %s (sources: %s)", *source, *path, strings.Join(sortedKeys(cfg.Sources), ", "))
	}
	var sinkCfg configs.SinkConfig
	if *to != "" {
		if sinkCfg, ok = cfg.Sinks[*to]; !ok {
			return fmt.Errorf("backfill: no sink %q in %s (sinks: %s)", *to, *path, strings.Join(sortedKeys(cfg.Sinks), ", "))
		}
		if *formatName != "" {
			sinkCfg = withFormat(sinkCfg, *formatName)
		}
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	poller, want, err := backfillPoller(*source, sc, *stream, *site, *sensor, log)
	if err != nil {
		return err
	}
	if c, ok := poller.(interface{ Close() error }); ok {
		defer func() {
			if err := c.Close(); err != nil {
				log.Warn("closing source", zap.Error(err))
			}
		}()
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	// Events of a site-wide inventory name their sensor in the event only.
	keep := func(ev *pipeline.Event) bool {
		return (*site == "" || ev.Source.SiteIP == *site) && (*sensor == "" || ev.Source.SensorIP == *sensor)
	}
	what := fmt.Sprintf("%s %s [%s, %s)", *source, *stream, from.UTC().Format(time.RFC3339), untilText(end))

	if *to == "" {
		name := *formatName
		if name == "" {
			name = format.JSON
		}
		f, err := format.New(name)
		if err != nil {
			return fmt.Errorf("backfill --format: %w", err)
		}
		w := bufio.NewWriter(stdout)
		var data, line []byte
		var failed int
		var firstErr error
		st, err := pipeline.Backfill(ctx, poller, want.match, from, end, func(ev *pipeline.Event) error {
			if !keep(ev) {
				return nil
			}
			if data, err = pipeline.AppendEvent(data[:0], ev); err != nil {
				return fmt.Errorf("encode event %s: %w", ev.ID, err)
			}
			if line, err = f.Append(line[:0], data); err != nil {
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("event %s: %w", ev.ID, err)
				}
				return nil
			}
			line = append(line, '\n')
			_, err := w.Write(line)
			return err
		})
		if ferr := w.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("backfill: write stdout: %w", ferr)
		}
		if err != nil {
			return withTimeout(err, *timeout)
		}
		if err := want.check(st); err != nil {
			return err
		}
		reportDone(log, st)
		if failed > 0 {
			return fmt.Errorf("backfill %s: %d events could not be rendered as %s (first: %w)", what, failed, name, firstErr)
		}
		return nil
	}

	// --to: every event is encoded first (Backfill emits only once every
	// stream has been polled anyway), then delivered by the dispatcher's
	// rules: batches of the sink's size, retries with backoff, rejected
	// events to the sink's dead-letter file. No cursor is read or written.
	var events [][]byte
	st, err := pipeline.Backfill(ctx, poller, want.match, from, end, func(ev *pipeline.Event) error {
		if !keep(ev) {
			return nil
		}
		data, err := pipeline.AppendEvent(nil, ev)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		events = append(events, data)
		return nil
	})
	if err != nil {
		return withTimeout(err, *timeout)
	}
	if err := want.check(st); err != nil {
		return err
	}
	reportDone(log, st)
	sink, opts, err := buildSink(*to, sinkCfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := sink.Close(); err != nil {
			log.Error("closing sink", zap.Error(err))
		}
	}()
	next := 0
	rs, err := pipeline.Replay(ctx, log, *to, sink, deadLetterDir(cfg), opts.Batch, func(max int) ([]pipeline.Entry, error) {
		var batch []pipeline.Entry
		size := 0
		for next < len(events) && len(batch) < max && (len(batch) == 0 || size+len(events[next]) <= 4<<20) {
			batch = append(batch, pipeline.Entry{Data: events[next]})
			size += len(events[next])
			next++
		}
		return batch, nil
	})
	if err != nil {
		return withTimeout(fmt.Errorf("backfill %s to %s: %d of %d events delivered, %d dead-lettered: %w",
			what, *to, rs.Delivered, len(events), rs.DeadLettered, err), *timeout)
	}
	fmt.Fprintf(stdout, "backfilled %s to %s: %d events, %d delivered, %d dead-lettered\n",
		what, *to, len(events), rs.Delivered, rs.DeadLettered)
	if rs.DeadLettered > 0 {
		return fmt.Errorf("backfill to %s: %d events refused by the sink, in %s", *to, rs.DeadLettered,
			pipeline.DeadLetterPath(deadLetterDir(cfg), *to))
	}
	return nil
}

// backfillPoller builds the named source's poller for one stream only, and
// the filter that picks that stream's instances (every site and sensor,
// unless site or sensor narrow them).
func backfillPoller(name string, sc configs.SourceConfig, stream, site, sensor string, log *zap.Logger) (pipeline.Poller, *streamFilter, error) {
	f := &streamFilter{source: name, stream: stream, site: site, sensor: sensor}
	switch {
	case sc.OTSecurity != nil:
		if !slices.Contains(otsec.SupportedStreams, stream) {
			return nil, nil, fmt.Errorf("backfill: source %s (type %s) has no stream %q (streams: %s)",
				name, sc.Type, stream, strings.Join(otsec.SupportedStreams, ", "))
		}
		c := *sc.OTSecurity
		c.Streams = []string{stream}
		p, err := otsec.New(name, c, log)
		if err != nil {
			return nil, nil, err
		}
		return p, f, nil
	case sc.StorageSecurity != nil:
		if !slices.Contains(mdss.SupportedStreams, stream) {
			return nil, nil, fmt.Errorf("backfill: source %s (type %s) has no stream %q (streams: %s)",
				name, sc.Type, stream, strings.Join(mdss.SupportedStreams, ", "))
		}
		if site != "" || sensor != "" {
			return nil, nil, fmt.Errorf("backfill: --site and --sensor apply to OT Security sources; %s is of type %s", name, sc.Type)
		}
		c := *sc.StorageSecurity
		c.Streams = []string{stream}
		p, err := mdss.New(name, c, log)
		if err != nil {
			return nil, nil, err
		}
		return p, f, nil
	case sc.MDSSWebhook != nil:
		hint := ""
		if s := sc.MDSSWebhook.Source; s != "" {
			hint = fmt.Sprintf("; backfill its source %s instead", s)
		}
		return nil, nil, fmt.Errorf("backfill: source %s is a webhook receiver (type %s): there is no API to fetch from%s", name, sc.Type, hint)
	}
	return nil, nil, fmt.Errorf("backfill: source %s: type %q is not supported by this build", name, sc.Type)
}

// streamFilter picks the streams of a backfill by their IDs,
// "<source>/<site>/<sensor or site-N>/<stream>" for OT Security and
// "<source>/<stream>" for Storage Security, and remembers what it was
// offered for the error when nothing matched.
type streamFilter struct {
	source, stream, site, sensor string
	offered                      []string
}

// match reports whether a stream is one of the backfill's.
func (f *streamFilter) match(s pipeline.Stream) bool {
	id := s.ID()
	f.offered = append(f.offered, id)
	rest, ok := strings.CutPrefix(id, f.source+"/")
	if !ok || !strings.HasSuffix(rest, "/"+f.stream) && rest != f.stream {
		return false
	}
	if f.site == "" && f.sensor == "" {
		return true
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return false
	}
	if f.site != "" && parts[0] != f.site {
		return false
	}
	// A site-wide inventory ("site-N") holds every sensor's devices: the
	// events are narrowed instead.
	return f.sensor == "" || parts[1] == f.sensor || strings.HasPrefix(parts[1], "site-")
}

// check fails a backfill that found no stream to poll, naming the ones the
// source serves.
func (f *streamFilter) check(st pipeline.BackfillStats) error {
	if st.Streams > 0 {
		return nil
	}
	var where []string
	if f.site != "" {
		where = append(where, "site "+f.site)
	}
	if f.sensor != "" {
		where = append(where, "sensor "+f.sensor)
	}
	offered := "none"
	if len(f.offered) > 0 {
		offered = strings.Join(f.offered, ", ")
	}
	if len(where) == 0 {
		return fmt.Errorf("backfill: source %s serves no %s stream (its streams: %s)", f.source, f.stream, offered)
	}
	return fmt.Errorf("backfill: source %s has no %s stream for %s (its streams: %s)", f.source, f.stream, strings.Join(where, " and "), offered)
}

// withFormat returns a copy of a sink's config that renders in another
// format.
func withFormat(sc configs.SinkConfig, name string) configs.SinkConfig {
	switch {
	case sc.File != nil:
		c := *sc.File
		c.Format, sc.File = name, &c
	case sc.NATS != nil:
		c := *sc.NATS
		c.Format, sc.NATS = name, &c
	case sc.Syslog != nil:
		c := *sc.Syslog
		c.Format, sc.Syslog = name, &c
	case sc.Webhook != nil:
		c := *sc.Webhook
		c.Format, sc.Webhook = name, &c
	}
	return sc
}

func reportDone(log *zap.Logger, st pipeline.BackfillStats) {
	log.Info("backfill fetched", zap.Int("streams", st.Streams), zap.Int("records", st.Records), zap.Int("events", st.Events))
	if st.Gap > 0 {
		log.Warn("records in the window were not fetched: the page-size cap was reached first; raise max_page_limit",
			zap.Int("gap", st.Gap))
	}
}

func withTimeout(err error, timeout time.Duration) error {
	if timeout > 0 && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gave up after --timeout %s: %w", timeout, err)
	}
	return err
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return "now"
	}
	return t.UTC().Format(time.RFC3339)
}
