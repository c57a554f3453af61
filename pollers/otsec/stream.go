package otsec

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// spec describes one time-ordered list stream.
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
	StreamDevices:        {pipeline.KindDevice, PathDevices, "discovTime", merge(deviceFields, newDeviceFields)},
}

// stream polls one list endpoint for one site and sensor.
type stream struct {
	p        *Poller
	name     string
	id       string
	siteIP   string
	sensorIP string
	spec     spec
	x        *pipeline.Extractor
	idx      fieldIndex

	mu        sync.Mutex
	lastTotal int // total the API reported at the last poll, -1 unknown
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
	return &stream{
		p: p, name: name, siteIP: siteIP, sensorIP: sensorIP, spec: sp, x: x, lastTotal: -1,
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
	total int
}

// fetch asks for the newest limit records, reading the answer into buf's
// storage; it returns the page and the buffer now holding the body.
func (s *stream) fetch(ctx context.Context, limit int, buf []byte) (page, []byte, error) {
	q := url.Values{}
	q.Set("siteIp", s.siteIP)
	q.Set("sensorIp", s.sensorIP)
	q.Set("data", dataQuery(limit, s.spec.sortBy, ""))
	data, body, err := s.p.client.get(ctx, s.spec.path, q, buf)
	if body != nil {
		buf = body
	}
	if err != nil {
		return page{}, buf, err
	}
	items, total, err := DecodeList(data)
	if err != nil {
		return page{}, buf, fmt.Errorf("GET %s: %w", s.spec.path, err)
	}
	return page{items: items, total: total}, buf, nil
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
	limit := cfg.PageLimit
	s.mu.Lock()
	lastTotal := s.lastTotal
	s.mu.Unlock()
	var batch pipeline.Batch
	var pg page
	var recs []pipeline.Record
	var reached bool
	// One body buffer serves every request of the poll (a larger answer
	// replaces a smaller one, whose records are no longer needed) and goes
	// back to the pool when the runner has committed the records.
	buf := s.p.bodies.get()
	for {
		var err error
		pg, buf, err = s.fetch(ctx, limit, buf)
		if err != nil {
			s.p.bodies.put(buf)
			return pipeline.Batch{}, err
		}
		batch.Fetched += len(pg.items)
		recs, reached, err = s.normalise(pg.items, pos.Floor)
		if err != nil {
			s.p.bodies.put(buf)
			return pipeline.Batch{}, err
		}
		if reached || len(pg.items) < limit || limit >= cfg.MaxPageLimit || (pg.total >= 0 && pg.total <= len(pg.items)) {
			break
		}
		limit = s.grow(limit, pg, lastTotal, pos)
	}
	complete := reached || len(pg.items) < limit || (pg.total >= 0 && pg.total <= len(pg.items))
	if !complete {
		batch.Gap = s.gapEstimate(pg, lastTotal, len(recs), pos)
	}
	s.mu.Lock()
	s.lastTotal = pg.total
	s.mu.Unlock()
	// Oldest first.
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	batch.Records = recs
	batch.Release = func() { s.p.bodies.put(buf) }
	return batch, nil
}

// grow picks the next limit.
func (s *stream) grow(limit int, pg page, lastTotal int, pos pipeline.Position) int {
	next := limit * 2
	if pg.total >= 0 {
		want := pg.total // first run, or unknown history: all of it
		if lastTotal >= 0 && !pos.Watermark.IsZero() {
			// New records since the last poll, plus what the overlap re-reads
			// (bounded by this page, all of which was inside the floor).
			want = pg.total - lastTotal + len(pg.items)
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

// normalise turns a page (newest first) into records, stopping at the
// first record older than floor; reached says whether it got there.
func (s *stream) normalise(items []gjson.Result, floor time.Time) ([]pipeline.Record, bool, error) {
	out := make([]pipeline.Record, 0, len(items))
	vals := make([]gjson.Result, s.x.Len())
	rank := make([]int, s.x.Len())
	for i, item := range items {
		if !item.IsObject() {
			return nil, false, fmt.Errorf("%s: record %d is %s, not an object", s.spec.path, i, item.Type)
		}
		s.x.Extract(item, vals, rank)
		t, err := pipeline.ParseTime(vals[s.idx.time])
		if err != nil {
			return nil, false, fmt.Errorf("%s: record %d (%.60s): time at %s: %w; set sources.%s.fields.%s.time to the right field",
				s.spec.path, i, keyHint(item), strings.Join(s.x.Paths(s.idx.time), "|"), err, s.p.name, s.name)
		}
		if t.Before(floor) {
			return out, true, nil
		}
		rec, err := s.record(item, vals, t)
		if err != nil {
			return nil, false, fmt.Errorf("%s: record %d: %w", s.spec.path, i, err)
		}
		out = append(out, rec)
	}
	return out, false, nil
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

// record builds one normalised record.
func (s *stream) record(item gjson.Result, v []gjson.Result, t time.Time) (pipeline.Record, error) {
	ix := &s.idx
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		return pipeline.Str(v[i])
	}
	raw := rawBytes(item)
	ev := &pipeline.Event{
		Kind: s.spec.kind,
		Time: t,
		Source: pipeline.Source{
			Product: pipeline.ProductOTSecurity, Instance: s.p.name, Stream: s.id,
			SiteIP: s.siteIP, SensorIP: s.sensorIP, URL: s.p.publicURL,
		},
	}
	if s.p.cfg.Raw {
		ev.Raw = raw
	}
	rec := pipeline.Record{Time: t, Event: ev}
	dev := &pipeline.Device{
		ID: get(ix.deviceID), Name: get(ix.deviceName), IP: get(ix.ip), MAC: get(ix.mac), Vendor: get(ix.vendor),
		Model: get(ix.model), Type: get(ix.deviceType), Firmware: get(ix.firmware), OS: get(ix.os),
		PurdueLevel: get(ix.purdue), Site: get(ix.site),
	}
	if s.spec.kind == pipeline.KindDevice {
		dev.ID, dev.Name, dev.Action = get(ix.id), get(ix.name), "added"
		switch {
		case dev.ID != "":
			rec.Key = "id:" + dev.ID
		case dev.MAC != "":
			rec.Key = "mac:" + strings.ToUpper(dev.MAC)
		case dev.IP != "":
			rec.Key = "ip:" + dev.IP
		default:
			return rec, fmt.Errorf("device has no id, MAC or IPv4 (looked at %s, %s, %s); set fields.%s.id",
				strings.Join(s.x.Paths(ix.id), "|"), strings.Join(s.x.Paths(ix.mac), "|"), strings.Join(s.x.Paths(ix.ip), "|"), s.name)
		}
		ev.Device = dev
		ev.Severity, ev.SeverityScore = pipeline.SeverityInfo, 1
		ev.Message = deviceMessage(dev)
		rec.Hash = hashWithout(item, volatileDeviceKeys)
		return rec, nil
	}
	id := get(ix.id)
	if id == "" {
		return rec, fmt.Errorf("alert has no id at %s; set sources.%s.fields.%s.id", strings.Join(s.x.Paths(ix.id), "|"), s.p.name, s.name)
	}
	rec.Key = id
	rec.Hash = pipeline.ContentHash(raw)
	alert := &pipeline.Alert{ID: id, Type: get(ix.typ), Name: get(ix.name), Status: get(ix.status), Reason: get(ix.reason)}
	started := t
	alert.Started = &started
	if ix.ended >= 0 {
		if e, err := pipeline.ParseTime(v[ix.ended]); err == nil {
			alert.Ended = &e
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
		nw := &pipeline.Network{
			SrcIP: get(ix.srcIP), SrcPort: port(ix.srcPort), SrcMAC: get(ix.srcMAC),
			DstIP: get(ix.dstIP), DstPort: port(ix.dstPort), DstMAC: get(ix.dstMAC),
			Protocol: get(ix.protocol), Transport: get(ix.transport),
		}
		if *nw != (pipeline.Network{}) {
			ev.Network = nw
		}
	}
	if ix.ruleID >= 0 {
		r := &pipeline.Rule{ID: get(ix.ruleID), Name: get(ix.ruleName), Category: get(ix.rc)}
		if *r != (pipeline.Rule{}) {
			ev.Rule = r
		}
		if ev.Message == "" {
			ev.Message = r.Name
		}
	}
	return rec, nil
}

func emptyDevice(d *pipeline.Device) bool { return *d == pipeline.Device{} }

func deviceMessage(d *pipeline.Device) string {
	name := d.Name
	if name == "" {
		name = "device"
	}
	var parts []string
	for _, p := range []string{d.IP, d.MAC, d.Vendor, d.Model} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "New device " + name
	}
	return "New device " + name + " (" + strings.Join(parts, ", ") + ")"
}

// hashWithout hashes a record's top-level members except the skipped keys.
func hashWithout(item gjson.Result, skip map[string]bool) uint64 {
	var parts [][]byte
	item.ForEach(func(k, v gjson.Result) bool {
		if !skip[k.Str] {
			parts = append(parts, rawBytes(k), rawBytes(v))
		}
		return true
	})
	return pipeline.ContentHash(parts...)
}
