package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

var backfillT0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// backfillFake is a fake OT Security with one site of two sensors, each
// with 10 device alerts: sensor .11's at T0, T0+1m, ..., T0+9m, sensor
// .12's 30s after each of those.
func backfillFake(t *testing.T) *otsectest.Server {
	t.Helper()
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken, Sites: []otsectest.Site{
		{SiteIP: "10.1.0.1", SensorIPs: []string{"10.1.0.11", "10.1.0.12"}},
	}})
	t.Cleanup(srv.Close)
	for i := range 10 {
		at := backfillT0.Add(time.Duration(i) * time.Minute)
		srv.AddAt("device_alerts", "10.1.0.1", "10.1.0.11", at, 1)
		srv.AddAt("device_alerts", "10.1.0.1", "10.1.0.12", at.Add(30*time.Second), 1)
	}
	return srv
}

// backfillLine is what the tests read of an event.
type backfillLine struct {
	ID     string    `json:"id"`
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Source struct {
		SensorIP string `json:"sensor_ip"`
	} `json:"source"`
}

func readLines(t *testing.T, b []byte) []backfillLine {
	t.Helper()
	var out []backfillLine
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var e backfillLine
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("line is not an event: %v\n%s", err, l)
		}
		out = append(out, e)
	}
	return out
}

func ids(lines []backfillLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.ID
	}
	return out
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// parseCEF splits a CEF line into its seven header fields and its
// extension's keys and values, honouring the escapes of each part.
func parseCEF(line string) (header []string, ext map[string]string, err error) {
	if !strings.HasPrefix(line, "CEF:") {
		return nil, nil, fmt.Errorf("does not start with CEF:")
	}
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(header) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '|' || line[i+1] == '\\'):
			cur.WriteByte(line[i+1])
			i++
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(header) != 7 {
		return nil, nil, fmt.Errorf("has %d header fields, want 7", len(header))
	}
	ext = map[string]string{}
	rest := line[i:]
	// Keys are runs of [A-Za-z0-9_.] followed by an unescaped '='; a value
	// runs to the space before the next key.
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || strings.ContainsAny(rest[:eq], " \\") {
			return nil, nil, fmt.Errorf("extension %.40q does not start with key=", rest)
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val strings.Builder
		for j := 0; ; j++ {
			if j == len(rest) {
				rest = ""
				break
			}
			if rest[j] == '\\' && j+1 < len(rest) {
				val.WriteByte(rest[j+1])
				j++
				continue
			}
			if rest[j] == '=' {
				return nil, nil, fmt.Errorf("unescaped = in the value of %s", key)
			}
			if rest[j] == ' ' {
				if k := strings.IndexAny(rest[j+1:], " ="); k > 0 && rest[j+1+k] == '=' {
					rest = rest[j+1:]
					break
				}
			}
			val.WriteByte(rest[j])
		}
		ext[key] = val.String()
	}
	return header, ext, nil
}

// TestBackfill runs the bridge against the fake, then backfills a window of
// the same records from the fake: while the bridge runs (so the state file
// is not needed), and after it stopped, to stdout in json and cef and to
// file sinks. Each gives exactly the records of the window, with the ids
// the bridge wrote, oldest first, and the state file the bridge left is
// unchanged to the byte.
func TestBackfill(t *testing.T) {
	srv := backfillFake(t)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state", "s.db")
	archive := filepath.Join(dir, "out", "events.jsonl")
	bridgeCfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %s }
`, statePath, freeAddr(t), srv.URL, plantedToken, archive))
	// The backfill's config names sinks the bridge does not have.
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %s }
  again: { type: file, path: %s/again/events.jsonl }
  again-cef: { type: file, path: %s/again-cef/events.cef }
`, statePath, freeAddr(t), srv.URL, plantedToken, archive, dir, dir))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", bridgeCfg}, io.Discard, &syncWriter{w: &logs}) }()
	var written []backfillLine
	for deadline := time.Now().Add(15 * time.Second); len(written) < 20; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge wrote %d events in 15s, want 20:\n%s", len(written), &logs)
		}
		b, _ := os.ReadFile(archive)
		if bytes.Count(b, []byte("\n")) >= 20 {
			written = readLines(t, b)
		}
	}
	since, until := backfillT0.Add(2*time.Minute), backfillT0.Add(6*time.Minute)
	var want []backfillLine
	for _, e := range written {
		if !e.Time.Before(since) && e.Time.Before(until) {
			want = append(want, e)
		}
	}
	slices.SortStableFunc(want, func(a, b backfillLine) int { return a.Time.Compare(b.Time) })
	if len(want) != 8 {
		t.Fatalf("the bridge wrote %d events in the window, want 8", len(want))
	}
	window := []string{"-c", cfg, "--source", "plant-a", "--stream", "device_alerts",
		"--since", since.Format(time.RFC3339), "--until", until.Format(time.RFC3339)}
	backfill := func(t *testing.T, extra ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append(append([]string{"backfill"}, window...), extra...), &out, &errb); code != 0 {
			t.Fatalf("backfill %q exited %d:\n%s", extra, code, &errb)
		}
		if strings.Contains(out.String()+errb.String(), plantedToken) {
			t.Fatalf("the token was printed:\n%s%s", &out, &errb)
		}
		return out.String(), errb.String()
	}
	checkEvents := func(t *testing.T, got, want []backfillLine) {
		t.Helper()
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("got ids (in order)\n%q\nwant\n%q", ids(got), ids(want))
		}
		for i, e := range got {
			if e.Seq != 0 {
				t.Errorf("event %d has seq %d, want 0 (not journaled)", i, e.Seq)
			}
			if i > 0 && e.Time.Before(got[i-1].Time) {
				t.Errorf("event %d at %s comes after one at %s", i, e.Time, got[i-1].Time)
			}
		}
	}

	t.Run("while the bridge runs", func(t *testing.T) {
		out, _ := backfill(t)
		checkEvents(t, readLines(t, []byte(out)), want)
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d:\n%s", code, &logs)
	}
	before := fileHash(t, statePath)

	t.Run("one sensor", func(t *testing.T) {
		out, _ := backfill(t, "--site", "10.1.0.1", "--sensor", "10.1.0.12")
		var sensor []backfillLine
		for _, e := range want {
			if e.Source.SensorIP == "10.1.0.12" {
				sensor = append(sensor, e)
			}
		}
		checkEvents(t, readLines(t, []byte(out)), sensor)
	})
	t.Run("cef", func(t *testing.T) {
		out, _ := backfill(t, "--format", "cef")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		var got []string
		for _, l := range lines {
			h, ext, err := parseCEF(l)
			if err != nil {
				t.Fatalf("not a CEF line: %v\n%s", err, l)
			}
			if h[0] != "CEF:0" || h[1] != "OPSWAT" {
				t.Errorf("header %q, want CEF:0|OPSWAT|...", h)
			}
			got = append(got, ext["externalId"])
		}
		if !slices.Equal(got, ids(want)) {
			t.Errorf("externalIds\n%q\nwant\n%q", got, ids(want))
		}
	})
	t.Run("to a file sink", func(t *testing.T) {
		out, _ := backfill(t, "--to", "again")
		if !strings.Contains(out, "8 events, 8 delivered, 0 dead-lettered") {
			t.Errorf("summary %q lacks the counts", out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "again", "events.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, readLines(t, b), want)
	})
	t.Run("to a file sink in another format", func(t *testing.T) {
		backfill(t, "--to", "again-cef", "--format", "cef")
		b, err := os.ReadFile(filepath.Join(dir, "again-cef", "events.cef"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			_, ext, err := parseCEF(l)
			if err != nil {
				t.Fatalf("not a CEF line: %v\n%s", err, l)
			}
			got = append(got, ext["externalId"])
		}
		if !slices.Equal(got, ids(want)) {
			t.Errorf("externalIds\n%q\nwant\n%q", got, ids(want))
		}
	})
	if after := fileHash(t, statePath); after != before {
		t.Error("the state file changed during the backfills")
	}
	if b, _ := os.ReadFile(archive); len(readLines(t, b)) != 20 {
		t.Errorf("the bridge's own sink now holds %d events, want its 20", len(readLines(t, b)))
	}
}

// TestBackfillBadArguments: every mistake is named and exits non-zero, and
// so does a sink that never takes the events.
func TestBackfillBadArguments(t *testing.T) {
	srv := backfillFake(t)
	var posts atomic.Int64
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, streams: [device_alerts] }
  storage: { type: storage_security, url: "https://mdss.invalid", api_key: %s }
  storage-push: { type: mdss_webhook, listen: "127.0.0.1:0", secret: %s, source: storage }
sinks:
  archive: { type: file, path: %s/out.jsonl }
  soar: { type: webhook, url: %q }
`, dir, srv.URL, plantedToken, plantedToken, plantedToken, dir, refusing.URL))
	base := []string{"backfill", "-c", cfg, "--since", backfillT0.Format(time.RFC3339)}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no since", []string{"backfill", "-c", cfg, "--source", "plant-a", "--stream", "device_alerts"},
			[]string{"--since T are required"}},
		{"bad since", []string{"backfill", "-c", cfg, "--source", "plant-a", "--stream", "device_alerts", "--since", "yesterday"},
			[]string{"backfill --since:", `"yesterday" is neither an RFC 3339 time nor a duration`}},
		{"since after until", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "--until", "2026-10-01T00:00:00Z"),
			[]string{"--since 2026-11-01T00:00:00Z is not before --until 2026-10-01T00:00:00Z"}},
		{"unknown source", append(slices.Clone(base), "--source", "plant-b", "--stream", "device_alerts"),
			[]string{`no source "plant-b"`, "sources: plant-a, storage, storage-push"}},
		{"unknown stream", append(slices.Clone(base), "--source", "plant-a", "--stream", "alerts"),
			[]string{`source plant-a (type otsecurity) has no stream "alerts"`, "device_alerts, conn_alerts"}},
		{"mdss stream name on ot", append(slices.Clone(base), "--source", "storage", "--stream", "device_alerts"),
			[]string{`source storage (type storage_security) has no stream "device_alerts" (streams: scans, files)`}},
		{"webhook receiver", append(slices.Clone(base), "--source", "storage-push", "--stream", "scans"),
			[]string{"source storage-push is a webhook receiver", "backfill its source storage instead"}},
		{"site on mdss", append(slices.Clone(base), "--source", "storage", "--stream", "scans", "--site", "10.1.0.1"),
			[]string{"--site and --sensor apply to OT Security sources; storage is of type storage_security"}},
		{"no such site", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "--site", "10.9.9.9"),
			[]string{"source plant-a has no device_alerts stream for site 10.9.9.9",
				"its streams: plant-a/10.1.0.1/10.1.0.11/device_alerts, plant-a/10.1.0.1/10.1.0.12/device_alerts"}},
		{"sink not configured", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "--to", "siem"),
			[]string{`no sink "siem"`, "sinks: archive, soar"}},
		{"unknown format", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "--format", "xml"),
			[]string{`backfill --format: unknown format "xml" (supported: json, cef, leef, ocsf)`}},
		{"stray argument", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "now"),
			[]string{`unexpected argument "now"`}},
		{"sink refuses", append(slices.Clone(base), "--source", "plant-a", "--stream", "device_alerts", "--to", "soar", "--timeout", "1500ms"),
			[]string{"gave up after --timeout 1.5s", "to soar: 0 of 20 events delivered"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero\nstdout: %s\nstderr: %s", &out, &errb)
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &errb)
				}
			}
			if out.Len() > 0 {
				t.Errorf("stdout is not empty:\n%s", &out)
			}
			if strings.Contains(out.String()+errb.String(), plantedToken) {
				t.Errorf("a secret was printed:\n%s%s", &out, &errb)
			}
		})
	}
	if posts.Load() == 0 {
		t.Error("the refusing webhook was never tried")
	}
	if _, err := os.Stat(filepath.Join(dir, "s.db")); err == nil {
		t.Error("backfill created the state file")
	}
}

// TestBackfillSiteInventory: a site-wide inventory (site_id) is one stream
// for every sensor of the site, so --sensor narrows its events by their
// source.sensor_ip.
func TestBackfillSiteInventory(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken, Sites: []otsectest.Site{
		{SiteIP: "10.1.0.1", SensorIPs: []string{"10.1.0.11", "10.1.0.12"}},
	}})
	defer srv.Close()
	for i := range 3 {
		at := backfillT0.Add(time.Duration(i) * time.Minute)
		srv.AddAt("devices", "10.1.0.1", "10.1.0.11", at, 1)
		srv.AddAt("devices", "10.1.0.1", "10.1.0.12", at.Add(30*time.Second), 1)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
sources:
  plant-a:
    type: otsecurity
    url: %q
    token: %s
    streams: [devices]
    sites:
      - { site_ip: 10.1.0.1, sensor_ip: 10.1.0.11, site_id: 1 }
      - { site_ip: 10.1.0.1, sensor_ip: 10.1.0.12, site_id: 1 }
sinks:
  archive: { type: file, path: %s/out.jsonl }
`, dir, srv.URL, plantedToken, dir))
	for _, tc := range []struct {
		sensor string
		want   []string
	}{
		{"", []string{"10.1.0.11", "10.1.0.12", "10.1.0.11", "10.1.0.12", "10.1.0.11", "10.1.0.12"}},
		{"10.1.0.12", []string{"10.1.0.12", "10.1.0.12", "10.1.0.12"}},
	} {
		t.Run("sensor "+tc.sensor, func(t *testing.T) {
			args := []string{"backfill", "-c", cfg, "--source", "plant-a", "--stream", "devices", "--since", backfillT0.Format(time.RFC3339)}
			if tc.sensor != "" {
				args = append(args, "--sensor", tc.sensor)
			}
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d:\n%s", code, &errb)
			}
			var got []string
			for _, e := range readLines(t, out.Bytes()) {
				got = append(got, e.Source.SensorIP)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events of sensors %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBackfillStorageSecurity backfills the scans stream of the fake MDSS:
// the finished scans that stopped in the window, oldest first, with the
// ids the bridge gives them.
func TestBackfillStorageSecurity(t *testing.T) {
	srv := mdsstest.NewServer(mdsstest.Options{APIKey: plantedToken, Seed: 3})
	defer srv.Close()
	scans := srv.Backfill(10, time.Hour)
	slices.SortFunc(scans, func(a, b mdsstest.Scan) int { return a.StopTime.Compare(b.StopTime) })
	since, until := scans[3].StopTime, scans[7].StopTime
	var want []string
	for _, sc := range scans[3:7] {
		want = append(want, pipeline.EventID(mdss.StreamID("storage", "scans"), pipeline.KindMDSSScan, sc.ID, 0))
	}
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
sources:
  storage: { type: storage_security, url: %q, api_key: %s, streams: [scans] }
sinks:
  archive: { type: file, path: %s/out.jsonl }
`, dir, srv.URL, plantedToken, dir))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"backfill", "-c", cfg, "--source", "storage", "--stream", "scans",
		"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano)}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, &errb)
	}
	if got := ids(readLines(t, out.Bytes())); !slices.Equal(got, want) {
		t.Errorf("got ids\n%q\nwant those of scans 3-6 by stop time\n%q", got, want)
	}
	if strings.Contains(out.String()+errb.String(), plantedToken) {
		t.Error("the API key was printed")
	}
}
