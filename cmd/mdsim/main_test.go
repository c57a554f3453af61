package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

var startLine = regexp.MustCompile(`mdsim: serving (https?://\S+) token=(\S+).*?(?: ca=(\S+))?\n`)

// start runs mdsim with args and returns its URL, CA path and a stop
// function that cancels it and returns run's error.
func start(t *testing.T, args ...string) (base, ca string, out *harness.Output, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &harness.Output{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, out) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := startLine.FindStringSubmatch(out.String()); m != nil {
			base, ca = m[1], m[3]
			break
		}
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("run ended before serving: %v; output %q", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no start line in 30s")
		}
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Error("run did not return 10s after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return base, ca, out, stop
}

func fetch(t *testing.T, c *http.Client, u, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestRunServesAndStops(t *testing.T) {
	base, _, out, stop := start(t, "-listen", "127.0.0.1:0", "-sites", "2", "-sensors", "2", "-backlog", "30", "-rate", "200", "-token", "tok")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("URL %q", base)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	status, body := fetch(t, c, base+otsectest.PathComponents, "tok")
	want := `{"error":false,"errors":[],"data":[{"siteIp":"10.40.172.144","sensorIps":["10.40.172.172","10.40.172.173"]},{"siteIp":"10.40.173.144","sensorIps":["10.40.173.172","10.40.173.173"]}]}`
	if status != 200 || string(body) != want {
		t.Fatalf("components: %d %s", status, body)
	}
	if status, _ := fetch(t, c, base+otsectest.PathComponents, "demo-token"); status != 401 {
		t.Errorf("wrong token: %d", status)
	}
	q := url.Values{"siteIp": {"10.40.173.144"}, "sensorIp": {"10.40.173.173"}, "data": {`{"limit":100,"page":1,"sortBy":"alertStarted","sortType":"desc"}`}}
	status, body = fetch(t, c, base+otsectest.PathConnAlerts+"?"+q.Encode(), "tok")
	var env struct {
		Data struct {
			Items []map[string]any `json:"items"`
			Total int              `json:"total"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || status != 200 {
		t.Fatalf("%d %v %.200s", status, err, body)
	}
	if env.Data.Total < 30 || len(env.Data.Items) < 30 {
		t.Errorf("backlog: %d items of %d", len(env.Data.Items), env.Data.Total)
	}
	// The backlog ends about now, so live records follow it closely.
	newest, err := time.Parse(time.RFC3339Nano, env.Data.Items[0]["alertStarted"].(string))
	if err != nil || time.Since(newest).Abs() > 2*time.Minute {
		t.Errorf("newest record at %v (%v)", newest, err)
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	if !strings.Contains(out.String(), "mdsim: stopped") {
		t.Errorf("output %q", out.String())
	}
	if _, err := c.Get(base + otsectest.PathComponents); err == nil {
		t.Error("still serving after stop")
	}
}

func TestRunTLSAndFaults(t *testing.T) {
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	base, ca, _, stop := start(t, "-listen", "127.0.0.1:0", "-tls", "-ca-file", caPath, "-backlog", "0", "-rate", "0", "-phtml", "1")
	if !strings.HasPrefix(base, "https://") || ca != caPath {
		t.Fatalf("URL %q, ca %q", base, ca)
	}
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CA file holds no certificate")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status, body := fetch(t, c, base+otsectest.PathComponents, "demo-token")
	if status != 502 || !strings.Contains(string(body), "nginx") {
		t.Errorf("with -phtml 1: %d %q", status, body)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestRunHangDoesNotBlockStop(t *testing.T) {
	base, _, _, stop := start(t, "-listen", "127.0.0.1:0", "-backlog", "0", "-phang", "1")
	go func() {
		resp, err := http.Get(base + otsectest.PathComponents)
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	began := time.Now()
	if err := stop(); err != nil {
		t.Error(err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("stop took %v", d)
	}
}

func TestRunRejects(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"-listen", "0.0.0.0:0"}, "not a loopback"},
		{[]string{"-listen", ":3003"}, "not a loopback"},
		{[]string{"-listen", "192.0.2.1:3003"}, "-allow-remote"},
		{[]string{"-sites", "0"}, "-sites"},
		{[]string{"-sensors", "85"}, "-sensors"},
		{[]string{"-p5xx", "1.5"}, "-p5xx"},
		{[]string{"-streams", "alerts"}, "unknown stream"},
		{[]string{"-shape", "table"}, "ListShape"},
		{[]string{"-time-format", "unix"}, "TimeFormat"},
		{[]string{"-nope"}, "not defined"},
		{[]string{"extra"}, "unexpected"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %v, want it to mention %q", err, tt.msg)
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out); err != nil || !strings.Contains(out.String(), "-listen") {
		t.Errorf("-h: %v %q", err, out.String())
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:3003": true, "[::1]:3003": true, "localhost:3003": true, "127.1.2.3:0": true,
		"0.0.0.0:3003": false, "10.0.0.1:3003": false, "[::]:3003": false, "example.com:3003": false, "nohost": false,
	} {
		if err := checkListen(addr, false); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := checkListen("0.0.0.0:3003", true); err != nil {
		t.Error(err)
	}
}

var mdssLine = regexp.MustCompile(`mdsim: mdss serving (https?://\S+) api-key=(\S+) user=(\S+) password=(\S+) backlog=(\d+)`)

func TestRunMDSS(t *testing.T) {
	type hook struct {
		header http.Header
		body   map[string]any
	}
	hooks := make(chan hook, 1000)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		hooks <- hook{r.Header.Clone(), m}
	}))
	defer rc.Close()
	_, _, out, stop := start(t, "-listen", "127.0.0.1:0", "-backlog", "0", "-rate", "0",
		"-mdss-listen", "127.0.0.1:0", "-mdss-backlog", "20", "-mdss-rate", "20", "-mdss-max-duration", "200ms",
		"-mdss-api-key", "k", "-mdss-user", "svc", "-mdss-password", "pw",
		"-mdss-webhook", rc.URL+"/mdss", "-mdss-webhook-header", "X-Token: s3cret", "-mdss-webhook-filter", "all")
	m := mdssLine.FindStringSubmatch(out.String())
	if m == nil || m[2] != "k" || m[3] != "svc" || m[4] != "pw" || m[5] != "20" {
		t.Fatalf("no MDSS start line: %q", out.String())
	}
	base := m[1]
	c := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path, body string, hdr ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var list struct {
		Items []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"items"`
		Total int `json:"total"`
	}
	status, body := do("GET", "/api/scan/0/1000", "", "ApiKey", "k")
	if err := json.Unmarshal(body, &list); err != nil || status != 200 || list.Total < 20 {
		t.Fatalf("scans with the key: %d %v %.200s", status, err, body)
	}
	if status, _ := do("GET", "/api/scan/0/10", "", "ApiKey", "demo-api-key"); status != 401 {
		t.Errorf("default key: %d", status)
	}
	status, body = do("POST", "/api/user/authenticate", `{"userName":"svc","password":"pw"}`, "Content-Type", "application/json")
	var tk struct{ AccessToken string }
	if json.Unmarshal(body, &tk); status != 200 || tk.AccessToken == "" {
		t.Fatalf("authenticate: %d %s", status, body)
	}
	if status, _ := do("GET", "/api/file/0/10?scanId="+list.Items[0].ID, "", "Authorization", "Bearer "+tk.AccessToken); status != 200 {
		t.Errorf("files with the bearer token: %d", status)
	}
	// Live scans finish and are notified, with the configured header.
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case h := <-hooks:
			if h.header.Get("X-Token") != "s3cret" {
				t.Errorf("webhook headers %v", h.header)
			}
			done = h.body["WebhookNotificationType"] == "ScanCompleted"
		case <-deadline:
			t.Fatal("no ScanCompleted webhook in 10s")
		}
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
	if !strings.Contains(out.String(), "mdsim: stopped") {
		t.Errorf("output %q", out.String())
	}
	if _, err := c.Get(base + "/api/scan/0/1"); err == nil {
		t.Error("MDSS still serving after stop")
	}
}

func TestRunMDSSTLSAndFaults(t *testing.T) {
	_, ca, out, stop := start(t, "-listen", "127.0.0.1:0", "-tls", "-backlog", "0", "-rate", "0",
		"-mdss-listen", "127.0.0.1:0", "-mdss-backlog", "3", "-mdss-rate", "0", "-phtml", "1")
	m := mdssLine.FindStringSubmatch(out.String())
	if m == nil || !strings.HasPrefix(m[1], "https://") {
		t.Fatalf("MDSS line %q", out.String())
	}
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", m[1]+"/api/scan/0/10", nil)
	req.Header.Set("ApiKey", "demo-api-key")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "nginx") {
		t.Errorf("MDSS with -phtml 1: %d %q", resp.StatusCode, b)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestRunMDSSRejects(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"-mdss-listen", "0.0.0.0:0"}, "not a loopback"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-webhook", "http://192.0.2.1/hook"}, "not a loopback URL"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-webhook", "ftp://127.0.0.1/hook"}, "WebhookURL"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-shape", "table"}, "ListShape"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-webhook-filter", "some"}, "WebhookFileFilter"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-api-key", "", "-mdss-user", ""}, "nobody"},
		{[]string{"-mdss-listen", "127.0.0.1:0", "-mdss-files", "0"}, "-mdss-files"},
		{[]string{"-mdss-webhook-header", "no colon"}, "Name: value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %v, want it to mention %q", err, tt.msg)
			}
		})
	}
	// Without -mdss-listen the MDSS flags are not checked and nothing is served.
	if _, err := parseFlags([]string{"-mdss-shape", "table"}, io.Discard); err != nil {
		t.Errorf("MDSS flags checked without -mdss-listen: %v", err)
	}
}
