package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// streams are the OT Security time streams the chaos run fills and polls.
// The set streams (devices, cves, patch_requests) are left out: their
// records are compared as a whole, so a record does not map to one event.
var streams = []string{otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts, otsectest.StreamSuricataAlerts}

const upstreamToken = "mdchaos-token"

// upstream is the fake Enterprise Manager, served in-process on loopback
// with cmd/mdsim's semantics: a backlog per stream, then a generator that
// adds records at a rate (some sharing a time, some late).
type upstream struct {
	srv     *otsectest.Server
	hs      *http.Server
	url     string
	sites   []otsectest.Site
	stopGen func()

	mu      sync.Mutex
	created []time.Time // one entry per generated record, in id order
	filled  time.Time   // when the backlog was complete
}

// upRecord is one record the fake holds: its id, when it was created, and
// whether the generator made it (live) or it was part of the backlog.
type upRecord struct {
	ID      string
	Created time.Time
	Live    bool
}

func startUpstream(seed int64, sites, sensors, backlog int) (*upstream, error) {
	u := &upstream{}
	for k := range sites {
		s := otsectest.Site{SiteIP: fmt.Sprintf("10.40.%d.144", 172+k)}
		for j := range sensors {
			s.SensorIPs = append(s.SensorIPs, fmt.Sprintf("10.40.%d.%d", 172+k, 172+j))
		}
		u.sites = append(u.sites, s)
	}
	opts := otsectest.Options{
		Token:       upstreamToken,
		Sites:       u.sites,
		Seed:        seed,
		Start:       time.Now().UTC().Add(-time.Duration(backlog) * 500 * time.Millisecond),
		Streams:     streams,
		MaxRequests: 1000,
		// The generator reads the clock once per record, right after it
		// takes the record's id: that instant is the record's creation.
		Now: func() time.Time {
			t := time.Now()
			u.mu.Lock()
			u.created = append(u.created, t)
			u.mu.Unlock()
			return t
		},
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("upstream options: %w", err)
	}
	u.srv = otsectest.NewUnstartedHandler(opts)
	for _, st := range streams {
		for _, s := range u.sites {
			for _, sensor := range s.SensorIPs {
				u.srv.Add(st, s.SiteIP, sensor, backlog)
			}
		}
	}
	u.filled = time.Now()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		u.srv.Close()
		return nil, fmt.Errorf("upstream listen: %w", err)
	}
	u.url = "http://" + ln.Addr().String()
	u.hs = &http.Server{Handler: u.srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.hs.Serve(ln) }()
	return u, nil
}

// startLive starts the generator at rate records/s over every stream.
func (u *upstream) startLive(rate float64) { u.stopGen = u.srv.StartGenerator(rate) }

// stopLive stops the generator; no record is added after it returns.
func (u *upstream) stopLive() {
	if u.stopGen != nil {
		u.stopGen()
	}
}

func (u *upstream) close() {
	u.stopLive()
	u.srv.Close()
	_ = u.hs.Close()
}

// upstreamFault is one kind of upstream failure the driver turns on for a
// window.
type upstreamFault struct {
	name   string
	faults otsectest.Faults
}

var upstreamFaults = []upstreamFault{
	{"503", otsectest.Faults{Status5xx: 1}},
	{"html", otsectest.Faults{HTML: 0.5, HTMLOK: 0.5}},
	{"broken-json", otsectest.Faults{Truncate: 0.5, ErrorTrue: 0.5}},
	{"timeout", otsectest.Faults{Hang: 1}},
	{"mixed", otsectest.Faults{Latency: 200 * time.Millisecond, Status5xx: 0.2, HTML: 0.1, Truncate: 0.2, ErrorTrue: 0.1, Hang: 0.1}},
}

// fail turns on a fault kind chosen by rng and returns its name.
func (u *upstream) fail(rng *rand.Rand) string {
	f := upstreamFaults[rng.IntN(len(upstreamFaults))]
	u.srv.SetFaults(f.faults)
	return f.name
}

// heal turns every fault off.
func (u *upstream) heal() { u.srv.SetFaults(otsectest.Faults{}) }

// records lists every record the fake holds, the whole truth the sinks are
// checked against. Generated records get the instant the generator made
// them; backlog records the moment the backlog was complete. note is set
// when the generated records and the clock readings do not pair up (then
// each record's own time stands in for its creation).
func (u *upstream) records() (recs []upRecord, note string) {
	type idTime struct {
		id int64
		t  time.Time
	}
	var all []idTime
	for _, st := range streams {
		field := "alertStarted"
		for _, s := range u.sites {
			for _, sensor := range s.SensorIPs {
				for _, r := range u.srv.Records(st, s.SiteIP, sensor) {
					id, _ := r["id"].(float64)
					ts, _ := r[field].(string)
					t, _ := time.Parse(time.RFC3339Nano, ts)
					all = append(all, idTime{int64(id), t})
				}
			}
		}
	}
	slices.SortFunc(all, func(a, b idTime) int { return int(a.id - b.id) })
	u.mu.Lock()
	created := slices.Clone(u.created)
	filled := u.filled
	u.mu.Unlock()
	// The backlog was added before the generator started, so its ids are
	// the smallest: the last len(created) ids are the generated records.
	nBacklog := len(all) - len(created)
	if nBacklog < 0 {
		nBacklog = 0
		note = fmt.Sprintf("the fake holds %d records but its clock was read %d times: lags use record times", len(all), len(created))
	}
	for i, r := range all {
		rec := upRecord{ID: strconv.FormatInt(r.id, 10), Created: filled}
		if i >= nBacklog {
			rec.Live = true
			if note == "" {
				rec.Created = created[i-nBacklog]
			} else {
				rec.Created = r.t
			}
		}
		recs = append(recs, rec)
	}
	return recs, note
}
