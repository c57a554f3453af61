package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// TestRunRejectsBadSinkConfig checks that a sink config that cannot work is
// refused by `mdbridge run` and `mdbridge validate` at once, with a message
// naming the key, before the bridge opens its state or polls anything.
func TestRunRejectsBadSinkConfig(t *testing.T) {
	srv := otsectest.NewServer(otsectest.Options{Token: "bad-config-token"})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add(otsectest.StreamDeviceAlerts, site.SiteIP, site.SensorIPs[0], 5)

	files := t.TempDir()
	notPEM := filepath.Join(files, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(files, "missing.pem")
	t.Setenv("UNSET_VAR_X", "")
	os.Unsetenv("UNSET_VAR_X") // Setenv restores it after the test

	tests := []struct {
		name string
		sink string // the sink's YAML under sinks:, indented by four spaces
		want string // the key path stderr must name
	}{
		{"unknown format", `  soar:
    type: webhook
    url: "http://127.0.0.1:9/hook"
    format: xml`, "sinks.soar.format"},
		{"unknown format on syslog", `  siem:
    type: syslog
    address: "tcp://127.0.0.1:514"
    format: rfc5424json`, "sinks.siem.format"},
		{"syslog address without ://", `  siem:
    type: syslog
    address: "tcp//nohost"`, "sinks.siem.address"},
		{"syslog address without a port", `  siem:
    type: syslog
    address: "tcp://siem.example"`, "sinks.siem.address"},
		{"nats url garbage", `  bus:
    type: nats
    url: "::garbage::"`, "sinks.bus.url"},
		{"nats url with a port out of range", `  bus:
    type: nats
    url: "nats://127.0.0.1:99999"`, "sinks.bus.url"},
		{"webhook url with a port out of range", `  soar:
    type: webhook
    url: "http://127.0.0.1:99999/hook"`, "sinks.soar.url"},
		{"webhook secret from an unset variable", `  soar:
    type: webhook
    url: "http://127.0.0.1:9/hook"
    secret: ${UNSET_VAR_X}`, "sinks.soar.secret"},
		{"nats token_file that does not exist", fmt.Sprintf(`  bus:
    type: nats
    url: "nats://127.0.0.1:4222"
    token_file: %q`, missing), "sinks.bus.token_file"},
		{"webhook secret_file that does not exist", fmt.Sprintf(`  soar:
    type: webhook
    url: "http://127.0.0.1:9/hook"
    secret_file: %q`, missing), "sinks.soar.secret_file"},
		{"syslog ca_file that does not exist", fmt.Sprintf(`  siem:
    type: syslog
    address: "tls://127.0.0.1:6514"
    tls: { ca_file: %q }`, missing), "sinks.siem.tls.ca_file"},
		{"syslog ca_file that is not PEM", fmt.Sprintf(`  siem:
    type: syslog
    address: "tls://127.0.0.1:6514"
    tls: { ca_file: %q }`, notPEM), "sinks.siem.tls.ca_file"},
		{"webhook ca_file that is not PEM", fmt.Sprintf(`  soar:
    type: webhook
    url: "https://127.0.0.1:9/hook"
    tls: { ca_file: %q }`, notPEM), "sinks.soar.tls.ca_file"},
		{"nats ca_file that does not exist", fmt.Sprintf(`  bus:
    type: nats
    url: "tls://127.0.0.1:4222"
    tls: { ca_file: %q }`, missing), "sinks.bus.tls.ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			statePath := filepath.Join(dir, "state", "mdbridge.db")
			cfg := writeConfig(t, fmt.Sprintf(`state: { path: %q }
admin: { listen: "" }
sources:
  plant-a: { type: otsecurity, url: %q, token: bad-config-token, interval: 1s, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %q }
%s
`, statePath, srv.URL, filepath.Join(dir, "out.jsonl"), tc.sink))
			for _, cmd := range []string{"run", "validate"} {
				before := srv.RequestCount()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var stdout, stderr bytes.Buffer
				began := time.Now()
				code := run(ctx, []string{cmd, "-c", cfg}, &stdout, &stderr)
				took := time.Since(began)
				cancel()
				if code == 0 {
					t.Fatalf("%s exited 0 (after %v); want a refusal naming %s\nstderr: %s", cmd, took.Round(time.Millisecond), tc.want, &stderr)
				}
				if took > 10*time.Second {
					t.Errorf("%s took %v to refuse the config", cmd, took.Round(time.Millisecond))
				}
				if !strings.Contains(stderr.String(), tc.want+":") {
					t.Errorf("%s exited %d; stderr does not name %s:\n%s", cmd, code, tc.want, &stderr)
				}
				if n := srv.RequestCount() - before; n != 0 {
					t.Errorf("%s asked the Enterprise Manager %d times before refusing the config", cmd, n)
				}
				if _, err := os.Stat(statePath); !os.IsNotExist(err) {
					t.Errorf("%s created the state file before refusing the config (%v)", cmd, err)
				}
			}
		})
	}
}
