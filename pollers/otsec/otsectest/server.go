package otsectest

import (
	"cmp"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Token is the bearer token the server accepts; default "test-token".
	Token string
	// Sites are the sites and their sensors that the components endpoint
	// lists and the sensor endpoints accept; default one site 10.40.172.144
	// with one sensor 10.40.172.172 (the vendor document's example).
	Sites []Site
	// ListShape is the shape of `data` on list endpoints: "object" (default)
	// {"items":[...],"total":N}, "array" [...], or "list" {"list":[...],"total":N}.
	ListShape string
	// TimeFormat is how record times are rendered: "rfc3339" (default; UTC,
	// millisecond fraction, "2026-11-23T08:52:43.123Z"), "epoch_ms" or
	// "epoch_s" (JSON numbers).
	TimeFormat string
	// Seed makes record content, and everything chosen at random, repeatable.
	Seed int64
	// Start is the time of the oldest record Add generates on each stream;
	// default 2026-11-01T00:00:00Z.
	Start time.Time
	// Now is the clock for records StartGenerator adds; default time.Now.
	Now func() time.Time
	// Streams are the streams StartGenerator feeds; default device_alerts,
	// conn_alerts, suricata_alerts and devices.
	Streams []string
	// MaxRequests bounds the request log (Requests) to about this many most
	// recent entries; 0 keeps every request. Long-running demos set it.
	MaxRequests int
}

// Site is one site of the Enterprise Manager and the sensors under it.
type Site struct {
	// SiteIP is the site's address, as the siteIp query parameter names it.
	SiteIP string
	// SensorIPs are the site's sensors, as the sensorIp parameter names them.
	SensorIPs []string
}

// Faults are failures injected into answers. Each probability (0 to 1) is
// drawn per request from the server's own random source; at most one fault
// applies to a request, tried in the order Hang, Status5xx, HTML, HTMLOK,
// ErrorTrue, Truncate. Hang, Status5xx, HTML and HTMLOK happen before the
// token is checked, as a proxy in front of the server would; ErrorTrue
// replaces an authenticated answer; Truncate cuts whatever answer was made.
type Faults struct {
	// Latency is added to every response.
	Latency time.Duration
	// Status5xx is the probability of a 503 with a plain-text (not JSON) body.
	Status5xx float64
	// HTML is the probability of a 502 with an nginx-style HTML error page.
	HTML float64
	// HTMLOK is the probability of a 200 with an HTML page (a captive portal
	// or a proxy's login page).
	HTMLOK float64
	// Truncate is the probability that the body is cut in half: either with
	// a Content-Length that is honest about the cut length, or with the full
	// Content-Length and the connection closed mid-body (half of each).
	Truncate float64
	// ErrorTrue is the probability of an HTTP 200 whose body is
	// {"error":true,"errors":[{"code":"NEM-3003-000500","message":"Internal error"}]}.
	ErrorTrue float64
	// Hang is the probability that no answer comes: the handler waits until
	// the request's context ends (the client gives up) or the server closes.
	Hang float64
}

// Request is one logged request.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the URL path.
	Path string
	// Query is the parsed query string.
	Query url.Values
	// Data is the decoded `data` query parameter, nil when it was absent or
	// not a JSON object.
	Data map[string]any
	// Status is the HTTP status answered; 0 when no answer was sent (Hang).
	Status int
	// Fault names the injected fault ("hang", "5xx", "html", "htmlok",
	// "error_true", "truncate", "truncate_close"), empty when none was.
	Fault string
}

// Server is a fake Enterprise Manager. It is an http.Handler; NewServer and
// NewTLSServer also run it on a loopback listener. All methods are safe for
// concurrent use, also while requests are served. Methods that take a
// stream, site and sensor panic when the stream is not one of the Stream
// constants or the sensor is not configured at the site.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port" or "https://...", without
	// a trailing slash; empty for NewUnstartedHandler.
	URL string

	ts        *httptest.Server
	tf        timeFormat
	shape     string
	start     time.Time
	now       func() time.Time
	seed      int64
	sites     []Site
	genStream []string
	maxReqs   int
	stores    map[storeKey]*store
	nextID    atomic.Int64
	reqCount  atomic.Int64
	done      chan struct{}
	closeOnce sync.Once
	genWG     sync.WaitGroup
	genN      atomic.Uint64

	mu      sync.Mutex // guards the fields below
	token   string
	expired bool
	faults  Faults
	frng    *rand.Rand
	log     []Request
}

type storeKey struct{ stream, site, sensor string }

// Validate reports what is wrong with o, if anything. The constructors panic
// on options that do not validate.
func (o Options) Validate() error {
	var errs []error
	switch o.ListShape {
	case "", "object", "array", "list":
	default:
		errs = append(errs, fmt.Errorf("ListShape %q: want object, array or list", o.ListShape))
	}
	switch o.TimeFormat {
	case "", "rfc3339", "epoch_ms", "epoch_s":
	default:
		errs = append(errs, fmt.Errorf("TimeFormat %q: want rfc3339, epoch_ms or epoch_s", o.TimeFormat))
	}
	seen := map[[2]string]bool{}
	for i, s := range o.Sites {
		if s.SiteIP == "" {
			errs = append(errs, fmt.Errorf("Sites[%d]: empty SiteIP", i))
		}
		if len(s.SensorIPs) == 0 {
			errs = append(errs, fmt.Errorf("Sites[%d]: no SensorIPs", i))
		}
		for _, ip := range s.SensorIPs {
			k := [2]string{s.SiteIP, ip}
			if ip == "" || seen[k] {
				errs = append(errs, fmt.Errorf("Sites[%d]: empty or repeated sensor %q", i, ip))
			}
			seen[k] = true
		}
	}
	for _, st := range o.Streams {
		if streamSpecs[st] == nil {
			errs = append(errs, fmt.Errorf("Streams: unknown stream %q", st))
		}
	}
	if o.MaxRequests < 0 {
		errs = append(errs, errors.New("MaxRequests: negative"))
	}
	return errors.Join(errs...)
}

// NewUnstartedHandler returns a Server without a listener, for a program
// that serves it itself (it implements http.Handler); URL is empty.
func NewUnstartedHandler(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic("otsectest: " + err.Error())
	}
	s := &Server{
		shape:     orDefault(opts.ListShape, "object"),
		start:     opts.Start,
		now:       opts.Now,
		seed:      opts.Seed,
		sites:     opts.Sites,
		genStream: opts.Streams,
		maxReqs:   opts.MaxRequests,
		stores:    map[storeKey]*store{},
		done:      make(chan struct{}),
		token:     orDefault(opts.Token, "test-token"),
		frng:      rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_fa17)),
	}
	switch opts.TimeFormat {
	case "epoch_ms":
		s.tf = tfEpochMS
	case "epoch_s":
		s.tf = tfEpochS
	}
	if s.start.IsZero() {
		s.start = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if len(s.sites) == 0 {
		s.sites = []Site{{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172"}}}
	}
	s.sites = slices.Clone(s.sites)
	for i := range s.sites {
		s.sites[i].SensorIPs = slices.Clone(s.sites[i].SensorIPs)
	}
	if len(s.genStream) == 0 {
		s.genStream = []string{StreamDeviceAlerts, StreamConnAlerts, StreamSuricataAlerts, StreamDevices}
	}
	s.nextID.Store(1000)
	k := 0
	for _, site := range s.sites {
		for _, sensor := range site.SensorIPs {
			net := subnet(k)
			k++
			r := rand.New(rand.NewPCG(uint64(opts.Seed), hash64("devices", site.SiteIP, sensor)))
			devs := make([]device, 40)
			for j := range devs {
				devs[j] = newDevice(r, s.nextID.Add(1), net, 10+j*5+r.IntN(5), j+1)
			}
			for _, stream := range allStreams {
				s.stores[storeKey{stream, site.SiteIP, sensor}] = &store{
					spec:   streamSpecs[stream],
					site:   site.SiteIP,
					sensor: sensor,
					net:    net,
					devs:   devs,
					rng:    rand.New(rand.NewPCG(uint64(opts.Seed), hash64(stream, site.SiteIP, sensor))),
				}
			}
		}
	}
	return s
}

// NewServer starts a Server on a loopback port, like httptest.NewServer.
func NewServer(opts Options) *Server {
	s := NewUnstartedHandler(opts)
	s.ts = httptest.NewServer(s)
	s.URL = s.ts.URL
	return s
}

// NewTLSServer starts a Server over HTTPS with a self-signed certificate,
// like httptest.NewTLSServer; Certificate and Client give what a client
// needs to trust it.
func NewTLSServer(opts Options) *Server {
	s := NewUnstartedHandler(opts)
	s.ts = httptest.NewTLSServer(s)
	s.URL = s.ts.URL
	return s
}

// Close stops generators, releases hanging requests and, when the server
// has a listener, shuts it down and waits for outstanding requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.genWG.Wait()
	if s.ts != nil {
		s.ts.Close()
	}
}

// Certificate returns the TLS certificate of a NewTLSServer, nil otherwise.
func (s *Server) Certificate() *x509.Certificate {
	if s.ts == nil || s.ts.TLS == nil {
		return nil
	}
	return s.ts.Certificate()
}

// Client returns an HTTP client for the server (one that trusts its
// certificate, for a NewTLSServer); for NewUnstartedHandler a plain client.
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return &http.Client{}
	}
	return s.ts.Client()
}

// Sites returns a copy of the configured sites (the defaults filled in).
func (s *Server) Sites() []Site {
	out := slices.Clone(s.sites)
	for i := range out {
		out[i].SensorIPs = slices.Clone(out[i].SensorIPs)
	}
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func (s *Server) mustStore(stream, siteIP, sensorIP string) *store {
	st := s.stores[storeKey{stream, siteIP, sensorIP}]
	if st == nil {
		if streamSpecs[stream] == nil {
			panic(fmt.Sprintf("otsectest: unknown stream %q", stream))
		}
		panic(fmt.Sprintf("otsectest: no sensor %q at site %q", sensorIP, siteIP))
	}
	return st
}

// Add appends n new records to a stream of one sensor, each newer than every
// record already there: the first record of a stream is at Options.Start,
// each next one a random 1 to 1000 ms after the newest. stream is one of the
// Stream constants; an unknown stream, site or sensor panics.
func (s *Server) Add(stream, siteIP, sensorIP string, n int) {
	st := s.mustStore(stream, siteIP, sensorIP)
	if n <= 0 {
		return
	}
	id := s.nextID.Add(int64(n)) - int64(n)
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range n {
		t := s.start
		if st.has {
			t = st.newest.Add(time.Duration(1+st.rng.IntN(1000)) * time.Millisecond)
		}
		st.addLocked(id+int64(i)+1, t, s.tf)
	}
}

// AddAt appends n new records at exactly time t (at millisecond precision):
// ties with each other and with records already at t, or "late" records
// when t is older than the newest.
func (s *Server) AddAt(stream, siteIP, sensorIP string, t time.Time, n int) {
	st := s.mustStore(stream, siteIP, sensorIP)
	if n <= 0 {
		return
	}
	id := s.nextID.Add(int64(n)) - int64(n)
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range n {
		st.addLocked(id+int64(i)+1, t, s.tf)
	}
}

// Update applies mutate to the decoded record whose "id" is id and stores
// the result, which keeps its place in sort order (its sort time) even if
// mutate changed the time field. It reports whether the record was found.
// Keys keep their order; keys mutate adds go last, sorted.
func (s *Server) Update(stream, siteIP, sensorIP string, id string, mutate func(map[string]any)) bool {
	st := s.mustStore(stream, siteIP, sensorIP)
	want, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range st.recs {
		r := &st.recs[i]
		if r.id != want {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.js, &m); err != nil {
			panic("otsectest: stored record is not JSON: " + err.Error())
		}
		mutate(m)
		b, err := marshalOrdered(r.js, m)
		if err != nil {
			panic("otsectest: Update: " + err.Error())
		}
		r.js = st.keep(b)
		return true
	}
	return false
}

// Remove deletes the record whose "id" is id from a stream of one sensor, as
// when a device leaves the inventory, a CVE is no longer reported or a patch
// request is deleted. It reports whether the record was found. Records added
// later are still newer than every record ever added.
func (s *Server) Remove(stream, siteIP, sensorIP string, id string) bool {
	st := s.mustStore(stream, siteIP, sensorIP)
	want, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range st.recs {
		if st.recs[i].id == want {
			st.recs = slices.Delete(st.recs, i, i+1)
			return true
		}
	}
	return false
}

// Records returns a copy of every record of a stream of one sensor, decoded,
// in insertion order.
func (s *Server) Records(stream, siteIP, sensorIP string) []map[string]any {
	st := s.mustStore(stream, siteIP, sensorIP)
	st.mu.RLock()
	recs := slices.Clone(st.recs)
	st.mu.RUnlock()
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]map[string]any, len(recs))
	for i := range recs {
		if err := json.Unmarshal(recs[i].js, &out[i]); err != nil {
			panic("otsectest: stored record is not JSON: " + err.Error())
		}
	}
	return out
}

// Count returns how many records a stream of one sensor holds.
func (s *Server) Count(stream, siteIP, sensorIP string) int {
	st := s.mustStore(stream, siteIP, sensorIP)
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.recs)
}

// StartGenerator keeps adding records at ratePerSec in total, spread at
// random over every (stream, site, sensor) of Options.Streams. About 10%
// of the records share the newest time of their stream, about 2% are late
// (1 to 5 s older than the newest) and the rest are at the clock's
// (Options.Now) current time, or 1 ms after the newest if that is later.
// Content is repeatable given Options.Seed; which records land where, and
// their times, depend on timing. stop ends it and waits; Close stops every
// generator.
func (s *Server) StartGenerator(ratePerSec float64) (stop func()) {
	select {
	case <-s.done:
		return func() {}
	default:
	}
	if ratePerSec <= 0 {
		return func() {}
	}
	var targets []*store
	for _, stream := range s.genStream {
		for _, site := range s.sites {
			for _, sensor := range site.SensorIPs {
				targets = append(targets, s.stores[storeKey{stream, site.SiteIP, sensor}])
			}
		}
	}
	rng := rand.New(rand.NewPCG(uint64(s.seed), 0x9e37_79b9+s.genN.Add(1)))
	quit, finished := make(chan struct{}), make(chan struct{})
	s.genWG.Add(1)
	go func() {
		defer s.genWG.Done()
		defer close(finished)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		begin := time.Now()
		var added int64
		for {
			select {
			case <-quit:
				return
			case <-s.done:
				return
			case <-tick.C:
			}
			due := int64(ratePerSec * time.Since(begin).Seconds())
			if behind := due - added; behind > int64(ratePerSec)+1 {
				added = due - int64(ratePerSec) - 1 // do not burst after a stall
			}
			for ; added < due; added++ {
				s.generateOne(targets[rng.IntN(len(targets))])
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}

func (s *Server) generateOne(st *store) {
	id := s.nextID.Add(1)
	now := s.now().Truncate(time.Millisecond)
	st.mu.Lock()
	defer st.mu.Unlock()
	var t time.Time
	x := st.rng.IntN(100)
	switch {
	case !st.has:
		t = now
	case x < 10:
		t = st.newest
	case x < 12:
		t = st.newest.Add(-time.Duration(1000+st.rng.IntN(4001)) * time.Millisecond)
	default:
		t = now
		if !t.After(st.newest) {
			t = st.newest.Add(time.Millisecond)
		}
	}
	st.addLocked(id, t, s.tf)
}

// SetFaults replaces the injected faults; it applies to requests that
// arrive from then on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetToken makes tok the only accepted token (the old one gets 401) and
// ends an ExpireToken.
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	s.token, s.expired = tok, false
	s.mu.Unlock()
}

// ExpireToken makes the current token rejected, with the documented 401
// body, until SetToken.
func (s *Server) ExpireToken() {
	s.mu.Lock()
	s.expired = true
	s.mu.Unlock()
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetRequests empties the request log and sets RequestCount to zero.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.log = nil
	s.reqCount.Store(0)
	s.mu.Unlock()
}

// RequestCount returns how many requests arrived since the start or the
// last ResetRequests (also those not kept in a bounded log).
func (s *Server) RequestCount() int64 { return s.reqCount.Load() }

func (s *Server) logRequest(r Request) {
	s.mu.Lock()
	if s.maxReqs > 0 && len(s.log) >= s.maxReqs {
		keep := s.maxReqs / 2
		s.log = append(s.log[:0], s.log[len(s.log)-keep:]...)
	}
	s.log = append(s.log, r)
	s.mu.Unlock()
}
