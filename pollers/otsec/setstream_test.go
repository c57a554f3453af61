package otsec_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// fullEvents reads the file sink's events with every block.
func fullEvents(t *testing.T, path string) []*pipeline.Event {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*pipeline.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		e, err := pipeline.UnmarshalEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d is not an event: %v", len(out)+1, err)
		}
		out = append(out, e)
	}
	return out
}

// ofKind keeps the events of one kind.
func ofKind(evs []*pipeline.Event, kind string) []*pipeline.Event {
	var out []*pipeline.Event
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitEvents waits until the file holds n events of kind, and fails if it
// holds more.
func waitEvents(t *testing.T, b *bridge, kind string, n int) []*pipeline.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := ofKind(fullEvents(t, b.out), kind)
		if len(evs) == n {
			return evs
		}
		if len(evs) > n || time.Now().After(deadline) {
			t.Fatalf("%d %s events, want %d: %s", len(evs), kind, n, summary(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle lets several more polls run and checks they add no event of kind.
func settle(t *testing.T, b *bridge, kind string, n int, d time.Duration) []*pipeline.Event {
	t.Helper()
	time.Sleep(d)
	evs := ofKind(fullEvents(t, b.out), kind)
	if len(evs) != n {
		t.Fatalf("after %s more polls: %d %s events, want %d: %s", d, len(evs), kind, n, summary(evs))
	}
	return evs
}

func summary(evs []*pipeline.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("[%d r%d %q]", e.Seq, e.Revision, e.Message))
	}
	return strings.Join(s, " ")
}

func idOf(v any) string { return strconv.FormatInt(int64(v.(float64)), 10) }

// changeKeys lists the fields of an event's changes, sorted.
func changeKeys(e *pipeline.Event) []string {
	var ks []string
	for k := range e.Changes {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

func oneSensor(srv *otsectest.Server) (string, string) {
	s := srv.Sites()[0]
	return s.SiteIP, s.SensorIPs[0]
}

// TestDeviceInventoryChanges: devices are added once each, a device whose IP
// and firmware change is one revision whose changes are exactly those two
// fields, a change of lastSeen alone is no event, and a device gone from the
// inventory is removed once, after remove_after.
func TestDeviceInventoryChanges(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 5, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site, sensor := oneSensor(srv)
	srv.Add(otsec.StreamDevices, site, sensor, 6)
	recs := srv.Records(otsec.StreamDevices, site, sensor)
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamDevices}
		c.Sites = []otsec.Site{{SiteIP: site, SensorIP: sensor}}
		c.RemoveAfter = 400 * time.Millisecond
	})
	added := waitEvents(t, b, pipeline.KindDevice, 6)
	for i, e := range added {
		if e.Device == nil || e.Device.Action != pipeline.ActionAdded || e.Revision != 0 || !strings.HasPrefix(e.Message, "Device added: ") {
			t.Fatalf("event %d = %+v (device %+v), want an added device", i, e, e.Device)
		}
		if e.Source.SiteIP != site || e.Source.SensorIP != sensor || e.Source.URL != srv.URL {
			t.Errorf("source = %+v", e.Source)
		}
	}
	// Oldest first, with the device's discovery time.
	if added[0].Device.ID != idOf(recs[0]["id"]) || added[0].Time.Format("2006-01-02T15:04:05.000Z") != recs[0]["discovTime"] {
		t.Errorf("first event is device %s at %v, want %v at %v", added[0].Device.ID, added[0].Time, recs[0]["id"], recs[0]["discovTime"])
	}

	changed := recs[1]
	oldIP, oldFW := changed["ipv4"], changed["firmware"]
	srv.Update(otsec.StreamDevices, site, sensor, idOf(changed["id"]), func(m map[string]any) {
		m["ipv4"] = "192.168.99.7"
		m["firmware"] = "V9.9.9"
	})
	srv.Update(otsec.StreamDevices, site, sensor, idOf(recs[2]["id"]), func(m map[string]any) {
		m["lastSeen"] = time.Now().UTC().Format(time.RFC3339Nano) // seen again: not a change
	})
	evs := waitEvents(t, b, pipeline.KindDevice, 7)
	c := evs[6]
	if c.Device.Action != pipeline.ActionChanged || c.Revision != 1 || c.Device.ID != idOf(changed["id"]) {
		t.Fatalf("change event = r%d %+v", c.Revision, c.Device)
	}
	if got := changeKeys(c); fmt.Sprint(got) != "[firmware ipv4]" {
		t.Errorf("changes = %v, want exactly firmware and ipv4", c.Changes)
	}
	if jsonText(c.Changes["ipv4"].Old) != jsonText(oldIP) || jsonText(c.Changes["ipv4"].New) != `"192.168.99.7"` ||
		jsonText(c.Changes["firmware"].Old) != jsonText(oldFW) || jsonText(c.Changes["firmware"].New) != `"V9.9.9"` {
		t.Errorf("changes = %s", jsonText(c.Changes))
	}
	if c.Device.IP != "192.168.99.7" || c.Device.Firmware != "V9.9.9" || !strings.HasPrefix(c.Message, "Device changed: ") ||
		!strings.HasSuffix(c.Message, ": firmware, ipv4") {
		t.Errorf("change event device %+v, message %q", c.Device, c.Message)
	}

	gone := recs[3]
	srv.Remove(otsec.StreamDevices, site, sensor, idOf(gone["id"]))
	evs = waitEvents(t, b, pipeline.KindDevice, 8)
	r := evs[7]
	if r.Device.Action != pipeline.ActionRemoved || r.Device.ID != idOf(gone["id"]) || r.Revision != 1 || len(r.Changes) != 0 {
		t.Fatalf("removal event = r%d %+v changes %v", r.Revision, r.Device, r.Changes)
	}
	if r.Device.IP != gone["ipv4"] || !strings.HasPrefix(r.Message, "Device removed: ") || r.Raw == nil {
		t.Errorf("removal event carries device %+v, message %q, raw %s; want the device as last seen", r.Device, r.Message, r.Raw)
	}
	if d := r.Time.Sub(evs[6].Observed); d < 400*time.Millisecond {
		t.Errorf("removed %s after the last change was observed, before remove_after", d)
	}
	evs = settle(t, b, pipeline.KindDevice, 8, 600*time.Millisecond)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
}

// TestDeviceInventoryCappedPollRemovesNothing: when max_page_limit cuts the
// inventory short, a device missing from it is not reported removed (the
// poll says it has a gap); once the inventory fits again, it is.
func TestDeviceInventoryCappedPollRemovesNothing(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 6, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site, sensor := oneSensor(srv)
	srv.Add(otsec.StreamDevices, site, sensor, 12)
	recs := srv.Records(otsec.StreamDevices, site, sensor)
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamDevices}
		c.Sites = []otsec.Site{{SiteIP: site, SensorIP: sensor}}
		c.PageLimit = 4
		c.MaxPageLimit = 10
		c.RemoveAfter = 200 * time.Millisecond
	})
	evs := waitEvents(t, b, pipeline.KindDevice, 10) // the newest 10
	if evs[0].Device.ID != idOf(recs[2]["id"]) {
		t.Errorf("oldest device reported is %s, want %v (the cap keeps the newest)", evs[0].Device.ID, recs[2]["id"])
	}
	// 11 left: still capped. The window of the newest 10 now reaches one
	// older device, which is added; the missing one is not removed.
	srv.Remove(otsec.StreamDevices, site, sensor, idOf(recs[7]["id"]))
	evs = waitEvents(t, b, pipeline.KindDevice, 11)
	if a := evs[10]; a.Device.Action != pipeline.ActionAdded || a.Device.ID != idOf(recs[1]["id"]) {
		t.Errorf("event 11 = %q, want device %v added", a.Message, recs[1]["id"])
	}
	settle(t, b, pipeline.KindDevice, 11, time.Second)
	if gaps := b.runner.Snapshot().Streams[0].Gaps; gaps == 0 {
		t.Error("capped polls counted no gap")
	}
	// The never-seen oldest goes too: 10 left, the poll is complete and the
	// device is removed (once).
	srv.Remove(otsec.StreamDevices, site, sensor, idOf(recs[0]["id"]))
	evs = waitEvents(t, b, pipeline.KindDevice, 12)
	if r := evs[11]; r.Device.Action != pipeline.ActionRemoved || r.Device.ID != idOf(recs[7]["id"]) {
		t.Fatalf("last event = %q %+v, want device %v removed", r.Message, r.Device, recs[7]["id"])
	}
	settle(t, b, pipeline.KindDevice, 12, 500*time.Millisecond)
}

// TestCVENewlySeen: with start now the CVEs already listed are the baseline;
// a CVE newly seen on a device is one ot.cve with its CVSS, severity and
// device, whatever its firstSeen.
func TestCVENewlySeen(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 8, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site, sensor := oneSensor(srv)
	srv.Add(otsec.StreamCVEs, site, sensor, 5)
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamCVEs}
		c.Sites = []otsec.Site{{SiteIP: site, SensorIP: sensor}}
		c.Start = "now"
	})
	deadline := time.Now().Add(10 * time.Second)
	for b.runner.Snapshot().Streams == nil || b.runner.Snapshot().Streams[0].Polls < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the CVE stream was not polled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	settle(t, b, pipeline.KindCVE, 0, 200*time.Millisecond)

	srv.AddAt(otsec.StreamCVEs, site, sensor, time.Now(), 1)
	srv.AddAt(otsec.StreamCVEs, site, sensor, time.Now().Add(-30*time.Minute), 1) // seen late: still new
	all := srv.Records(otsec.StreamCVEs, site, sensor)
	evs := waitEvents(t, b, pipeline.KindCVE, 2)
	evs = settle(t, b, pipeline.KindCVE, 2, 500*time.Millisecond)
	for _, e := range evs {
		var rec map[string]any
		for _, r := range all[5:] {
			if e.Vulnerability != nil && r["cveId"] == e.Vulnerability.CVE && idOf(r["deviceId"]) == e.Device.ID {
				rec = r
			}
		}
		if rec == nil {
			t.Fatalf("event %q matches no new CVE record (%+v)", e.Message, e.Vulnerability)
		}
		v := e.Vulnerability
		cvss := rec["cvss"].(float64)
		if v.CVSS == nil || *v.CVSS != cvss || v.CVSSVector != rec["cvssVector"] || v.Description != rec["description"] {
			t.Errorf("vulnerability = %+v, want the record's %v", v, rec)
		}
		wantSev, wantScore := otsec.CVSSSeverity(&cvss)
		if e.Severity != wantSev || e.SeverityScore != wantScore || e.Revision != 0 {
			t.Errorf("CVSS %v gave %s/%d r%d", cvss, e.Severity, e.SeverityScore, e.Revision)
		}
		if e.Device.IP != rec["ipv4"] || e.Device.Name != rec["deviceName"] {
			t.Errorf("device block = %+v", e.Device)
		}
		if want := fmt.Sprintf("%s (CVSS %.1f) on %s", rec["cveId"], cvss, rec["deviceName"]); !strings.HasPrefix(e.Message, want) {
			t.Errorf("message %q, want it to start with %q", e.Message, want)
		}
	}
}

// TestPatchRequestApproved: patch requests are reported when first seen, and
// an approval is one revision whose changes hold the status.
func TestPatchRequestApproved(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 9, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site, sensor := oneSensor(srv)
	srv.Add(otsec.StreamPatchRequests, site, sensor, 3)
	recs := srv.Records(otsec.StreamPatchRequests, site, sensor)
	id := idOf(recs[1]["id"])
	srv.Update(otsec.StreamPatchRequests, site, sensor, id, func(m map[string]any) { m["status"], m["updatedAt"] = "pending", m["createdAt"] })
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamPatchRequests}
		c.Sites = []otsec.Site{{SiteIP: site, SensorIP: sensor}}
	})
	evs := waitEvents(t, b, pipeline.KindPatchRequest, 3)
	first := evs[1]
	if first.Patch == nil || first.Patch.ID != id || first.Patch.Status != "pending" || first.Patch.FirmwareFrom != recs[1]["firmwareFrom"] ||
		first.Patch.FirmwareTo != recs[1]["firmwareTo"] || first.Patch.RequestedBy != recs[1]["requestedBy"] || first.Patch.Device != recs[1]["deviceName"] {
		t.Errorf("patch block = %+v, want the record %v", first.Patch, recs[1])
	}
	approved := time.Now().UTC().Truncate(time.Millisecond)
	srv.Update(otsec.StreamPatchRequests, site, sensor, id, func(m map[string]any) {
		m["status"] = "approved"
		m["updatedAt"] = approved.Format("2006-01-02T15:04:05.000Z")
	})
	evs = waitEvents(t, b, pipeline.KindPatchRequest, 4)
	evs = settle(t, b, pipeline.KindPatchRequest, 4, 500*time.Millisecond)
	rev := evs[3]
	if rev.Revision != 1 || rev.Patch.ID != id || rev.Patch.Status != "approved" {
		t.Fatalf("revision = r%d %+v", rev.Revision, rev.Patch)
	}
	st, ok := rev.Changes["status"]
	if !ok || jsonText(st.Old) != `"pending"` || jsonText(st.New) != `"approved"` {
		t.Errorf("changes = %s, want status pending -> approved", jsonText(rev.Changes))
	}
	if !rev.Time.Equal(approved) {
		t.Errorf("revision time %v, want the update time %v", rev.Time, approved)
	}
	if !strings.Contains(rev.Message, "status pending -> approved") {
		t.Errorf("message %q", rev.Message)
	}
}

// TestDevicesBySiteID: sites with a site_id have one inventory per site,
// read from devices/items?siteId=[N], holding the devices of all its
// sensors, each named with the sensor that saw it.
func TestDevicesBySiteID(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 10, Start: time.Now().Add(-time.Hour), Sites: []otsectest.Site{
		{SiteIP: "10.40.172.144", SensorIPs: []string{"10.40.172.172", "10.40.172.173"}},
		{SiteIP: "10.41.10.144", SensorIPs: []string{"10.41.10.172"}},
	}})
	defer srv.Close()
	sites := srv.Sites()
	for _, s := range sites {
		for _, sensor := range s.SensorIPs {
			srv.Add(otsec.StreamDevices, s.SiteIP, sensor, 4)
		}
	}
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamDevices}
		c.Sites = []otsec.Site{
			{SiteIP: sites[1].SiteIP, SensorIP: sites[1].SensorIPs[0], SiteID: 2},
			{SiteIP: sites[0].SiteIP, SensorIP: sites[0].SensorIPs[0], SiteID: 1},
			{SiteIP: sites[0].SiteIP, SensorIP: sites[0].SensorIPs[1], SiteID: 1},
		}
	})
	evs := waitEvents(t, b, pipeline.KindDevice, 12)
	settle(t, b, pipeline.KindDevice, 12, 300*time.Millisecond)
	perStream := map[string]int{}
	for _, e := range evs {
		perStream[e.Source.Stream]++
		if !strings.HasPrefix(e.Source.SensorIP, strings.TrimSuffix(e.Source.SiteIP, "144")) {
			t.Errorf("device %s at site %s names sensor %q", e.Device.ID, e.Source.SiteIP, e.Source.SensorIP)
		}
	}
	want := map[string]int{"plant-a/10.40.172.144/site-1/devices": 8, "plant-a/10.41.10.144/site-2/devices": 4}
	if fmt.Sprint(perStream) != fmt.Sprint(want) {
		t.Errorf("events per stream = %v, want %v", perStream, want)
	}
	for _, r := range srv.Requests() {
		if r.Path == otsectest.PathDevices {
			t.Fatalf("asked the per-sensor device list: %v", r.Query)
		}
		if r.Path == otsectest.PathDevicesBySite && r.Query.Get("siteId") != "[1]" && r.Query.Get("siteId") != "[2]" {
			t.Errorf("siteId = %q", r.Query.Get("siteId"))
		}
	}
}

// TestHeartbeats: with heartbeat set, each stream sends bridge.heartbeat
// events naming the product and the appliance.
func TestHeartbeats(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Seed: 12, Start: time.Now().Add(-time.Hour)})
	defer srv.Close()
	site, sensor := oneSensor(srv)
	srv.Add(otsec.StreamDeviceAlerts, site, sensor, 3)
	b := startBridge(t, srv, func(c *otsec.Config) {
		c.Streams = []string{otsec.StreamDeviceAlerts, otsec.StreamDevices}
		c.Sites = []otsec.Site{{SiteIP: site, SensorIP: sensor}}
		c.Heartbeat = time.Second
	})
	hbs := waitEvents(t, b, pipeline.KindHeartbeat, 2)
	streams := map[string]bool{}
	for _, h := range hbs {
		streams[h.Source.Stream] = true
		if h.Source.Product != pipeline.ProductOTSecurity || h.Source.URL != srv.URL || h.Source.Instance != "plant-a" || h.Heartbeat == nil {
			t.Errorf("heartbeat = %+v %+v", h.Source, h.Heartbeat)
		}
	}
	if len(streams) != 2 {
		t.Errorf("heartbeats from %v, want one per stream", streams)
	}
}

// TestReadmeExample: the README's example configuration is valid.
func TestReadmeExample(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "```yaml\n")
	if i < 0 {
		t.Fatal("README.md has no yaml example")
	}
	doc = doc[i+len("```yaml\n"):]
	doc = doc[:strings.Index(doc, "```")]
	cfg, err := configs.Parse([]byte(doc+"sinks:\n  archive: { type: file, path: out/events.jsonl }\n"), []string{"OT_TOKEN=t0ken"})
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	c := cfg.Sources["plant-a"].OTSecurity
	if c == nil || len(c.Streams) != 6 || c.Sites[0].SiteID != 2 || c.Heartbeat != 5*time.Minute || c.Fields[otsec.StreamCVEs]["cvss"] != "cvssScore" {
		t.Errorf("README example decodes to %+v", c)
	}
}
