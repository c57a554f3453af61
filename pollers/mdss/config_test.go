package mdss

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func(c *Config) { c.URL = "https://mdss.example"; c.APIKey = "k" }
	tests := []struct {
		name string
		set  func(c *Config)
		want []string // every message, in any order; nil: valid
	}{
		{"api key", ok, nil},
		{"api key file", func(c *Config) { c.URL = "http://mdss:8005"; c.APIKeyFile = "/run/secrets/k" }, nil},
		{"user and password", func(c *Config) { c.URL = "https://mdss.example"; c.Username = "u"; c.Password = "p" }, nil},
		{"user and password file", func(c *Config) { c.URL = "https://mdss.example"; c.Username = "u"; c.PasswordFile = "/f" }, nil},
		{"nothing", func(c *Config) {}, []string{
			"url: is required",
			"api_key: is required (or api_key_file, or username with password or password_file)"}},
		{"both modes", func(c *Config) { ok(c); c.Username = "u"; c.Password = "p" }, []string{
			"username: set either api_key (or api_key_file) or username and password, not both"}},
		{"key and key file", func(c *Config) { ok(c); c.APIKeyFile = "/f" }, []string{"api_key_file: set either api_key or api_key_file, not both"}},
		{"user without password", func(c *Config) { c.URL = "https://x"; c.Username = "u" }, []string{
			"password: is required with username (or password_file)"}},
		{"password without user", func(c *Config) { c.URL = "https://x"; c.Password = "p" }, []string{
			"username: is required with password or password_file"}},
		{"password and file", func(c *Config) { c.URL = "https://x"; c.Username = "u"; c.Password = "p"; c.PasswordFile = "/f" }, []string{
			"password_file: set either password or password_file, not both"}},
		{"url", func(c *Config) { ok(c); c.URL = "ftp://x" }, []string{"url: must be an http:// or https:// URL with a host"}},
		{"url credentials", func(c *Config) { ok(c); c.URL = "https://u:p@x" }, []string{"url: must not carry credentials; use api_key or username and password"}},
		{"url query", func(c *Config) { ok(c); c.URL = "https://x/?a=b" }, []string{"url: must not have a query or fragment; the API paths go under paths"}},
		{"numbers", func(c *Config) {
			ok(c)
			c.Interval, c.Timeout, c.MaxBodyBytes, c.PageSize, c.MaxPages, c.Lookback, c.RefreshBefore = time.Millisecond, 0, 10, 0, 0, -1, -1
		}, []string{
			"interval: must be at least 100ms", "timeout: must be positive", "max_body_bytes: must be at least 1KiB",
			"page_size: must be between 1 and 10000", "max_pages: must be at least 1", "lookback: must not be negative",
			"refresh_before: must not be negative"}},
		{"streams", func(c *Config) { ok(c); c.Streams = []string{"scans", "alerts", "scans"} }, []string{
			`streams[1]: unknown stream "alerts" (supported: scans, files)`, `streams[2]: stream "scans" is listed twice`}},
		{"no streams", func(c *Config) { ok(c); c.Streams = nil }, []string{"streams: must name at least one stream"}},
		{"start", func(c *Config) { ok(c); c.Start = "soon" }, []string{`start: want all, now or a positive duration such as 24h, got "soon"`}},
		{"fields", func(c *Config) {
			ok(c)
			c.Fields = map[string]map[string]string{"scans": {"time": "finishedAt", "color": "x", "name": " "}, "alerts": {}}
		}, []string{
			"fields.alerts: unknown stream (known: scans, files)",
			"fields.scans.color: unknown field (known: blocked, files, id, infected, name, start, status, storage, time)",
			"fields.scans.name: must be a field path such as stopTime or scanResult.scanResults.totalAvs"}},
		{"threat results", func(c *Config) { ok(c); c.ThreatResults = []int{1, 256, -1} }, []string{
			"threat_results[1]: must be a MetaDefender Core result code from 0 to 255",
			"threat_results[2]: must be a MetaDefender Core result code from 0 to 255"}},
		{"no threat results", func(c *Config) { ok(c); c.ThreatResults = []int{} }, []string{
			"threat_results: must list at least one result code (default [1 2 8 18 20 21 22])"}},
		{"paths", func(c *Config) {
			c.URL, c.Username, c.Password = "https://x", "u", "p"
			c.Paths = Paths{Authenticate: "", Refresh: "api/refresh", Logout: "/a b", Scans: "/api/scan/{count}", Files: "/api/file/{startIndex}/{count}/{startIndex}"}
		}, []string{
			"paths.authenticate: is required", "paths.refresh: must start with /", "paths.logout: must not contain #, \\ or white space",
			"paths.scans: must contain {startIndex} exactly once",
			"paths.files: must contain {startIndex} exactly once", "paths.files: must contain {scanId} exactly once"}},
		{"session paths unused with an API key", func(c *Config) { ok(c); c.Paths.Authenticate = "" }, nil},
		{"files path unused without files", func(c *Config) { ok(c); c.Streams = []string{"scans"}; c.Paths.Files = "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			err := c.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(sorted(got), "\n") != strings.Join(sorted(tt.want), "\n") {
				t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := DefaultConfig()
	c.APIKey, c.Password = "k3y-Planted-1", "pw-Planted-2"
	js, _ := json.Marshal(c)
	for _, txt := range []string{fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c.APIKey, c.Password), string(js)} {
		if strings.Contains(txt, "Planted") {
			t.Fatalf("a secret is shown: %s", txt)
		}
	}
}

func TestDefaultPathsAreTheContract(t *testing.T) {
	p := DefaultConfig().Paths
	if p.Authenticate != "/api/user/authenticate" || p.Refresh != "/api/user/refreshToken" || p.Logout != "/api/user/logout" ||
		p.Scans != "/api/scan/{startIndex}/{count}" || p.Files != "/api/file/{startIndex}/{count}?scanId={scanId}" {
		t.Errorf("%+v", p)
	}
}
