package otsectest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Stream names accepted by Add, AddAt, Update, Records, Count and
// Options.Streams.
const (
	// StreamDeviceAlerts is the device alert list (PathDeviceAlerts).
	StreamDeviceAlerts = "device_alerts"
	// StreamConnAlerts is the connection alert list (PathConnAlerts).
	StreamConnAlerts = "conn_alerts"
	// StreamSuricataAlerts is the Suricata alert list (PathSuricataAlerts).
	StreamSuricataAlerts = "suricata_alerts"
	// StreamDevices is the device list (PathDevices, PathDevicesBySite).
	StreamDevices = "devices"
	// StreamCVEs is the device CVE list (PathDeviceCVEs, PathDeviceCVEsAlt).
	StreamCVEs = "cves"
	// StreamPatchRequests is the patch request list (PathPatchRequests).
	StreamPatchRequests = "patch_requests"
)

// streamSpec describes one kind of record.
type streamSpec struct {
	name      string
	timeField string // the field records are kept sorted on
	gen       func(st *store, w *jw, id int64, t time.Time)
}

var streamSpecs = map[string]*streamSpec{
	StreamDeviceAlerts:   {StreamDeviceAlerts, "alertStarted", genDeviceAlert},
	StreamConnAlerts:     {StreamConnAlerts, "alertStarted", genConnAlert},
	StreamSuricataAlerts: {StreamSuricataAlerts, "alertStarted", genSuricataAlert},
	StreamDevices:        {StreamDevices, "discovTime", genDevice},
	StreamCVEs:           {StreamCVEs, "firstSeen", genCVE},
	StreamPatchRequests:  {StreamPatchRequests, "createdAt", genPatchRequest},
}

// allStreams is the order stores are created in.
var allStreams = []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices, StreamCVEs, StreamPatchRequests}

// rec is one stored record.
type rec struct {
	key int64  // sort key: the time field in ms, at the rendered precision
	id  int64  // the record's "id"
	seq int64  // insertion order within the store
	js  []byte // the rendered JSON object; never modified in place
}

func (a *rec) less(b *rec) bool { return a.key < b.key || (a.key == b.key && a.id < b.id) }

// store holds the records of one (stream, site, sensor).
type store struct {
	spec         *streamSpec
	site, sensor string
	net          string   // "192.168.x." of the sensor's devices
	devs         []device // shared by the sensor's stores; read-only

	mu      sync.RWMutex
	recs    []rec // sorted by (key, id)
	newest  time.Time
	has     bool
	seq     int64
	rng     *rand.Rand
	slab    []byte // backing memory for rendered records
	scratch []byte
}

// keep copies b into the store's slab and returns the copy.
func (st *store) keep(b []byte) []byte {
	if cap(st.slab)-len(st.slab) < len(b) {
		st.slab = make([]byte, 0, max(256<<10, len(b)))
	}
	n := len(st.slab)
	st.slab = append(st.slab, b...)
	return st.slab[n:len(st.slab):len(st.slab)]
}

func (st *store) insert(r rec) {
	n := len(st.recs)
	if n == 0 || !r.less(&st.recs[n-1]) {
		st.recs = append(st.recs, r)
		return
	}
	i := sort.Search(n, func(i int) bool { return r.less(&st.recs[i]) })
	st.recs = slices.Insert(st.recs, i, r)
}

// addLocked renders and stores one new record at time t. st.mu is held.
func (st *store) addLocked(id int64, t time.Time, tf timeFormat) {
	t = t.Truncate(time.Millisecond)
	w := jw{b: st.scratch[:0], tf: tf}
	w.begin()
	st.spec.gen(st, &w, id, t)
	w.end()
	st.scratch = w.b
	st.seq++
	st.insert(rec{key: sortKey(t, tf), id: id, seq: st.seq, js: st.keep(w.b)})
	if !st.has || t.After(st.newest) {
		st.newest, st.has = t, true
	}
}

// listQuery is a decoded `data` parameter.
type listQuery struct {
	limit  int // 0: all
	sortBy string
	desc   bool
	props  map[string]string
	quoted [][]byte // props values as JSON strings, for a cheap pre-check
	id     int64
	hasID  bool
}

func (q *listQuery) filtered() bool { return len(q.props) > 0 || q.hasID }

func (q *listQuery) match(r *rec) bool {
	if q.hasID && r.id != q.id {
		return false
	}
	if len(q.props) == 0 {
		return true
	}
	for _, v := range q.quoted {
		if !bytes.Contains(r.js, v) {
			return false
		}
	}
	var m map[string]any
	if json.Unmarshal(r.js, &m) != nil {
		return false
	}
	for k, v := range q.props {
		if s, ok := m[k].(string); !ok || s != v {
			return false
		}
	}
	return true
}

// answer is the records chosen for a list response, in answer order.
type answer struct {
	recs   []rec
	idx    []int // when non-nil: recs[idx[i]]
	lo, hi int   // otherwise: recs[lo:hi], backwards when desc
	desc   bool
	total  int
}

func (a *answer) each(f func(js []byte)) {
	if a.idx != nil {
		for _, i := range a.idx {
			f(a.recs[i].js)
		}
		return
	}
	if a.desc {
		for i := a.hi - 1; i >= a.lo; i-- {
			f(a.recs[i].js)
		}
		return
	}
	for i := a.lo; i < a.hi; i++ {
		f(a.recs[i].js)
	}
}

// pick chooses the records that answer q from recs, which are sorted by
// (key, id) on timeField.
func pick(recs []rec, q *listQuery, timeField string) answer {
	lim := func(n int) int {
		if q.limit > 0 && q.limit < n {
			return q.limit
		}
		return n
	}
	if q.sortBy == timeField && !q.filtered() {
		n := len(recs)
		k := lim(n)
		if q.desc {
			return answer{recs: recs, lo: n - k, hi: n, desc: true, total: n}
		}
		return answer{recs: recs, lo: 0, hi: k, total: n}
	}
	if q.sortBy == timeField {
		var idx []int
		total := 0
		visit := func(i int) {
			if q.match(&recs[i]) {
				total++
				if q.limit == 0 || len(idx) < q.limit {
					idx = append(idx, i)
				}
			}
		}
		if q.desc {
			for i := len(recs) - 1; i >= 0; i-- {
				visit(i)
			}
		} else {
			for i := range recs {
				visit(i)
			}
		}
		if idx == nil {
			idx = []int{}
		}
		return answer{recs: recs, idx: idx, total: total}
	}
	return pickSlow(recs, q)
}

// sortVal is one record's value of a sortBy field other than the time field.
type sortVal struct {
	kind int8 // 0 number, 1 string, 2 bool, 3 other, 4 missing or null
	num  float64
	str  string
}

func toSortVal(v any, ok bool) sortVal {
	if !ok || v == nil {
		return sortVal{kind: 4}
	}
	switch x := v.(type) {
	case float64:
		return sortVal{kind: 0, num: x}
	case string:
		return sortVal{kind: 1, str: x}
	case bool:
		if x {
			return sortVal{kind: 2, num: 1}
		}
		return sortVal{kind: 2}
	}
	b, _ := json.Marshal(v)
	return sortVal{kind: 3, str: string(b)}
}

// pickSlow sorts on an arbitrary field by decoding every matching record.
// Records lacking the field come last whatever the direction.
func pickSlow(recs []rec, q *listQuery) answer {
	var idx []int
	var vals []sortVal
	for i := range recs {
		if !q.match(&recs[i]) {
			continue
		}
		var m map[string]any
		_ = json.Unmarshal(recs[i].js, &m)
		v, ok := m[q.sortBy]
		idx = append(idx, i)
		vals = append(vals, toSortVal(v, ok))
	}
	order := make([]int, len(idx))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool {
		a, b := &vals[order[x]], &vals[order[y]]
		if (a.kind == 4) != (b.kind == 4) {
			return b.kind == 4
		}
		c := cmp.Compare(a.kind, b.kind)
		if c == 0 {
			c = cmp.Compare(a.num, b.num)
		}
		if c == 0 {
			c = cmp.Compare(a.str, b.str)
		}
		if c == 0 {
			c = cmp.Compare(recs[idx[order[x]]].id, recs[idx[order[y]]].id)
		}
		if q.desc {
			return c > 0
		}
		return c < 0
	})
	total := len(order)
	if q.limit > 0 && q.limit < len(order) {
		order = order[:q.limit]
	}
	out := make([]int, len(order))
	for i, o := range order {
		out[i] = idx[o]
	}
	return answer{recs: recs, idx: out, total: total}
}

// Envelope pieces of a list answer, by Options.ListShape.
var (
	listPrefix = map[string]string{
		"object": `{"error":false,"errors":[],"data":{"items":[`,
		"list":   `{"error":false,"errors":[],"data":{"list":[`,
		"array":  `{"error":false,"errors":[],"data":[`,
	}
)

// render writes a's records into buf (reused when large enough) as a full
// response body.
func render(buf []byte, shape string, a *answer) []byte {
	size := len(listPrefix[shape]) + 40
	a.each(func(js []byte) { size += len(js) + 1 })
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	buf = append(buf[:0], listPrefix[shape]...)
	first := true
	a.each(func(js []byte) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, js...)
	})
	if shape == "array" {
		return append(buf, "]}"...)
	}
	buf = append(buf, `],"total":`...)
	buf = strconv.AppendInt(buf, int64(a.total), 10)
	return append(buf, "}}"...)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func putBuf(p *[]byte) {
	if cap(*p) <= 64<<20 {
		*p = (*p)[:0]
		bufPool.Put(p)
	}
}
