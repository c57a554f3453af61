package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// secretBearingKeys lists, by reflection over configs.SourceConfig and
// configs.SinkConfig, every key of every source and sink type that can hold
// a credential: a pipeline.Secret, a map of them (webhook headers) or a file
// (a key ending in _file). Each is "section.type.key", e.g.
// "sinks.webhook.tls.key_file".
func secretBearingKeys(t *testing.T) []string {
	t.Helper()
	secretType := reflect.TypeFor[pipeline.Secret]()
	var keys []string
	var walk func(prefix string, st reflect.Type)
	walk = func(prefix string, st reflect.Type) {
		for i := range st.NumField() {
			f := st.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if key == "" || key == "-" || !f.IsExported() {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == secretType,
				ft.Kind() == reflect.Map && ft.Elem() == secretType,
				strings.HasSuffix(key, "_file"):
				keys = append(keys, prefix+key)
			case ft.Kind() == reflect.Struct:
				walk(prefix+key+".", ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(prefix+key+"[].", ft.Elem())
			}
		}
	}
	for _, fam := range []struct {
		section string
		t       reflect.Type
	}{{"sources", reflect.TypeFor[configs.SourceConfig]()}, {"sinks", reflect.TypeFor[configs.SinkConfig]()}} {
		for i := range fam.t.NumField() {
			f := fam.t.Field(i)
			if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
				continue
			}
			typ, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			walk(fam.section+"."+typ+".", f.Type.Elem())
		}
	}
	if len(keys) == 0 {
		t.Fatal("found no secret-bearing key by reflection")
	}
	sort.Strings(keys)
	return keys
}

// publicFileKeys are *_file keys that name public material: certificates.
var publicFileKeys = []string{"tls.ca_file", "tls.cert_file"}

// secInstance is one source or sink of the planted config.
type secInstance struct {
	section, name, typ string
	keys               map[string]any
}

// TestSecretsNeverShown plants a distinct marker in every secret-bearing key
// of every source and sink type, inline and through its *_file variant,
// then runs `validate` (a good and a broken config), runs the bridge against
// the OT Security and Storage Security fakes, an embedded nats-server and
// loopback webhook, syslog and MDSS-webhook peers, all of which refuse the
// credentials one way or another (401s, 500s, NATS authorization
// violations, an untrusted TLS certificate), and looks for every marker in
// every log line, every CLI output, /status, /metrics and every file the
// bridge wrote. The list of keys comes from the config types by reflection:
// a new secret key without a plant here fails the test.
func TestSecretsNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bridge for several seconds")
	}
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	work := filepath.Join(dir, "work")
	for _, d := range []string{secrets, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var needles []string // every string that must never be shown
	marker := func(what string) string {
		m := "mkr-" + what + "-Xq7Zp"
		needles = append(needles, m)
		return m
	}
	secretFile := func(name, content string) string {
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	whsec := func(what string) string {
		raw := marker(what) + "-padding-to-32-bytes"
		b64 := base64.StdEncoding.EncodeToString([]byte(raw))
		needles = append(needles, b64)
		return "whsec_" + b64
	}
	basic := func(user, pw string) { // what an Authorization: Basic header would show
		needles = append(needles, base64.StdEncoding.EncodeToString([]byte(user+":"+pw)))
	}

	// A certificate and key for 127.0.0.1, used as the receiver's server
	// certificate and the sinks' client certificate; its key is a secret.
	certFile, keyFile, keyNeedle := writeCertPair(t, secrets)
	needles = append(needles, keyNeedle)
	userSeed := func() string {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		needles = append(needles, string(seed))
		return string(seed)
	}
	credsFile := func() string {
		okp, _ := nkeys.CreateAccount()
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		useed, _ := ukp.Seed()
		ujwt, err := jwt.NewUserClaims(upub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := jwt.FormatUserConfig(ujwt, useed)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, string(useed))
		return secretFile("user.creds", string(creds))
	}

	// Upstreams and receivers, each refusing the planted credentials.
	ot := otsectest.NewServer(otsectest.Options{Token: "the-fake-accepts-only-this"})
	defer ot.Close()
	site := ot.Sites()[0]
	md := mdsstest.NewServer(mdsstest.Options{APIKey: "the-fake-accepts-only-this", Users: map[string]string{"analyst": "only-this-password"}})
	defer md.Close()
	ns := startNATSServer(t, server.Options{Authorization: "the-server-accepts-only-this"})
	rec401, rec500 := newEchoReceiver(t, http.StatusUnauthorized), newEchoReceiver(t, http.StatusInternalServerError)
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler()) // a TLS peer whose certificate nobody trusts
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
	untrusted.StartTLS()
	defer untrusted.Close()
	hookInline, hookFile := freeAddr(t), freeAddr(t)
	webhookQuery := marker("webhook-url-query")

	otSource := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": ot.URL, "interval": "200ms", "streams": []string{"device_alerts"},
			"sites": []map[string]any{{"site_ip": site.SiteIP, "sensor_ip": site.SensorIPs[0]}}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	mdSource := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": md.URL, "interval": "200ms"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	natsSink := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": ns.ClientURL(), "ack_timeout": "1s", "connect_timeout": "1s", "reconnect_wait": "200ms"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	whPassword, whPasswordFile := marker("webhook-password"), marker("webhook-password-file")
	basic("bridge", whPassword)
	basic("bridge", whPasswordFile)
	mdPassword, mdPasswordFile := marker("mdss-password"), marker("mdss-password-file")
	natsPassword, natsPasswordFile := marker("nats-password"), marker("nats-password-file")
	hookSecret, hookSecretFile := marker("hook-secret"), marker("hook-secret-file")
	whBearer, whHeader := marker("webhook-bearer"), marker("webhook-header")
	instances := []secInstance{
		{"sources", "ot-inline", "otsecurity", otSource(map[string]any{"token": marker("ot-token")})},
		{"sources", "ot-file", "otsecurity", otSource(map[string]any{"token_file": secretFile("ot-token", marker("ot-token-file"))})},
		{"sources", "mdss-key", "storage_security", mdSource(map[string]any{"api_key": marker("mdss-api-key")})},
		{"sources", "mdss-keyfile", "storage_security", mdSource(map[string]any{"api_key_file": secretFile("mdss-key", marker("mdss-api-key-file"))})},
		{"sources", "mdss-pw", "storage_security", mdSource(map[string]any{"username": "analyst", "password": mdPassword})},
		{"sources", "mdss-pwfile", "storage_security", mdSource(map[string]any{"username": "analyst", "password_file": secretFile("mdss-pw", mdPasswordFile)})},
		{"sources", "hook-inline", "mdss_webhook", map[string]any{"listen": hookInline, "secret": hookSecret}},
		{"sources", "hook-file", "mdss_webhook", map[string]any{"listen": hookFile, "secret_file": secretFile("hook", hookSecretFile),
			"tls": map[string]any{"cert_file": certFile, "key_file": keyFile}}},

		{"sinks", "archive", "file", map[string]any{"path": filepath.Join(work, "out", "events.jsonl")}},
		{"sinks", "nats-token", "nats", natsSink(map[string]any{"token": marker("nats-token")})},
		{"sinks", "nats-tokenfile", "nats", natsSink(map[string]any{"token_file": secretFile("nats-token", marker("nats-token-file"))})},
		{"sinks", "nats-pw", "nats", natsSink(map[string]any{"user": "bridge", "password": natsPassword})},
		{"sinks", "nats-pwfile", "nats", natsSink(map[string]any{"user": "bridge", "password_file": secretFile("nats-pw", natsPasswordFile)})},
		{"sinks", "nats-nkey", "nats", natsSink(map[string]any{"nkey_seed_file": secretFile("user.nk", userSeed())})},
		{"sinks", "nats-creds", "nats", natsSink(map[string]any{"creds_file": credsFile()})},
		{"sinks", "nats-tls", "nats", natsSink(map[string]any{"token": marker("nats-tls-token"),
			"tls": map[string]any{"cert_file": certFile, "key_file": keyFile}})},
		{"sinks", "syslog-tls", "syslog", map[string]any{"address": "tls://" + untrusted.Listener.Addr().String(), "dial_timeout": "1s",
			"tls": map[string]any{"cert_file": certFile, "key_file": keyFile}}},
		{"sinks", "wh-a", "webhook", map[string]any{"url": rec401.URL + "/in?api_key=" + webhookQuery, "secret": whsec("webhook-secret"),
			"headers": map[string]any{"X-Api-Key": whHeader}, "bearer_token": whBearer, "timeout": "2s"}},
		{"sinks", "wh-tls", "webhook", map[string]any{"url": untrusted.URL, "bearer_token": marker("webhook-tls-bearer"), "timeout": "2s",
			"tls": map[string]any{"cert_file": certFile, "key_file": keyFile}}},
		{"sinks", "wh-b", "webhook", map[string]any{"url": rec500.URL, "secret_file": secretFile("whsec", whsec("webhook-secret-file")),
			"bearer_token_file": secretFile("bearer", marker("webhook-bearer-file")), "timeout": "2s"}},
		{"sinks", "wh-c", "webhook", map[string]any{"url": rec401.URL, "username": "bridge", "password": whPassword, "timeout": "2s"}},
		{"sinks", "wh-d", "webhook", map[string]any{"url": rec500.URL, "username": "bridge", "password_file": secretFile("wh-pw", whPasswordFile), "timeout": "2s"}},
	}

	// Every secret-bearing key found by reflection must be planted above.
	planted := map[string]bool{}
	var plantKeys func(prefix string, m map[string]any)
	plantKeys = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && k == "tls" {
				plantKeys(prefix+k+".", sub)
				continue
			}
			planted[prefix+k] = true
		}
	}
	for _, in := range instances {
		plantKeys(in.section+"."+in.typ+".", in.keys)
	}
	for _, key := range secretBearingKeys(t) {
		parts := strings.SplitN(key, ".", 3) // section, type, key
		sub := parts[len(parts)-1]
		if !planted[key] && !slices.Contains(publicFileKeys, sub) {
			t.Errorf("secret-bearing key %s is planted nowhere in this test: add an instance that sets it", key)
		}
	}

	doc := map[string]any{
		"state": map[string]any{"path": filepath.Join(work, "state", "mdbridge.db")},
		"admin": map[string]any{"listen": "127.0.0.1:0"},
		"log":   map[string]any{"level": "debug"},
	}
	for _, in := range instances {
		sec, _ := doc[in.section].(map[string]any)
		if sec == nil {
			sec = map[string]any{}
			doc[in.section] = sec
		}
		body := map[string]any{"type": in.typ}
		for k, v := range in.keys {
			body[k] = v
		}
		sec[in.name] = body
	}
	b, err := json.MarshalIndent(doc, "", "  ") // YAML is a superset of JSON
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mdbridge.yaml")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var shown []struct{ what, text string } // everything a user or operator can see
	show := func(what, text string) { shown = append(shown, struct{ what, text string }{what, text}) }

	// validate, good: exit 0 and the resolved config.
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"validate", "-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("validate exited %d:\n%s%s", code, &out, &errb)
	}
	show("validate stdout", out.String())
	show("validate stderr", errb.String())

	// validate and run, broken: the same secrets beside a few mistakes.
	bad := map[string]any{}
	_ = json.Unmarshal(b, &bad)
	srcs := bad["sources"].(map[string]any)
	srcs["ot-inline"].(map[string]any)["page_limit"] = 0
	srcs["mdss-pw"].(map[string]any)["api_key"] = marker("mdss-api-key-beside-password")
	snks := bad["sinks"].(map[string]any)
	delete(snks["wh-c"].(map[string]any), "username")
	snks["nats-token"].(map[string]any)["token_file"] = filepath.Join(secrets, "nats-token")
	snks["wh-tls"].(map[string]any)["tls"].(map[string]any)["cert_file"] = filepath.Join(secrets, "no-such-cert.pem")
	bb, _ := json.Marshal(bad)
	badCfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badCfg, bb, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "run"} {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), []string{cmd, "-c", badCfg}, &out, &errb); code == 0 {
			t.Fatalf("%s of the broken config exited 0", cmd)
		}
		if !strings.Contains(errb.String(), "page_limit") {
			t.Errorf("%s of the broken config does not report page_limit:\n%s", cmd, &errb)
		}
		show(cmd+" (broken config) stdout", out.String())
		show(cmd+" (broken config) stderr", errb.String())
	}

	// run: every source and sink fails somewhere.
	br := startInProcess(t, cfg)
	hookClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: trustPool(t, certFile)}}
	post := func(url, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(
			`{"FileId":"f-`+fmt.Sprint(time.Now().UnixNano())+`","FileName":"a.exe","FilePath":"in/a.exe","FileStatus":"Blocked",`+
				`"CoreScanResult":"Infected","FileState":"Available","RemediationResult":["BlockedMoved: Applied"],`+
				`"ScanCompletedTimeStamp":"2026-11-23T10:20:24.97499Z","WorkflowName":"Default Workflow","Rules":["r"],`+
				`"ExceptionDetails":"","RemediationErrors":[],"WebhookNotificationType":"FileScanned"}`))
		req.Header.Set("Authorization", auth)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := hookClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %v", url, err)
			}
		}
	}
	for _, p := range []struct {
		url, auth string
		want      int
	}{
		{"http://" + hookInline + "/mdss/webhook", "Bearer " + hookSecret + "-but-longer", http.StatusUnauthorized},
		{"http://" + hookInline + "/mdss/webhook", hookSecret, http.StatusUnauthorized},
		{"http://" + hookInline + "/mdss/webhook", "Bearer " + hookSecret, http.StatusOK},
		{"https://" + hookFile + "/mdss/webhook", "Bearer " + hookSecretFile + "x", http.StatusUnauthorized},
		{"https://" + hookFile + "/mdss/webhook", "Bearer " + hookSecretFile, http.StatusOK},
	} {
		if got := post(p.url, p.auth); got != p.want {
			t.Errorf("POST %s: HTTP %d, want %d", p.url, got, p.want)
		}
	}

	var status, metrics string
	waitFor(t, br, 60*time.Second, "every source and sink to fail", func() (bool, string) {
		st := br.status(t)
		var missing []string
		for _, name := range []string{"ot-inline", "ot-file", "mdss-key", "mdss-keyfile", "mdss-pw", "mdss-pwfile"} {
			failed := false
			for _, s := range st.Streams {
				failed = failed || (strings.HasPrefix(s.ID, name+"/") || strings.Contains(s.ID, name)) && s.Errors > 0
			}
			if !failed {
				missing = append(missing, name)
			}
		}
		for _, s := range st.Sinks {
			if s.Name != "archive" && s.Retries == 0 && s.DeadLettered == 0 {
				missing = append(missing, s.Name)
			}
		}
		if rec401.count() < 2 || rec500.count() < 2 {
			missing = append(missing, "webhook receivers")
		}
		if len(missing) > 0 {
			return false, "not failing yet: " + strings.Join(missing, ", ")
		}
		status = httpGet(t, "http://"+br.admin+"/status")
		metrics = httpGet(t, "http://"+br.admin+"/metrics")
		return true, ""
	})
	for _, p := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		show(p, httpGet(t, "http://"+br.admin+p))
	}
	br.stop(t)
	show("/status", status)
	show("/metrics", metrics)
	show("run log", br.logText())
	if p := os.Getenv("MDBTEST_SECURITY_LOG"); p != "" { // to read what the run logged
		_ = os.WriteFile(p, []byte(br.logText()), 0o600)
	}

	// The planted credentials went on the wire, so the run used them.
	for _, want := range []string{"X-Api-Key: " + whHeader, "Authorization: Bearer " + whBearer, "api_key=" + webhookQuery} {
		if !strings.Contains(rec401.seen(), want) {
			t.Errorf("the 401 receiver never saw %q", want)
		}
	}
	if !strings.Contains(br.logText(), "Authorization Violation") && !strings.Contains(strings.ToLower(br.logText()), "authorization violation") {
		t.Errorf("the log shows no NATS authorization failure")
	}

	// Every file the bridge wrote: journal, dead-letter files, output.
	_ = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			show("file "+p, string(b))
		}
		return nil
	})

	sort.Strings(needles)
	needles = slices.Compact(needles)
	for _, s := range shown {
		if s.text == "" {
			continue
		}
		for _, n := range needles {
			if i := strings.Index(s.text, n); i >= 0 {
				t.Errorf("%s shows the secret %q: ...%s...", s.what, n, s.text[max(0, i-200):min(len(s.text), i+len(n)+100)])
			}
		}
	}
	t.Logf("%d secrets planted, %d texts scanned (%d bytes of logs)", len(needles), len(shown), len(br.logText()))
}

// echoReceiver is a webhook endpoint that always answers code, quoting the
// request's URL and headers in its body, as a careless receiver might:
// the sink must not pass that on.
type echoReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newEchoReceiver(t *testing.T, code int) *echoReceiver {
	t.Helper()
	r := &echoReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s %s\n", req.Method, req.URL.RequestURI())
		for k, vs := range req.Header {
			for _, v := range vs {
				fmt.Fprintf(&sb, "%s: %s\n", k, v)
			}
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, sb.String())
		r.mu.Unlock()
		http.Error(w, "refused: "+sb.String(), code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *echoReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// seen is every request the receiver got.
func (r *echoReceiver) seen() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.reqs, "\n")
}

// trustPool is a client TLS config that trusts only the certificate in
// certFile.
func trustPool(t *testing.T, certFile string) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", certFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// writeCertPair writes a self-signed certificate for 127.0.0.1 (usable by
// a server and as a client certificate) and its key, and returns their
// paths and a line of the key's PEM body, which must never be shown.
func writeCertPair(t *testing.T, dir string) (certFile, keyFile, keyLine string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mdbridge-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kpem := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kpem, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, strings.Split(string(kpem), "\n")[1]
}
