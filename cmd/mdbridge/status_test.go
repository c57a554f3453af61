package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// runCLI runs one mdbridge command in-process as a user would.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestStatusTable runs the bridge against the OT Security fake and reads
// `mdbridge status` as a user would: from the config's admin.listen, as
// aligned tables, and with --json as /status serves it.
func TestStatusTable(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add(otsectest.StreamDeviceAlerts, site.SiteIP, site.SensorIPs[0], 20)
	dir := t.TempDir()
	admin := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/state/s.db }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts], sites: [{ site_ip: %q, sensor_ip: %q }] }
sinks:
  archive: { type: file, path: %s/out/events.jsonl }
`, dir, admin, srv.URL, plantedToken, site.SiteIP, site.SensorIPs[0], dir))
	b := startInProcess(t, cfg)
	waitFor(t, b, 30*time.Second, "20 events delivered", func() (bool, string) {
		st := b.status(t)
		return len(st.Sinks) == 1 && st.Sinks[0].Delivered == 20, fmt.Sprintf("%+v", st.Sinks)
	})

	code, out, errOut := runCLI(t, "status", "-c", cfg)
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	if strings.Contains(out, plantedToken) {
		t.Fatalf("status shows the token:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	stream := "plant-a/" + site.SiteIP + "/" + site.SensorIPs[0] + "/device_alerts"
	// Each table: a header, then rows whose columns start where the
	// header's do.
	for _, tc := range []struct {
		header string
		rowKey string
		want   map[string]string // column -> cell
	}{
		{"STREAM", stream, map[string]string{"EVENTS": "20", "ERRORS": "0", "GAPS": "0", "STATE": "ok"}},
		{"SINK", "archive", map[string]string{"STATE": "up", "CURSOR": "20", "BACKLOG": "0", "DELIVERED": "20", "RETRIES": "0", "DEAD-LETTERED": "0"}},
	} {
		header, row := findLine(lines, tc.header+" "), findLine(lines, tc.rowKey+" ")
		if header == "" || row == "" {
			t.Fatalf("no %s table with a row for %s:\n%s", tc.header, tc.rowKey, out)
		}
		for col, want := range tc.want {
			if got := cellAt(header, row, col); got != want {
				t.Errorf("%s %s: column %s = %q, want %q\n%s\n%s", tc.header, tc.rowKey, col, got, want, header, row)
			}
		}
	}
	streamHeader, streamRow := findLine(lines, "STREAM "), findLine(lines, stream+" ")
	wm, err := time.Parse(time.RFC3339, cellAt(streamHeader, streamRow, "WATERMARK"))
	if err != nil || wm.IsZero() {
		t.Errorf("watermark cell: %v\n%s", err, streamRow)
	}
	if _, err := time.ParseDuration(cellAt(streamHeader, streamRow, "LAG")); err != nil {
		t.Errorf("lag cell: %v\n%s", err, streamRow)
	}
	for _, want := range []string{"journal: last seq 20\n", "events by kind: ot.device_alert 20\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	t.Logf("status output:\n%s", out)
	code, out, errOut = runCLI(t, "status", "--admin", b.admin, "--json")
	var snap pipeline.Snapshot
	if code != 0 || json.Unmarshal([]byte(out), &snap) != nil {
		t.Fatalf("status --json exited %d (%s), output:\n%s", code, errOut, out)
	}
	if len(snap.Streams) != 1 || snap.Streams[0].ID != stream || snap.Streams[0].Events != 20 || snap.Kinds["ot.device_alert"] != 20 {
		t.Errorf("status --json = %+v", snap)
	}
}

// findLine returns the first line starting with prefix.
func findLine(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// cellAt returns the row's cell under the header's column name: the text
// from where the column starts to the next space run.
func cellAt(header, row, col string) string {
	i := strings.Index(header, " "+col+" ")
	if i < 0 {
		if !strings.HasSuffix(header, " "+col) {
			return "<no column " + col + ">"
		}
		i = len(header) - len(col) - 1
	}
	i++
	if i >= len(row) {
		return ""
	}
	cell := row[i:]
	if j := strings.Index(cell, "  "); j >= 0 {
		cell = cell[:j]
	}
	if i > 0 && row[i-1] != ' ' {
		return "<misaligned: " + cell + ">"
	}
	return strings.TrimSpace(cell)
}

// TestStatusErrors: what a user sees when no bridge answers, when it
// answers slowly, and when the config gives no address to ask.
func TestStatusErrors(t *testing.T) {
	nobody := freeAddr(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	defer starting.Close()
	dir := t.TempDir()
	adminOff := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
admin: { listen: "" }
sources:
  plant-a: { type: otsecurity, url: "https://10.0.0.5:3003", token: %s }
sinks:
  archive: { type: file, path: %s/out.jsonl }
`, dir, plantedToken, dir))
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"nothing listens", []string{"status", "--admin", nobody}, "no bridge answers on " + nobody + ": "},
		{"slow bridge", []string{"status", "--admin", strings.TrimPrefix(slow.URL, "http://"), "--timeout", "300ms"}, "context deadline exceeded"},
		{"bridge starting", []string{"status", "--admin", strings.TrimPrefix(starting.URL, "http://")}, "answered 503 Service Unavailable: starting"},
		{"admin off", []string{"status", "-c", adminOff}, `admin.listen of ` + adminOff + ` is "" (the admin server is off); pass --admin ADDR`},
		{"no address", []string{"status"}, "-c FILE or --admin ADDR is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MDBRIDGE_CONFIG", "")
			start := time.Now()
			code, out, errOut := runCLI(t, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q (stdout %q)", code, errOut, tc.wantErr, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestDialAddr(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:9464", "127.0.0.1:9464"},
		{":9464", "127.0.0.1:9464"},
		{"0.0.0.0:9464", "127.0.0.1:9464"},
		{"[::]:9464", "[::1]:9464"},
		{"admin.local:80", "admin.local:80"},
		{"127.0.0.1:0", "error"},
		{"", "error"},
	} {
		got, err := dialAddr(tc.listen)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("dialAddr(%q) = %q (%v), want %q", tc.listen, got, err, tc.want)
		}
	}
}
