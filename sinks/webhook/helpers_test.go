package webhook

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test secrets: whsec_ + base64 of 32 bytes.
var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// testEvent returns a realistic OT Security device alert of about 1.2 KB.
func testEvent(seq uint64) *pipeline.Event {
	t := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	started := t.Add(-time.Minute)
	stream := "plant-a/10.20.0.1/10.20.0.17/device_alerts"
	key := "alert-" + strconv.FormatUint(seq, 10)
	return &pipeline.Event{
		ID:            pipeline.EventID(stream, pipeline.KindDeviceAlert, key, 0),
		Schema:        pipeline.Schema,
		Kind:          pipeline.KindDeviceAlert,
		Seq:           seq,
		Time:          t,
		Observed:      t.Add(2 * time.Second),
		Severity:      pipeline.SeverityHigh,
		SeverityScore: 73,
		Message:       "Unauthorized Modbus write to PLC-17 (holding register 40001) from engineering workstation",
		Source: pipeline.Source{
			Product: pipeline.ProductOTSecurity, Instance: "plant-a", Stream: stream,
			SiteIP: "10.20.0.1", SensorIP: "10.20.0.17", URL: "https://ot.plant-a.example:3003",
		},
		Alert: &pipeline.Alert{
			ID: key, Type: "device", Name: "Unauthorized Modbus write", Status: "new",
			Started: &started, Reason: "write function code 6 outside maintenance window",
		},
		Device: &pipeline.Device{
			ID: "dev-17", Name: "PLC-17", IP: "10.20.1.17", MAC: "00:1d:9c:c7:b0:11", Vendor: "Rockwell Automation",
			Model: "1756-L83E ControlLogix", Type: "PLC", Firmware: "33.011", PurdueLevel: "1", Site: "plant-a",
		},
		Network: &pipeline.Network{
			SrcIP: "10.20.2.40", SrcPort: 51234, DstIP: "10.20.1.17", DstPort: 502,
			Protocol: "modbus", Transport: "tcp",
		},
		Raw: json.RawMessage(`{"alertId":"` + key + `","alertType":"DEVICE","deviceId":"dev-17","status":"NEW",` +
			`"protocol":"MODBUS","functionCode":6,"register":40001,"value":1337,"zone":"cell-3","operator":"none"}`),
	}
}

// entries returns n journal entries with seq start, start+1, ...
func entries(t testing.TB, start uint64, n int) []pipeline.Entry {
	t.Helper()
	out := make([]pipeline.Entry, n)
	for i := range out {
		seq := start + uint64(i)
		b, err := pipeline.MarshalEvent(testEvent(seq))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = pipeline.Entry{Seq: seq, Data: b}
	}
	return out
}

// request is one request as the receiver saw it.
type request struct {
	header http.Header
	raw    []byte // the body on the wire
	body   []byte // the body with Content-Encoding undone
	proto  int    // HTTP major version
	peerCN string // the client certificate's common name, if any
	url    string
}

// reply is what the receiver answers.
type reply struct {
	status int
	header map[string]string
	body   string
}

// receiver is a real HTTP server on loopback that records every request.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []request
	respond func(r *request, n int) reply // n counts requests from 0
}

// newReceiver starts an HTTP server; respond may be nil (always 204).
func newReceiver(t *testing.T, respond func(r *request, n int) reply) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := request{header: r.Header.Clone(), raw: raw, body: raw, proto: r.ProtoMajor, url: r.URL.String()}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.body, err = io.ReadAll(zr); err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.peerCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, req)
	respond := rc.respond
	rc.mu.Unlock()
	rep := reply{status: http.StatusNoContent}
	if respond != nil {
		rep = respond(&req, n)
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// config returns a valid config posting to the receiver.
func (rc *receiver) config() Config {
	cfg := DefaultConfig()
	cfg.URL = rc.srv.URL + "/hook"
	return cfg
}

func mustNew(t *testing.T, cfg Config, log *zap.Logger) *Sink {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// decodeEvents reads a body of encoding back into the events' JSON.
func decodeEvents(t *testing.T, encoding string, body []byte) [][]byte {
	t.Helper()
	var out [][]byte
	switch encoding {
	case EncodingJSONArray:
		var arr []json.RawMessage
		if err := json.Unmarshal(body, &arr); err != nil {
			t.Fatalf("body is not a JSON array: %v", err)
		}
		for _, e := range arr {
			out = append(out, []byte(e))
		}
	case EncodingNDJSON:
		if len(body) == 0 || body[len(body)-1] != '\n' {
			t.Fatalf("ndjson body does not end with a newline")
		}
		for _, line := range bytes.Split(body[:len(body)-1], []byte("\n")) {
			if !json.Valid(line) {
				t.Fatalf("ndjson line is not JSON: %.80s", line)
			}
			out = append(out, line)
		}
	default:
		t.Fatalf("unknown encoding %q", encoding)
	}
	return out
}

// eventSeqs returns the journal seq of each entry.
func eventSeqs(es []pipeline.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// verifyStandardWebhook checks a request the way a receiver following the
// Standard Webhooks spec would, independently of the sink's code: the three
// headers are present, webhook-timestamp is within tolerance of now, and
// one of the space-separated "v1,<base64>" signatures equals
// HMAC-SHA256(key, id + "." + timestamp + "." + body), compared in constant
// time, where key is the base64-decoded part of secret after "whsec_".
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id := h.Get("webhook-id")
	tsText := h.Get("webhook-timestamp")
	sigs := h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("bad webhook-timestamp: %w", err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %d is %s away from now", ts, d)
	}
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return errors.New("secret lacks whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + tsText + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Split(sigs, " ") {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// pki is a throwaway certificate authority with a server and a client
// certificate, written as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	caPool                                               *x509.CertPool
	server                                               tls.Certificate
}

func newPKI(t *testing.T, clientCN string) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mdbridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, server bool) (certFile, keyFile string, pair tls.Certificate) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
		pair, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, pair
	}
	p.serverCert, p.serverKey, p.server = leaf("server", 2, x509.ExtKeyUsageServerAuth, true)
	p.clientCert, p.clientKey, _ = leaf(clientCN, 3, x509.ExtKeyUsageClientAuth, false)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTLSReceiver starts an HTTPS server (HTTP/2 enabled) with p's server
// certificate; clientAuth sets whether it demands a client certificate.
func newTLSReceiver(t *testing.T, p *pki, clientAuth tls.ClientAuthType) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewUnstartedServer(rc)
	rc.srv.EnableHTTP2 = true
	rc.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: clientAuth, ClientCAs: p.caPool}
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected

	rc.srv.StartTLS()
	t.Cleanup(rc.srv.Close)
	return rc
}

// deliver calls Deliver with a bounded context.
func deliver(t *testing.T, s *Sink, batch []pipeline.Entry) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Deliver(ctx, batch)
}
