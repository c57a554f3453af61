package mdsstest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults mdsstest.Faults
		path   string
		hdr    []string
		check  func(t *testing.T, a answer)
		fault  string // logged Request.Fault
	}{
		{"5xx", mdsstest.Faults{Status5xx: 1}, "/api/scan/0/10", nil, func(t *testing.T, a answer) {
			if a.status != 503 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") || string(a.body) != mdsstest.UnavailableText {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, "5xx"},
		{"html 502 before credentials", mdsstest.Faults{HTML: 1}, "/api/scan/0/10", nil, func(t *testing.T, a answer) {
			if a.status != 502 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || string(a.body) != mdsstest.BadGatewayHTML {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, "html"},
		{"html 502 on authenticate", mdsstest.Faults{HTML: 1}, "/api/user/authenticate", nil, func(t *testing.T, a answer) {
			if a.status != 502 {
				t.Errorf("got %d", a.status)
			}
		}, "html"},
		{"html 502 on unknown path", mdsstest.Faults{HTML: 1}, "/nothing", nil, func(t *testing.T, a answer) {
			if a.status != 502 {
				t.Errorf("got %d", a.status)
			}
		}, "html"},
		{"path prefix spares other paths", mdsstest.Faults{HTML: 1, PathPrefix: "/API/file"}, "/api/scan/0/10", []string{"ApiKey: " + mdsstest.DefaultAPIKey}, func(t *testing.T, a answer) {
			if a.status != 200 {
				t.Errorf("got %d", a.status)
			}
		}, ""},
		{"path prefix hits its paths", mdsstest.Faults{HTML: 1, PathPrefix: "/API/file"}, "/api/file/0/10", nil, func(t *testing.T, a answer) {
			if a.status != 502 {
				t.Errorf("got %d", a.status)
			}
		}, "html"},
		{"huge needs credentials first", mdsstest.Faults{Huge: 1, HugeSize: 1000}, "/api/scan/0/10", nil, func(t *testing.T, a answer) {
			if a.status != 401 || string(a.body) != mdsstest.UnauthorizedBody {
				t.Errorf("got %d %q", a.status, a.body)
			}
		}, ""},
		{"no faults", mdsstest.Faults{}, "/api/scan/0/10", []string{"ApiKey: " + mdsstest.DefaultAPIKey}, func(t *testing.T, a answer) {
			if a.status != 200 || !json.Valid(a.body) {
				t.Errorf("got %d %.100q", a.status, a.body)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := backlog(t, 5, mdsstest.Options{})
			s.SetFaults(tt.faults)
			s.ResetRequests()
			for range 5 {
				tt.check(t, req(t, s, "GET", tt.path, "", tt.hdr...))
			}
			for _, r := range s.Requests() {
				if r.Fault != tt.fault {
					t.Errorf("logged fault %q, want %q", r.Fault, tt.fault)
				}
			}
		})
	}
}

func TestFault5xxCount(t *testing.T) {
	s, _ := backlog(t, 2, mdsstest.Options{})
	s.SetFaults(mdsstest.Faults{Status5xxCount: 3, PathPrefix: "/api/scan"})
	for range 3 {
		login(t, s, "admin", "admin-password") // spared: outside PathPrefix, and not counted
	}
	var statuses []int
	for range 5 {
		statuses = append(statuses, get(t, s, "/api/scan/0/10").status)
	}
	if want := []int{503, 503, 503, 200, 200}; !slices.Equal(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	s.SetFaults(mdsstest.Faults{Status5xxCount: 1})
	if a := get(t, s, "/api/scan/0/10"); a.status != 503 {
		t.Errorf("SetFaults did not restart the count: %d", a.status)
	}
}

func TestFaultHuge(t *testing.T) {
	for shape, overhead := range map[string]int{"object": len(`"padding":"",`), "array": len(`"",`)} {
		t.Run(shape, func(t *testing.T) {
			s, _ := backlog(t, 3, mdsstest.Options{ListShape: shape})
			plain := get(t, s, "/api/scan/0/10")
			tk := login(t, s, "admin", "admin-password")
			s.SetFaults(mdsstest.Faults{Huge: 1, HugeSize: 2 << 20})
			a := get(t, s, "/api/scan/0/10")
			if a.status != 200 || a.err != nil || len(a.body) != len(plain.body)+2<<20+overhead || !json.Valid(a.body) {
				t.Fatalf("got %d, %d bytes (plain %d), err %v, valid %v", a.status, len(a.body), len(plain.body), a.err, json.Valid(a.body))
			}
			var v any
			json.Unmarshal(a.body, &v)
			switch x := v.(type) {
			case map[string]any:
				if len(x["padding"].(string)) != 2<<20 || len(x["items"].([]any)) != 3 {
					t.Errorf("object keys %d", len(x))
				}
			case []any:
				if len(x) != 4 || len(x[0].(string)) != 2<<20 {
					t.Errorf("array of %d", len(x))
				}
			}
			if r := s.Requests(); r[len(r)-1].Fault != "huge" {
				t.Errorf("logged %q", r[len(r)-1].Fault)
			}
			// The logout answer is empty; padded, it is still JSON.
			lo := req(t, s, "POST", "/api/user/logout", "", "Authorization: Bearer "+tk.AccessToken)
			if lo.status != 200 || !json.Valid(lo.body) || len(lo.body) != 2<<20+len(`{"padding":""}`) {
				t.Errorf("logout: %d, %d bytes", lo.status, len(lo.body))
			}
		})
	}
}

func TestFaultTruncate(t *testing.T) {
	s, _ := backlog(t, 20, mdsstest.Options{})
	full := get(t, s, "/api/file/0/1000")
	s.SetFaults(mdsstest.Faults{Truncate: 1})
	modes := map[string]int{}
	for range 30 {
		s.ResetRequests()
		r, _ := http.NewRequest("GET", s.URL+"/api/file/0/1000", nil)
		r.Header.Set("ApiKey", mdsstest.DefaultAPIKey)
		resp, err := s.Client().Do(r)
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
		case "truncate":
			if rerr != nil || resp.ContentLength != int64(len(b)) {
				t.Errorf("honest cut: err %v, Content-Length %d", rerr, resp.ContentLength)
			}
		case "truncate_close":
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
	s, _ := backlog(t, 1, mdsstest.Options{})
	s.SetFaults(mdsstest.Faults{Hang: 1})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	begin := time.Now()
	r, _ := http.NewRequest("GET", s.URL+"/api/scan/0/10", nil)
	resp, err := c.Do(r)
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

	s.SetFaults(mdsstest.Faults{Latency: 150 * time.Millisecond})
	begin = time.Now()
	if a := get(t, s, "/api/scan/0/10"); a.status != 200 || time.Since(begin) < 150*time.Millisecond {
		t.Errorf("status %d after %v", a.status, time.Since(begin))
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{})
	s.SetFaults(mdsstest.Faults{Hang: 1})
	errc := make(chan error, 1)
	go func() {
		r, _ := http.NewRequest("GET", s.URL+"/api/scan/0/1", nil)
		resp, err := s.Client().Do(r)
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
	s := mdsstest.NewServer(mdsstest.Options{Seed: 42})
	defer s.Close()
	s.SetFaults(mdsstest.Faults{Status5xx: 0.3})
	counts := map[int]int{}
	for range 300 {
		counts[get(t, s, "/api/scan/0/1").status]++
	}
	if counts[503] < 60 || counts[503] > 120 || counts[200] != 300-counts[503] {
		t.Errorf("statuses %v", counts)
	}
}

func TestTLSServer(t *testing.T) {
	s := mdsstest.NewTLSServer(mdsstest.Options{})
	defer s.Close()
	if !strings.HasPrefix(s.URL, "https://") || s.Certificate() == nil {
		t.Fatalf("URL %q", s.URL)
	}
	if a := get(t, s, "/api/scan/0/1"); a.status != 200 {
		t.Errorf("over TLS: %d", a.status)
	}
}

func TestRequestLog(t *testing.T) {
	s := mdsstest.NewServer(mdsstest.Options{MaxRequests: 10})
	defer s.Close()
	login(t, s, "admin", "admin-password")
	r := s.Requests()[0]
	if r.Method != "POST" || r.Path != "/api/user/authenticate" || !strings.Contains(string(r.Body), `"userName":"admin"`) ||
		r.Status != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("logged %+v", r)
	}
	for range 30 {
		req(t, s, "GET", "/api/File/0/5?scanId=abc", "", "ApiKey: "+mdsstest.DefaultAPIKey)
	}
	reqs := s.Requests()
	if len(reqs) > 10 || s.RequestCount() != 31 {
		t.Errorf("kept %d, counted %d", len(reqs), s.RequestCount())
	}
	last := reqs[len(reqs)-1]
	if last.Path != "/api/File/0/5" || last.Query.Get("scanId") != "abc" || last.Auth != "apikey" || last.Body != nil {
		t.Errorf("logged %+v", last)
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
