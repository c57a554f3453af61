package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestTLSVerificationNamesHost points every TLS client of the bridge (both
// pollers, and the NATS, syslog and webhook sinks) at a peer whose
// self-signed certificate is in no trust store, with no tls settings at
// all: verification is on by default, so each fails, and what the user
// reads (the log line, and /status last_error) names the host and port,
// says that certificate verification failed and points at tls.ca_file.
func TestTLSVerificationNamesHost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bridge for a few seconds")
	}
	quiet := log.New(io.Discard, "", 0)
	ot := otsectest.NewTLSServer(otsectest.Options{Token: "t0ken"})
	defer ot.Close()
	site := ot.Sites()[0]
	md := mdsstest.NewTLSServer(mdsstest.Options{APIKey: "k3y"})
	defer md.Close()
	hook := httptest.NewUnstartedServer(http.NotFoundHandler())
	hook.Config.ErrorLog = quiet
	hook.StartTLS()
	defer hook.Close()

	certFile, keyFile, _ := writeCertPair(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	ns := startNATSServer(t, server.Options{TLS: true, TLSConfig: serverTLS})
	natsAddr := ns.Addr().String()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS) // a syslog receiver over TLS
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()

	hostOf := func(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://") }
	clients := []struct {
		name, host string
		source     bool // a source (last_error of its stream) or a sink
	}{
		{"ot", hostOf(ot.URL), true},
		{"mdss", hostOf(md.URL), true},
		{"to-nats", natsAddr, false},
		{"to-syslog", ln.Addr().String(), false},
		{"to-webhook", hostOf(hook.URL), false},
	}
	dir, pushAddr := t.TempDir(), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %[1]s/state/s.db }
admin: { listen: "127.0.0.1:0" }
sources:
  ot: { type: otsecurity, url: %[2]q, token: t0ken, interval: 200ms, streams: [device_alerts],
        sites: [{ site_ip: %[3]q, sensor_ip: %[4]q }] }
  mdss: { type: storage_security, url: %[5]q, api_key: k3y, interval: 200ms }
  push: { type: mdss_webhook, listen: %[6]q, secret: hook-s3cret }
sinks:
  to-nats: { type: nats, url: "tls://%[7]s", connect_timeout: 1s, reconnect_wait: 200ms }
  to-syslog: { type: syslog, address: "tls://%[8]s", dial_timeout: 1s }
  to-webhook: { type: webhook, url: %[9]q, timeout: 2s }
`, dir, ot.URL, site.SiteIP, site.SensorIPs[0], md.URL, pushAddr, natsAddr, ln.Addr().String(), hook.URL))
	br := startInProcess(t, cfg)
	// One pushed record gives the sinks something to deliver.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code := postNotification(t, "http://"+pushAddr+"/mdss/webhook", "Bearer hook-s3cret"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the MDSS receiver never stored the notification")
		}
	}

	wantParts := func(host string) []string {
		return []string{host, "certificate", "tls.ca_file"}
	}
	lineOf := func(name string) string { // the newest log line about name's failure
		var found string
		for _, l := range strings.Split(br.logText(), "\n") {
			if (strings.Contains(l, `"source":"`+name+`"`) || strings.Contains(l, `"sink":"`+name+`"`)) &&
				strings.Contains(l, `"error"`) {
				found = l
			}
		}
		return found
	}
	waitFor(t, br, 60*time.Second, "every client to log a TLS failure", func() (bool, string) {
		for _, c := range clients {
			if !strings.Contains(lineOf(c.name), "certificate") {
				return false, c.name + " has logged no certificate error yet"
			}
		}
		return true, ""
	})
	st := br.status(t)
	br.stop(t)
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			line := lineOf(c.name)
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			msg, _ := m["error"].(string)
			for _, want := range wantParts(c.host) {
				if !strings.Contains(msg, want) {
					t.Errorf("logged error lacks %q: %s", want, msg)
				}
			}
			last := ""
			if c.source {
				for _, s := range st.Streams {
					if strings.HasPrefix(s.ID, c.name+"/") || strings.HasPrefix(s.ID, c.name+":") {
						last = s.LastError
					}
				}
			} else {
				last = st.sink(t, c.name).LastError
			}
			for _, want := range wantParts(c.host) {
				if !strings.Contains(last, want) {
					t.Errorf("/status last_error lacks %q: %q", want, last)
				}
			}
		})
	}
}

// postNotification posts one infected-file notification to an MDSS
// receiver and returns the status code (0 when no answer came).
func postNotification(t *testing.T, url, auth string) int {
	t.Helper()
	body := `{"FileId":"f-` + fmt.Sprint(time.Now().UnixNano()) + `","FileName":"a.exe","FilePath":"in/a.exe","FileStatus":"Blocked",` +
		`"CoreScanResult":"Infected","FileState":"Available","RemediationResult":["BlockedMoved: Applied"],` +
		`"ScanCompletedTimeStamp":"2026-11-23T10:20:24.97499Z","WorkflowName":"Default Workflow","Rules":["r"],` +
		`"ExceptionDetails":"","RemediationErrors":[],"WebhookNotificationType":"FileScanned"}`
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
