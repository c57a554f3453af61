package otsec_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestBodyLimit: a list answer larger than max_body_bytes fails the poll
// with an error naming the limit and journals nothing. (A hanging answer is
// TestUpstreamFaults/timeout.)
func TestBodyLimit(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 5})
	defer srv.Close()
	site := srv.Sites()[0]
	sensor := site.SensorIPs[0]
	srv.Add(otsec.StreamDeviceAlerts, site.SiteIP, sensor, 200)
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamDeviceAlerts}
		c.Sites = []otsec.Site{{SiteIP: site.SiteIP, SensorIP: sensor}}
		c.MaxBodyBytes = 4 << 10 // a page of 200 alerts is far larger
		c.PageLimit, c.MaxPageLimit = 200, 200
	})
	deadline := time.Now().Add(10 * time.Second)
	for countLogs(b.logs, "poll failed; will retry") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failure was logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	failure := b.logs.FilterMessage("poll failed; will retry").All()[0]
	got := fmt.Sprint(failure.ContextMap()["error"])
	for _, want := range []string{"GET /", "exceeds max_body_bytes (4096)"} {
		if !strings.Contains(got, want) {
			t.Errorf("logged error %q lacks %q", got, want)
		}
	}
	if evs := readEvents(t, b.out); len(evs) != 0 {
		t.Errorf("%d events written from an answer over the limit, want 0", len(evs))
	}
}
