package otsec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// setSpec describes one whole-set list stream.
type setSpec struct {
	kind   string
	path   string
	sortBy string // "" asks for the API's own order
	fields pipeline.FieldPaths
}

// setSpecs are the set streams. The CVE list is read from device-cves/items,
// the one of the document's two CVE endpoints that lists a whole sensor with
// a limit (its example asks for sortBy "name"); device/cves takes no
// documented paging and sits in the document's per-device patching recipe,
// so using it would cost one request per device per poll. The patch request
// list documents no `data` at all: the bridge sends the limit and page
// without a sort key and takes the API's order.
var setSpecs = map[string]setSpec{
	StreamDevices:       {pipeline.KindDevice, PathDevices, "discovTime", merge(deviceFields, inventoryFields)},
	StreamCVEs:          {pipeline.KindCVE, PathDeviceCVEs, "name", merge(deviceFields, cveFields)},
	StreamPatchRequests: {pipeline.KindPatchRequest, PathPatchRequests, "", merge(deviceFields, patchFields)},
}

// setStream polls one whole list (a sensor's devices, a site's devices, a
// sensor's CVEs or patch requests) and hands all of it to the runner, which
// compares it with what it has seen (pipeline.SetStream).
type setStream struct {
	p           *Poller
	name        string
	id          string
	siteIP      string
	sensorIP    string
	siteID      int // > 0: the site's whole inventory from devices/items?siteId=[..]
	path        string
	spec        setSpec
	removeAfter time.Duration
	x           *pipeline.Extractor // every field, for building events
	ix          map[string]int      // x's slot of each field
	q           *pipeline.Extractor // what a key needs, for every record
	qi          map[string]int

	mu        sync.Mutex
	lastCount int // records of the last poll, to size the next request

	// vals and rank are build's scratch space, reused for every record.
	vals []gjson.Result
	rank []int
}

func newSetStream(p *Poller, name, siteIP, sensorIP string, siteID int) *setStream {
	sp := setSpecs[name]
	fields := sp.fields.Merge(p.cfg.Fields[name])
	if t, ok := p.cfg.Fields[name]["time"]; ok && sp.sortBy == "discovTime" && !strings.ContainsAny(t, ".#|@*?") {
		sp.sortBy = t // the device list is sorted on its time field
	}
	x := pipeline.NewExtractor(fields)
	quick := pipeline.FieldPaths{"time": fields["time"]}
	for _, f := range keyFields(sp.kind) {
		quick[f] = fields[f]
	}
	q := pipeline.NewExtractor(quick)
	s := &setStream{
		p: p, name: name, siteIP: siteIP, sensorIP: sensorIP, siteID: siteID, path: sp.path, spec: sp,
		x: x, ix: map[string]int{}, q: q, qi: map[string]int{},
		id: p.name + "/" + siteIP + "/" + sensorIP + "/" + name,
	}
	if siteID > 0 {
		s.path = PathDevicesBySite
		s.id = p.name + "/" + siteIP + "/site-" + strconv.Itoa(siteID) + "/" + name
	}
	if name == StreamDevices {
		s.removeAfter = p.cfg.RemoveAfter
	}
	for f := range fields {
		s.ix[f] = x.Index(f)
	}
	for f := range quick {
		s.qi[f] = q.Index(f)
	}
	return s
}

// keyFields are the fields a kind's natural key is made of (EVENTS.md).
func keyFields(kind string) []string {
	switch kind {
	case pipeline.KindDevice:
		return []string{"id", "mac", "ip"}
	case pipeline.KindCVE:
		return []string{"device_id", "mac", "ip", "cve"}
	}
	return []string{"id"}
}

// ID implements pipeline.Stream.
func (s *setStream) ID() string { return s.id }

// RemoveAfter implements pipeline.SetStream: remove_after for devices; a
// CVE or patch request that leaves its list is not reported.
func (s *setStream) RemoveAfter() time.Duration { return s.removeAfter }

// fetch asks for the first limit records of the list.
func (s *setStream) fetch(ctx context.Context, limit int, buf []byte) (page, []byte, error) {
	q := url.Values{}
	if s.siteID > 0 {
		q.Set("siteId", "["+strconv.Itoa(s.siteID)+"]")
	} else {
		q.Set("siteIp", s.siteIP)
		q.Set("sensorIp", s.sensorIP)
	}
	q.Set("data", dataQuery(limit, s.spec.sortBy, ""))
	return s.p.list(ctx, s.path, q, buf, nil)
}

// Poll implements pipeline.Stream. The API serves only page 1, so a poll
// asks for a limit that holds the whole list: the last poll's size plus
// page_limit, grown (to the reported total, else doubled) while the answer
// is full, never past max_page_limit. A list the cap cut short is returned
// with a gap, so the runner concludes no removal from it.
func (s *setStream) Poll(ctx context.Context, _ pipeline.Position) (pipeline.Batch, error) {
	cfg := s.p.cfg
	s.mu.Lock()
	limit := min(max(cfg.PageLimit, s.lastCount+cfg.PageLimit), cfg.MaxPageLimit)
	s.mu.Unlock()
	buf := s.p.bodies.Get(0)
	first := buf // the pool's buffer, which a larger answer may replace
	var pg page
	for {
		var err error
		if pg, buf, err = s.fetch(ctx, limit, buf); err != nil {
			s.p.bodies.PutReplaced(first, buf)
			return pipeline.Batch{}, err
		}
		if !listCut(pg, limit) || limit >= cfg.MaxPageLimit {
			break
		}
		limit = min(max(limit*2, pg.total), cfg.MaxPageLimit)
	}
	recs, err := s.records(pg.items)
	if err != nil {
		s.p.bodies.PutReplaced(first, buf)
		return pipeline.Batch{}, err
	}
	batch := pipeline.Batch{Volatile: volatileKeys}
	if listCut(pg, limit) {
		batch.Gap = 1
		if pg.total > len(pg.items) {
			batch.Gap = pg.total - len(pg.items)
		}
		s.p.log.Debug("set list cut short by max_page_limit", zap.String("stream", s.id), zap.Int("limit", limit), zap.Int("total", pg.total))
	}
	s.mu.Lock()
	s.lastCount = len(pg.items)
	s.mu.Unlock()
	batch.Records = recs
	batch.Normalize = s.build
	batch.Release = func() { s.p.bodies.PutReplaced(first, buf) }
	return batch, nil
}

// listCut says whether a list answer may have left records out: it is full
// and no total says it holds them all.
func listCut(pg page, limit int) bool {
	return len(pg.items) >= limit && (pg.total < 0 || pg.total > len(pg.items))
}

// records turns a list answer into records, oldest first (the API answers
// newest first). A key listed twice (a device seen by two sensors of a site)
// is taken once, as first listed, so the two copies do not alternate as
// revisions.
func (s *setStream) records(items []gjson.Result) ([]pipeline.Record, error) {
	out := make([]pipeline.Record, 0, len(items))
	seen := make(map[string]struct{}, len(items))
	vals := make([]gjson.Result, s.q.Len())
	rank := make([]int, s.q.Len())
	dups := 0
	for i, item := range items {
		rec, err := s.record(item, vals, rank)
		if err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", s.path, i, err)
		}
		if _, ok := seen[rec.Key]; ok {
			dups++
			continue
		}
		seen[rec.Key] = struct{}{}
		out = append(out, rec)
	}
	if dups > 0 {
		s.p.log.Debug("set list names some keys twice; the first is kept", zap.String("stream", s.id), zap.Int("repeats", dups))
	}
	slices.Reverse(out)
	return out, nil
}

// record reads one list item's key, time and content hash.
func (s *setStream) record(item gjson.Result, vals []gjson.Result, rank []int) (pipeline.Record, error) {
	if !item.IsObject() {
		return pipeline.Record{}, fmt.Errorf("is %s, not an object", item.Type)
	}
	s.q.ExtractFirst(item, vals, rank)
	qv := func(f string) gjson.Result { return vals[s.qi[f]] }
	t, err := pipeline.ParseTime(qv("time"))
	if err != nil && !errors.Is(err, pipeline.ErrNoTime) {
		return pipeline.Record{}, fmt.Errorf("time at %s: %w; set sources.%s.fields.%s.time to the right field",
			strings.Join(s.q.Paths(s.qi["time"]), "|"), err, s.p.name, s.name)
	}
	var key string
	switch s.spec.kind {
	case pipeline.KindDevice:
		key = deviceKey(qv("id"), qv("mac"), qv("ip"))
		if key == "" {
			return pipeline.Record{}, fmt.Errorf("device has no id, MAC or IPv4 (looked at %s); set sources.%s.fields.%s.id",
				s.lookedAt("id", "mac", "ip"), s.p.name, s.name)
		}
	case pipeline.KindCVE:
		dev := deviceKey(qv("device_id"), qv("mac"), qv("ip"))
		cve := pipeline.Str(qv("cve"))
		if dev == "" || cve == "" {
			return pipeline.Record{}, fmt.Errorf("CVE record needs a device (id, MAC or IPv4 at %s) and a CVE id (at %s); set sources.%s.fields.%s.device_id or .cve",
				s.lookedAt("device_id", "mac", "ip"), s.lookedAt("cve"), s.p.name, s.name)
		}
		key = dev + "/" + cve
	default:
		// A copy: the runner keeps a set stream's keys for as long as the
		// record is in the set, and a view into the response body would
		// keep that whole body alive and see it overwritten when the
		// buffer is reused (the keys above are concatenations: copies).
		if key = strings.Clone(pipeline.Str(qv("id"))); key == "" {
			return pipeline.Record{}, fmt.Errorf("patch request has no id at %s; set sources.%s.fields.%s.id",
				s.lookedAt("id"), s.p.name, s.name)
		}
	}
	return pipeline.Record{Key: key, Time: t, Raw: rawBytes(item), Hash: hashWithout(item, volatileKeys)}, nil
}

func (s *setStream) lookedAt(fields ...string) string {
	var out []string
	for _, f := range fields {
		out = append(out, s.q.Paths(s.qi[f])...)
	}
	return strings.Join(out, "|")
}

// deviceKey is a device's natural key: its id, else its MAC, else its IPv4.
func deviceKey(id, mac, ip gjson.Result) string {
	if v := pipeline.Str(id); v != "" {
		return "id:" + v
	}
	if v := pipeline.Str(mac); v != "" {
		return "mac:" + strings.ToUpper(v)
	}
	if v := pipeline.Str(ip); v != "" {
		return "ip:" + v
	}
	return ""
}

// build fills rec.Event (pipeline.Batch.Normalize).
func (s *setStream) build(rec *pipeline.Record) error {
	item := gjson.Parse(unsafe.String(unsafe.SliceData(rec.Raw), len(rec.Raw)))
	if len(s.vals) != s.x.Len() {
		s.vals, s.rank = make([]gjson.Result, s.x.Len()), make([]int, s.x.Len())
	}
	s.x.Extract(item, s.vals, s.rank) // resets every slot first
	v := setValues{vals: s.vals, ix: s.ix}
	ev := &pipeline.Event{
		Kind: s.spec.kind,
		Time: rec.Time,
		Source: pipeline.Source{
			Product: pipeline.ProductOTSecurity, Instance: s.p.name, Stream: s.id,
			SiteIP: s.siteIP, SensorIP: s.sensorIP, URL: s.p.publicURL,
		},
		Severity: pipeline.SeverityInfo, SeverityScore: 1,
	}
	if ev.Source.SensorIP == "" {
		ev.Source.SensorIP = v.str("sensor")
	}
	if s.p.cfg.Raw {
		ev.Raw = rec.Raw
	}
	var prev gjson.Result
	var changed []string
	if rec.Action == pipeline.ActionChanged && rec.Previous != nil {
		// The runner read the previous revision from the journal and
		// compared it already (volatile keys left out: Batch.Volatile).
		prev = gjson.ParseBytes(rec.Previous)
		changed = slices.Sorted(maps.Keys(rec.Changes))
	}
	dev := &pipeline.Device{
		ID: v.str("device_id"), Name: v.str("device_name"), IP: v.str("ip"), MAC: v.str("mac"), Vendor: v.str("vendor"),
		Model: v.str("model"), Type: v.str("device_type"), Firmware: v.str("firmware"), OS: v.str("os"),
		PurdueLevel: v.str("purdue_level"), Site: v.str("site"),
	}
	switch s.spec.kind {
	case pipeline.KindDevice:
		dev.ID, dev.Name, dev.Action = v.str("id"), v.str("name"), rec.Action
		if dev.ID == "" && dev.MAC == "" && dev.IP == "" {
			fillFromKey(dev, rec.Key) // a removal whose last sighting has left the journal
		}
		ev.Device = dev
		ev.Message = deviceMessage(rec.Action, dev, changed)
	case pipeline.KindCVE:
		vul := &pipeline.Vulnerability{CVE: v.str("cve"), CVSSVector: v.str("cvss_vector"), Description: v.str("description")}
		if score, ok := parseCVSS(v.get("cvss")); ok {
			vul.CVSS = &score
		}
		ev.Vulnerability = vul
		ev.Severity, ev.SeverityScore = CVSSSeverity(vul.CVSS)
		if !emptyDevice(dev) {
			ev.Device = dev
		}
		ev.Message = cveMessage(rec.Action, vul, dev, changed)
	case pipeline.KindPatchRequest:
		pt := &pipeline.Patch{
			ID: v.str("id"), Status: v.str("status"), Device: firstNonEmpty(dev.Name, dev.ID, dev.IP, dev.MAC),
			FirmwareFrom: v.str("firmware_from"), FirmwareTo: v.str("firmware_to"), RequestedBy: v.str("requested_by"),
		}
		ev.Patch = pt
		if !emptyDevice(dev) {
			ev.Device = dev
		}
		if rec.Action == pipeline.ActionChanged {
			if t, err := pipeline.ParseTime(v.get("updated")); err == nil {
				ev.Time = t
			}
		}
		oldStatus := ""
		if prev.Exists() {
			if o := pipeline.Str(firstPath(prev, s.x.Paths(s.ix["status"]))); o != pt.Status {
				oldStatus = o
			}
		}
		ev.Message = patchMessage(rec.Action, pt, oldStatus, changed)
	}
	rec.Event = ev
	clear(s.vals) // they point into the response body: do not keep it alive
	return nil
}

// setValues reads extracted fields by name.
type setValues struct {
	vals []gjson.Result
	ix   map[string]int
}

func (v setValues) get(f string) gjson.Result {
	if i, ok := v.ix[f]; ok && i >= 0 {
		return v.vals[i]
	}
	return gjson.Result{}
}

func (v setValues) str(f string) string { return pipeline.Str(v.get(f)) }

// firstPath returns the value at the first of paths present in r.
func firstPath(r gjson.Result, paths []string) gjson.Result {
	for _, p := range paths {
		if v := r.Get(p); v.Exists() && v.Type != gjson.Null {
			return v
		}
	}
	return gjson.Result{}
}

func fillFromKey(d *pipeline.Device, key string) {
	switch {
	case strings.HasPrefix(key, "id:"):
		d.ID = key[3:]
	case strings.HasPrefix(key, "mac:"):
		d.MAC = key[4:]
	case strings.HasPrefix(key, "ip:"):
		d.IP = key[3:]
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseCVSS reads a CVSS base score: a number, or a string that starts with
// one ("9.8", "9.8 (Critical)"). Scores outside 0–10 are not scores.
func parseCVSS(r gjson.Result) (float64, bool) {
	var f float64
	switch r.Type {
	case gjson.Number:
		f = r.Num
	case gjson.String:
		s := strings.TrimSpace(r.Str)
		end := 0
		for end < len(s) && (s[end] == '.' || (s[end] >= '0' && s[end] <= '9')) {
			end++
		}
		v, err := strconv.ParseFloat(s[:end], 64)
		if err != nil {
			return 0, false
		}
		f = v
	default:
		return 0, false
	}
	if math.IsNaN(f) || f < 0 || f > 10 {
		return 0, false
	}
	return math.Round(f*10) / 10, true
}

// CVSSSeverity maps a CVSS base score to a severity and score (EVENTS.md):
// 0.1–3.9 low 3, 4.0–6.9 medium 5, 7.0–8.9 high 7, 9.0–10.0 critical 9;
// none (no score, or 0.0) info 1.
func CVSSSeverity(cvss *float64) (string, int) {
	switch {
	case cvss == nil || *cvss <= 0:
		return pipeline.SeverityInfo, 1
	case *cvss < 4:
		return pipeline.SeverityLow, 3
	case *cvss < 7:
		return pipeline.SeverityMedium, 5
	case *cvss < 9:
		return pipeline.SeverityHigh, 7
	}
	return pipeline.SeverityCritical, 9
}

// deviceLabel names a device for a message: "PLC-01 (192.168.10.5, E0:DC:A0:01:02:03, Siemens S7-1500)".
func deviceLabel(d *pipeline.Device) string {
	name := firstNonEmpty(d.Name, d.ID, "device")
	var parts []string
	if d.IP != "" {
		parts = append(parts, d.IP)
	}
	if d.MAC != "" {
		parts = append(parts, d.MAC)
	}
	if vm := strings.TrimSpace(d.Vendor + " " + d.Model); vm != "" {
		parts = append(parts, vm)
	}
	if len(parts) == 0 {
		return name
	}
	return name + " (" + strings.Join(parts, ", ") + ")"
}

func changedSuffix(changed []string) string {
	if len(changed) == 0 {
		return ""
	}
	return ": " + strings.Join(changed, ", ")
}

func deviceMessage(action string, d *pipeline.Device, changed []string) string {
	switch action {
	case pipeline.ActionChanged:
		return "Device changed: " + deviceLabel(d) + changedSuffix(changed)
	case pipeline.ActionRemoved:
		return "Device removed: " + deviceLabel(d)
	}
	return "Device added: " + deviceLabel(d)
}

func cveMessage(action string, v *pipeline.Vulnerability, d *pipeline.Device, changed []string) string {
	var b strings.Builder
	b.WriteString(v.CVE)
	if v.CVSS != nil {
		b.WriteString(" (CVSS " + strconv.FormatFloat(*v.CVSS, 'f', 1, 64) + ")")
	}
	if action == pipeline.ActionChanged {
		b.WriteString(" changed")
	}
	if !emptyDevice(d) {
		b.WriteString(" on " + deviceLabel(d))
	}
	b.WriteString(changedSuffix(changed))
	return b.String()
}

func patchMessage(action string, p *pipeline.Patch, oldStatus string, changed []string) string {
	var b strings.Builder
	b.WriteString("Patch request " + p.ID)
	if p.Device != "" {
		b.WriteString(" for " + p.Device)
	}
	if p.FirmwareFrom != "" || p.FirmwareTo != "" {
		b.WriteString(": " + firstNonEmpty(p.FirmwareFrom, "?") + " -> " + firstNonEmpty(p.FirmwareTo, "?"))
	}
	switch {
	case action == pipeline.ActionChanged && oldStatus != "" && p.Status != "":
		b.WriteString(", status " + oldStatus + " -> " + p.Status)
	case action == pipeline.ActionChanged:
		b.WriteString(" changed" + changedSuffix(changed))
	case p.Status != "":
		b.WriteString(" (" + p.Status)
		if p.RequestedBy != "" {
			b.WriteString(", requested by " + p.RequestedBy)
		}
		b.WriteString(")")
	}
	return b.String()
}
