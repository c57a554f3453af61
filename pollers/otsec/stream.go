package otsec

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// spec describes one time-ordered list stream (the alert lists).
type spec struct {
	kind   string
	path   string
	sortBy string
	fields pipeline.FieldPaths
}

var specs = map[string]spec{
	StreamDeviceAlerts:   {pipeline.KindDeviceAlert, PathDeviceAlerts, "alertStarted", merge(alertFields, deviceFields)},
	StreamConnAlerts:     {pipeline.KindConnAlert, PathConnAlerts, "alertStarted", merge(alertFields, deviceFields, networkFields)},
	StreamSuricataAlerts: {pipeline.KindSuricataAlert, PathSuricataAlerts, "alertStarted", merge(alertFields, networkFields, ruleFields)},
}

// stream polls one list endpoint for one site and sensor.
type stream struct {
	p        *Poller
	name     string
	id       string
	siteIP   string
	sensorIP string
	spec     spec
	x        *pipeline.Extractor // every field, for building events
	q        *pipeline.Extractor // id and time, for every record
	qID      int
	qTime    int
	idx      fieldIndex

	mu         sync.Mutex
	lastTotal  int // total the API reported at the last poll, -1 unknown
	lastWindow int // records at or after the floor at the last complete poll
	// known lists the records of the last committed poll (see knownList);
	// spare is the storage the next poll builds its list in.
	known, spare *knownList

	// vals and rank are build's scratch space, reused for every record (the
	// runner builds one stream's records one at a time): allocating them per
	// record was a third of the bridge's allocations.
	vals []gjson.Result
	rank []int
	// ev is where build puts the event: one per stream, overwritten by the
	// next build (pipeline.Batch.Normalize allows that). The event and its
	// blocks were about 670 bytes allocated per record, a quarter of the
	// bridge's allocations on an alert backlog.
	ev eventScratch
}

// eventScratch holds an alert event and every block it can point to.
type eventScratch struct {
	ev      pipeline.Event
	dev     pipeline.Device
	alert   pipeline.Alert
	nw      pipeline.Network
	rule    pipeline.Rule
	started time.Time
	ended   time.Time
}

// fieldIndex holds the Extractor slot of every field (-1 when the stream
// does not have it).
type fieldIndex struct {
	id, time, ended, name, typ, status, severity, message, reason                             int
	deviceID, deviceName, ip, mac, vendor, model, deviceType, firmware, os, purdue, site      int
	srcIP, srcPort, srcMAC, dstIP, dstPort, dstMAC, protocol, transport, ruleID, ruleName, rc int
}

func newStream(p *Poller, name, siteIP, sensorIP string) *stream {
	sp := specs[name]
	fields := sp.fields.Merge(p.cfg.Fields[name])
	if t, ok := p.cfg.Fields[name]["time"]; ok && !strings.ContainsAny(t, ".#|@*?") {
		sp.sortBy = t // sort by the field the watermark is read from
	}
	x := pipeline.NewExtractor(fields)
	q := pipeline.NewExtractor(pipeline.FieldPaths{"id": fields["id"], "time": fields["time"]})
	return &stream{
		p: p, name: name, siteIP: siteIP, sensorIP: sensorIP, spec: sp, x: x, lastTotal: -1,
		q: q, qID: q.Index("id"), qTime: q.Index("time"),
		id: p.name + "/" + siteIP + "/" + sensorIP + "/" + name,
		idx: fieldIndex{
			id: x.Index("id"), time: x.Index("time"), ended: x.Index("ended"), name: x.Index("name"), typ: x.Index("type"),
			status: x.Index("status"), severity: x.Index("severity"), message: x.Index("message"), reason: x.Index("reason"),
			deviceID: x.Index("device_id"), deviceName: x.Index("device_name"), ip: x.Index("ip"), mac: x.Index("mac"),
			vendor: x.Index("vendor"), model: x.Index("model"), deviceType: x.Index("device_type"), firmware: x.Index("firmware"),
			os: x.Index("os"), purdue: x.Index("purdue_level"), site: x.Index("site"),
			srcIP: x.Index("src_ip"), srcPort: x.Index("src_port"), srcMAC: x.Index("src_mac"), dstIP: x.Index("dst_ip"),
			dstPort: x.Index("dst_port"), dstMAC: x.Index("dst_mac"), protocol: x.Index("protocol"), transport: x.Index("transport"),
			ruleID: x.Index("rule_id"), ruleName: x.Index("rule_name"), rc: x.Index("rule_category"),
		},
	}
}

// ID implements pipeline.Stream.
func (s *stream) ID() string { return s.id }

// page is one answer of the list endpoint, newest first.
type page struct {
	items []gjson.Result
	// known holds, for each item, its index in the stream's known list
	// when the scan recognised it, -1 otherwise; nil when none was.
	known []int32
	total int
}

// fetch asks for the newest limit records, reading the answer into buf's
// storage; it returns the page and the buffer now holding the body.
func (s *stream) fetch(ctx context.Context, limit int, buf []byte, known *knownList) (page, []byte, error) {
	q := url.Values{}
	q.Set("siteIp", s.siteIP)
	q.Set("sensorIp", s.sensorIP)
	q.Set("data", dataQuery(limit, s.spec.sortBy, ""))
	m := matcher{k: known}
	return s.p.list(ctx, s.spec.path, q, buf, m.match)
}

// Poll implements pipeline.Stream. The API serves only page 1 of a list
// sorted newest first, so a poll asks for the newest `limit` records and,
// while every one of them is still newer than the position's floor and more
// exist, asks again with a larger limit: straight to the size the reported
// total implies when there is one, else double, never past max_page_limit.
// Records are returned oldest first; a cap that stops short of the floor is
// reported as a gap.
func (s *stream) Poll(ctx context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	cfg := s.p.cfg
	s.mu.Lock()
	lastTotal, lastWindow := s.lastTotal, s.lastWindow
	s.mu.Unlock()
	// Start where the last poll ended up: the overlap it re-read plus room
	// for what is new, so a steady stream needs one request per poll.
	limit := min(max(cfg.PageLimit, lastWindow+cfg.PageLimit), cfg.MaxPageLimit)
	var batch pipeline.Batch
	var pg page
	var rd readout
	s.mu.Lock()
	known, next := s.known, s.spare
	s.spare = nil
	s.mu.Unlock()
	if next == nil {
		next = &knownList{}
	}
	// One body buffer serves every request of the poll (a larger answer
	// replaces a smaller one, whose records are no longer needed) and goes
	// back to the pool when the runner has committed the records.
	buf := s.p.bodies.Get(0)
	first := buf // the pool's buffer, which a larger answer may replace
	for {
		var err error
		pg, buf, err = s.fetch(ctx, limit, buf, known)
		if err != nil {
			s.p.bodies.PutReplaced(first, buf)
			return pipeline.Batch{}, err
		}
		rd, err = s.normalise(pg, pos.Floor, known, next)
		if err != nil {
			s.p.bodies.PutReplaced(first, buf)
			return pipeline.Batch{}, err
		}
		if rd.reached || len(pg.items) < limit || limit >= cfg.MaxPageLimit || (pg.total >= 0 && pg.total <= len(pg.items)) {
			break
		}
		limit = s.grow(limit, pg, lastTotal, lastWindow, pos)
	}
	recs := rd.recs
	complete := rd.reached || len(pg.items) < limit || (pg.total >= 0 && pg.total <= len(pg.items))
	switch {
	case complete:
	case rd.window > 0 && !pos.Watermark.IsZero() && !rd.oldest.After(pos.Watermark):
		// The cap stopped the re-read of the overlap, but every record newer
		// than the watermark is in: nothing new was skipped, only the check
		// for late arrivals older than the cap reached.
		s.p.log.Debug("lookback re-read cut short by max_page_limit", zap.String("stream", s.id), zap.Int("limit", limit))
	default:
		batch.Gap = s.gapEstimate(pg, lastTotal, len(recs), pos)
	}
	s.mu.Lock()
	s.lastTotal = pg.total
	s.lastWindow = rd.window
	s.mu.Unlock()
	// Oldest first.
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	batch.Records = recs
	batch.Unchanged = rd.window - len(recs)
	batch.Normalize = s.build
	batch.Committed = func() {
		// The runner has every record of this poll at or after the floor in
		// its seen index with these hashes: the next poll may pass over them.
		next.shrink()
		s.mu.Lock()
		s.known, s.spare = next, s.known
		s.mu.Unlock()
	}
	batch.Release = func() {
		s.ev = eventScratch{} // its strings point into the body
		s.p.bodies.PutReplaced(first, buf)
		s.mu.Lock()
		if s.spare == nil && s.known != next {
			s.spare = next // not committed: its storage serves the next poll
		}
		s.mu.Unlock()
	}
	return batch, nil
}

// grow picks the next limit.
func (s *stream) grow(limit int, pg page, lastTotal, lastWindow int, pos pipeline.Position) int {
	next := limit * 2
	if pg.total >= 0 {
		want := pg.total // first run, or unknown history: all of it
		if lastTotal >= 0 && !pos.Watermark.IsZero() {
			// New records since the last poll, plus the overlap the last poll
			// re-read, plus slack for the overlap having grown.
			want = pg.total - lastTotal + max(lastWindow, len(pg.items)) + s.p.cfg.PageLimit
		}
		if want > next {
			next = want
		}
	}
	if next > s.p.cfg.MaxPageLimit {
		next = s.p.cfg.MaxPageLimit
	}
	return next
}

// gapEstimate is a lower bound of the records a capped poll skipped.
func (s *stream) gapEstimate(pg page, lastTotal, got int, pos pipeline.Position) int {
	if pg.total < 0 {
		return 1
	}
	if pos.Watermark.IsZero() && pos.Floor.IsZero() {
		return max(1, pg.total-got)
	}
	if lastTotal >= 0 {
		return max(1, pg.total-lastTotal-got)
	}
	return 1
}

// readout is what normalise read from a page.
type readout struct {
	// recs are the records at or after the floor that the known list did
	// not recognise, newest first.
	recs []pipeline.Record
	// window counts every record at or after the floor, recognised or not;
	// oldest is the time of the oldest of them.
	window int
	oldest time.Time
	// reached says whether the page went back past the floor.
	reached bool
}

// normalise turns a page (newest first) into records, stopping at the
// first record older than floor. It reads only what dedup needs (id, time,
// content hash); the event itself is built by build, for the records the
// runner finds new. A record the scan recognised from the known list is
// not read at all: it is byte for byte one the runner has already seen, so
// the runner would drop it. next is rebuilt to list every record at or
// after the floor that the next poll may meet again.
func (s *stream) normalise(pg page, floor time.Time, known, next *knownList) (readout, error) {
	var rd readout
	next.reset()
	// The next poll's floor is at least the newest record's time less the
	// lookback: older records are of no use to it (it reads the first of
	// them, finds it older than its floor and stops). Leaving them out
	// keeps a backlog's first poll from holding thousands per stream.
	var newest time.Time
	lookback := s.p.cfg.Lookback
	rd.recs = make([]pipeline.Record, 0, len(pg.items))
	vals := make([]gjson.Result, s.q.Len())
	rank := make([]int, s.q.Len())
	for i, item := range pg.items {
		if pg.known != nil && pg.known[i] >= 0 {
			k := pg.known[i]
			t := time.Unix(0, known.times[k]).UTC()
			if t.Before(floor) {
				rd.reached = true
				return rd, nil
			}
			if !t.Before(newest.Add(-lookback)) {
				next.keep(known, k)
			}
			newest = later(newest, t)
			rd.window++
			rd.oldest = t
			continue
		}
		if !item.IsObject() {
			return readout{}, fmt.Errorf("%s: record %d is %s, not an object", s.spec.path, i, item.Type)
		}
		s.q.ExtractFirst(item, vals, rank)
		t, err := pipeline.ParseTime(vals[s.qTime])
		if err != nil {
			return readout{}, fmt.Errorf("%s: record %d (%.60s): time at %s: %w; set sources.%s.fields.%s.time to the right field",
				s.spec.path, i, keyHint(item), strings.Join(s.q.Paths(s.qTime), "|"), err, s.p.name, s.name)
		}
		if t.Before(floor) {
			rd.reached = true
			return rd, nil
		}
		raw := rawBytes(item)
		rec := pipeline.Record{Time: t, Raw: raw, Key: pipeline.Str(vals[s.qID])}
		if rec.Key == "" {
			return readout{}, fmt.Errorf("%s: record %d: alert has no id at %s; set sources.%s.fields.%s.id",
				s.spec.path, i, strings.Join(s.q.Paths(s.qID), "|"), s.p.name, s.name)
		}
		rec.Hash = pipeline.ContentHash(raw)
		rd.recs = append(rd.recs, rec)
		if !t.Before(newest.Add(-lookback)) {
			next.add(item.Raw, t)
		}
		newest = later(newest, t)
		rd.window++
		rd.oldest = t
	}
	return rd, nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// build fills rec.Event from rec.Raw (pipeline.Batch.Normalize).
func (s *stream) build(rec *pipeline.Record) error {
	item := gjson.Parse(unsafe.String(unsafe.SliceData(rec.Raw), len(rec.Raw)))
	if len(s.vals) != s.x.Len() {
		s.vals, s.rank = make([]gjson.Result, s.x.Len()), make([]int, s.x.Len())
	}
	s.x.Extract(item, s.vals, s.rank) // resets every slot first
	rec.Event = s.event(rec, s.vals)
	// The values point into the response body: let go of them, or every
	// stream would keep its last body alive between polls.
	clear(s.vals)
	return nil
}

func keyHint(item gjson.Result) string {
	if id := item.Get("id"); id.Exists() {
		return "id " + id.Raw
	}
	return item.Raw
}

func rawBytes(r gjson.Result) []byte {
	// The record is a substring of the response body, which is not modified
	// after it was read: view it as bytes without copying.
	return unsafe.Slice(unsafe.StringData(r.Raw), len(r.Raw))
}

// event builds the normalised event of a record from its extracted fields.
func (s *stream) event(rec *pipeline.Record, v []gjson.Result) *pipeline.Event {
	t := rec.Time
	ix := &s.idx
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		return pipeline.Str(v[i])
	}
	sc := &s.ev
	*sc = eventScratch{}
	ev := &sc.ev
	*ev = pipeline.Event{
		Kind: s.spec.kind,
		Time: t,
		Source: pipeline.Source{
			Product: pipeline.ProductOTSecurity, Instance: s.p.name, Stream: s.id,
			SiteIP: s.siteIP, SensorIP: s.sensorIP, URL: s.p.publicURL,
		},
	}
	if s.p.cfg.Raw {
		ev.Raw = rec.Raw
	}
	dev := &sc.dev
	*dev = pipeline.Device{
		ID: get(ix.deviceID), Name: get(ix.deviceName), IP: get(ix.ip), MAC: get(ix.mac), Vendor: get(ix.vendor),
		Model: get(ix.model), Type: get(ix.deviceType), Firmware: get(ix.firmware), OS: get(ix.os),
		PurdueLevel: get(ix.purdue), Site: get(ix.site),
	}
	id := rec.Key
	alert := &sc.alert
	*alert = pipeline.Alert{ID: id, Type: get(ix.typ), Name: get(ix.name), Status: get(ix.status), Reason: get(ix.reason)}
	sc.started = t
	alert.Started = &sc.started
	if ix.ended >= 0 {
		if e, err := pipeline.ParseTime(v[ix.ended]); err == nil {
			sc.ended = e
			alert.Ended = &sc.ended
		}
	}
	ev.Alert = alert
	ev.Severity, ev.SeverityScore = pipeline.OTSeverity(v[ix.severity])
	ev.Message = get(ix.message)
	if ev.Message == "" {
		ev.Message = alert.Name
	}
	if s.spec.kind != pipeline.KindSuricataAlert && !emptyDevice(dev) {
		ev.Device = dev
	}
	if ix.srcIP >= 0 {
		port := func(i int) int { n, _ := pipeline.Int(v[i]); return n }
		nw := &sc.nw
		*nw = pipeline.Network{
			SrcIP: get(ix.srcIP), SrcPort: port(ix.srcPort), SrcMAC: get(ix.srcMAC),
			DstIP: get(ix.dstIP), DstPort: port(ix.dstPort), DstMAC: get(ix.dstMAC),
			Protocol: get(ix.protocol), Transport: get(ix.transport),
		}
		if *nw != (pipeline.Network{}) {
			ev.Network = nw
		}
	}
	if ix.ruleID >= 0 {
		r := &sc.rule
		*r = pipeline.Rule{ID: get(ix.ruleID), Name: get(ix.ruleName), Category: get(ix.rc)}
		if *r != (pipeline.Rule{}) {
			ev.Rule = r
		}
		if ev.Message == "" {
			ev.Message = r.Name
		}
	}
	return ev
}

func emptyDevice(d *pipeline.Device) bool { return *d == pipeline.Device{} }

// hashWithout hashes a record's top-level members except the skipped keys.
func hashWithout(item gjson.Result, skip map[string]bool) uint64 {
	d := xxhash.New()
	pipeline.RawMembers(item.Raw, func(k, v string) bool {
		if len(k) < 2 || !skip[k[1:len(k)-1]] {
			_, _ = d.WriteString(k)
			_, _ = d.WriteString(v)
		}
		return true
	})
	return d.Sum64()
}

// knownList is what a stream's last committed poll read, in the order of
// its answer (newest first): the length, hash and time of every record at
// or after that poll's floor. The runner has each of them in its seen index
// with its content hash, so a record of the next poll with the same bytes
// is one the runner would drop: the scan passes over it without validating
// or reading it. With a lookback of many records, that re-read is most of
// what a poll fetches. Equal length and 64-bit hash stand for equal bytes
// here, as the content hash already does for the runner's choice between a
// repeat and a revision. The hash is XXH3, not the content hash's XXH64:
// it is never stored, and hashing every re-read byte was 6% of the
// bridge's CPU on a live load with XXH64, which XXH3 computes about twice
// as fast on records of this size.
type knownList struct {
	lens   []uint32
	hashes []uint64
	times  []int64 // Unix nanoseconds
}

// reset empties the list, keeping its storage.
func (k *knownList) reset() {
	k.lens, k.hashes, k.times = k.lens[:0], k.hashes[:0], k.times[:0]
}

// add appends the record raw. One whose length or time does not fit is
// left out: the next poll reads it, as it would without the list.
func (k *knownList) add(raw string, t time.Time) {
	ns := t.UnixNano()
	if raw == "" || uint64(len(raw)) > math.MaxUint32 || !time.Unix(0, ns).Equal(t) {
		return
	}
	k.lens, k.hashes, k.times = append(k.lens, uint32(len(raw))), append(k.hashes, knownHash(raw)), append(k.times, ns)
}

// knownHash is the known list's hash of a record's bytes.
func knownHash(raw string) uint64 { return xxh3.HashString(raw) }

// shrink lets go of storage far larger than the list, which a large poll
// (a backlog, a long outage) left behind.
func (k *knownList) shrink() {
	if cap(k.lens) > 2*len(k.lens)+4096 {
		k.lens, k.hashes, k.times = slices.Clone(k.lens), slices.Clone(k.hashes), slices.Clone(k.times)
	}
}

// keep appends record i of from.
func (k *knownList) keep(from *knownList, i int32) {
	k.lens, k.hashes, k.times = append(k.lens, from.lens[i]), append(k.hashes, from.hashes[i]), append(k.times, from.times[i])
}

// matchWindow is how far past the last recognised record the matcher looks
// for the next one: a few records deleted upstream, or reordered among
// equal times, do not lose its place.
const matchWindow = 8

// matcher is a pipeline.ElementMatcher over a known list, for one scan. The
// records of a new answer come in the order of the last one, with new
// records before them and the odd late or changed record among them, so it
// tries the records that follow the last one it recognised.
type matcher struct {
	k    *knownList
	next int
}

// match implements pipeline.ElementMatcher.
func (m *matcher) match(rest string) (int, int32) {
	if m.k == nil {
		return 0, -1
	}
	for c := m.next; c < len(m.k.lens) && c < m.next+matchWindow; c++ {
		n := int(m.k.lens[c])
		if n > len(rest) || !endsElement(rest, n) || knownHash(rest[:n]) != m.k.hashes[c] {
			continue
		}
		m.next = c + 1
		return n, int32(c)
	}
	return 0, -1
}

// endsElement reports whether an array element can end at rest[n]: what
// follows, after any space, is a comma or the closing bracket.
func endsElement(rest string, n int) bool {
	for ; n < len(rest); n++ {
		switch rest[n] {
		case ' ', '\t', '\n', '\r':
			continue
		case ',', ']':
			return true
		}
		return false
	}
	return false
}
