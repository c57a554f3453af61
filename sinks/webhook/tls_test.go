package webhook

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestTLS(t *testing.T) {
	p := newPKI(t, "mdbridge-client")
	tests := []struct {
		name       string
		clientAuth tls.ClientAuthType
		set        func(c *Config)
		wantErr    []string // substrings; none: delivery succeeds
		wantCN     string
	}{
		{name: "ca_file verifies the server", set: func(c *Config) { c.TLS.CAFile = p.caFile }},
		{name: "server name override", set: func(c *Config) { c.TLS.CAFile = p.caFile; c.TLS.ServerName = "localhost" }},
		{name: "unknown CA fails and names the host", set: func(*Config) {},
			wantErr: []string{"https://127.0.0.1:", "certificate"}},
		{name: "wrong server name fails", set: func(c *Config) { c.TLS.CAFile = p.caFile; c.TLS.ServerName = "soar.example" },
			wantErr: []string{"https://127.0.0.1:", "soar.example"}},
		{name: "mTLS with a client certificate", clientAuth: tls.RequireAndVerifyClientCert,
			set: func(c *Config) {
				c.TLS.CAFile = p.caFile
				c.TLS.CertFile, c.TLS.KeyFile = p.clientCert, p.clientKey
			},
			wantCN: "mdbridge-client"},
		{name: "mTLS without a client certificate fails", clientAuth: tls.RequireAndVerifyClientCert,
			set:     func(c *Config) { c.TLS.CAFile = p.caFile },
			wantErr: []string{"https://127.0.0.1:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newTLSReceiver(t, p, tt.clientAuth)
			cfg := rc.config()
			tt.set(&cfg)
			s := mustNew(t, cfg, nil)
			err := deliver(t, s, entries(t, 1, 3))
			reqs := rc.requests()
			if len(tt.wantErr) > 0 {
				var part *pipeline.PartialError
				if err == nil || pipeline.IsPermanent(err) || errors.As(err, &part) {
					t.Fatalf("Deliver: %v, want a retryable error", err)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				if len(reqs) != 0 {
					t.Errorf("the server got %d requests", len(reqs))
				}
				return
			}
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if got := len(decodeEvents(t, EncodingJSONArray, reqs[0].body)); got != 3 {
				t.Errorf("%d events arrived, want 3", got)
			}
			if reqs[0].proto != 2 {
				t.Errorf("HTTP/%d, want HTTP/2 over TLS", reqs[0].proto)
			}
			if reqs[0].peerCN != tt.wantCN {
				t.Errorf("client certificate CN %q, want %q", reqs[0].peerCN, tt.wantCN)
			}
		})
	}
}
