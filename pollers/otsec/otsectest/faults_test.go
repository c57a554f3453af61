package otsectest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults otsectest.Faults
		token  string
		path   string
		check  func(t *testing.T, a answer)
		fault  string // logged Request.Fault
	}{
		{"5xx", otsectest.Faults{Status5xx: 1}, "test-token", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 503 || !strings.HasPrefix(a.ctype, "text/plain") || json.Valid(a.body) || string(a.body) != otsectest.UnavailableText {
				t.Errorf("got %d %q %q", a.status, a.ctype, a.body)
			}
		}, "5xx"},
		{"html 502", otsectest.Faults{HTML: 1}, "test-token", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 502 || !strings.HasPrefix(a.ctype, "text/html") || !strings.Contains(string(a.body), "<center>nginx</center>") {
				t.Errorf("got %d %q %q", a.status, a.ctype, a.body)
			}
		}, "html"},
		{"html 502 without token", otsectest.Faults{HTML: 1}, "", otsectest.PathComponents, func(t *testing.T, a answer) {
			if a.status != 502 || string(a.body) != otsectest.BadGatewayHTML {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, "html"},
		{"html 502 on unknown path", otsectest.Faults{HTML: 1}, "test-token", "/nothing", func(t *testing.T, a answer) {
			if a.status != 502 {
				t.Errorf("got %d", a.status)
			}
		}, "html"},
		{"html 200", otsectest.Faults{HTMLOK: 1}, "test-token", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 200 || !strings.HasPrefix(a.ctype, "text/html") || !strings.HasPrefix(string(a.body), "<!DOCTYPE html>") {
				t.Errorf("got %d %q %q", a.status, a.ctype, a.body)
			}
		}, "htmlok"},
		{"error true", otsectest.Faults{ErrorTrue: 1}, "test-token", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 200 || string(a.body) != `{"error":true,"errors":[{"code":"NEM-3003-000500","message":"Internal error"}]}` {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, "error_true"},
		{"error true needs a token first", otsectest.Faults{ErrorTrue: 1}, "bad", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 401 || string(a.body) != otsectest.UnauthorizedBody {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, ""},
		{"no faults", otsectest.Faults{}, "test-token", otsectest.PathDeviceAlerts, func(t *testing.T, a answer) {
			if a.status != 200 || !json.Valid(a.body) {
				t.Errorf("got %d %.100q", a.status, a.body)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := otsectest.NewServer(otsectest.Options{})
			defer s.Close()
			s.Add(otsectest.StreamDeviceAlerts, site, sensor, 50)
			s.SetFaults(tt.faults)
			for range 5 {
				tt.check(t, get(t, s, tt.token, tt.path, sensorQuery(`{"limit":50}`)))
			}
			for _, r := range s.Requests() {
				if r.Fault != tt.fault {
					t.Errorf("logged fault %q, want %q", r.Fault, tt.fault)
				}
			}
		})
	}
}

func TestFaultTruncate(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{Seed: 1})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 100)
	full := get(t, s, "test-token", otsectest.PathDeviceAlerts, sensorQuery(`{"limit":100}`))
	s.SetFaults(otsectest.Faults{Truncate: 1})
	modes := map[string]int{}
	for range 30 {
		s.ResetRequests()
		req, _ := http.NewRequest("GET", s.URL+otsectest.PathDeviceAlerts+"?"+sensorQuery(`{"limit":100}`).Encode(), nil)
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Valid(b) || len(b) != len(full.body)/2 || string(b) != string(full.body[:len(b)]) {
			t.Fatalf("status %d, %d of %d bytes, valid %v", resp.StatusCode, len(b), len(full.body), json.Valid(b))
		}
		fault := s.Requests()[0].Fault
		modes[fault]++
		switch fault {
		case "truncate": // honest Content-Length
			if rerr != nil || resp.ContentLength != int64(len(b)) {
				t.Errorf("honest cut: err %v, Content-Length %d", rerr, resp.ContentLength)
			}
		case "truncate_close": // full Content-Length, connection dropped
			if !errors.Is(rerr, io.ErrUnexpectedEOF) || resp.ContentLength != int64(len(full.body)) {
				t.Errorf("dropped connection: err %v, Content-Length %d", rerr, resp.ContentLength)
			}
		default:
			t.Errorf("fault %q", fault)
		}
	}
	if modes["truncate"] == 0 || modes["truncate_close"] == 0 {
		t.Errorf("modes %v: want both", modes)
	}
}

func TestFaultHangAndLatency(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()

	s.SetFaults(otsectest.Faults{Hang: 1})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	begin := time.Now()
	req, _ := http.NewRequest("GET", s.URL+otsectest.PathComponents, nil)
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("hang answered %d", resp.StatusCode)
	}
	if d := time.Since(begin); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	waitFor(t, func() bool { return len(s.Requests()) == 1 })
	if r := s.Requests()[0]; r.Status != 0 || r.Fault != "hang" {
		t.Errorf("logged %+v", r)
	}

	s.SetFaults(otsectest.Faults{Latency: 150 * time.Millisecond})
	begin = time.Now()
	a := get(t, s, "test-token", otsectest.PathComponents, nil)
	if d := time.Since(begin); a.status != 200 || d < 150*time.Millisecond {
		t.Errorf("status %d after %v", a.status, d)
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{})
	s.SetFaults(otsectest.Faults{Hang: 1})
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL+otsectest.PathComponents, nil)
		resp, err := s.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, func() bool { return s.RequestCount() == 1 })
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	<-errc
}

func TestFaultProbability(t *testing.T) {
	s := otsectest.NewServer(otsectest.Options{Seed: 42})
	defer s.Close()
	s.SetFaults(otsectest.Faults{Status5xx: 0.3, ErrorTrue: 0.2})
	counts := map[int]int{}
	errorTrue := 0
	for range 300 {
		a := get(t, s, "test-token", otsectest.PathComponents, url.Values{})
		counts[a.status]++
		if string(a.body) == otsectest.ErrorTrueBody {
			errorTrue++
		}
	}
	// 5xx ~ 30%; error:true ~ 20% of the remaining 70% = 14%.
	if counts[503] < 60 || counts[503] > 120 || errorTrue < 20 || errorTrue > 70 || counts[200] != 300-counts[503] {
		t.Errorf("statuses %v, error:true %d", counts, errorTrue)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
