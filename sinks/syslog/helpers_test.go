package syslog

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// baseTime is the time of the first test event; it has microseconds and a
// sub-microsecond part that RFC 5424's six digits cut off.
var baseTime = time.Date(2026, 3, 7, 9, 5, 4, 123456789, time.UTC)

// testEvent returns a realistic OT Security device alert (about 1.2 KB of
// JSON with its raw record) with the given seq.
func testEvent(seq uint64) *pipeline.Event {
	cvss := 7.5
	started := baseTime.Add(time.Duration(seq) * time.Second)
	return &pipeline.Event{
		ID:            pipeline.EventID("plant-a/10.40.172.144/10.40.172.172/device_alerts", pipeline.KindDeviceAlert, fmt.Sprint(seq), 0),
		Schema:        pipeline.Schema,
		Kind:          pipeline.KindDeviceAlert,
		Seq:           seq,
		Time:          started,
		Observed:      started.Add(3 * time.Second),
		Severity:      pipeline.SeverityHigh,
		SeverityScore: 7,
		Message:       "Unauthorized Modbus write to PLC-7 holding register 40001 from engineering workstation",
		Source: pipeline.Source{Product: pipeline.ProductOTSecurity, Instance: "plant-a", Stream: "device_alerts",
			SiteIP: "10.40.172.144", SensorIP: "10.40.172.172", URL: "https://10.0.0.5:3003"},
		Alert: &pipeline.Alert{ID: fmt.Sprintf("al-%06d", seq), Type: "device", Name: "Unauthorized write",
			Status: "new", Started: &started, Reason: "write function code 16 outside maintenance window"},
		Device: &pipeline.Device{ID: "dev-0042", Name: "PLC-7", IP: "10.40.172.17", MAC: "00:1d:9c:c7:b0:42",
			Vendor: "Rockwell Automation", Model: "ControlLogix 5580", Type: "PLC", Firmware: "33.011",
			PurdueLevel: "1", Site: "plant-a"},
		Network: &pipeline.Network{SrcIP: "10.40.172.50", SrcPort: 50522, DstIP: "10.40.172.17", DstPort: 502,
			Protocol: "modbus", Transport: "tcp"},
		Vulnerability: &pipeline.Vulnerability{CVE: "CVE-2022-1161", CVSS: &cvss},
		Raw: []byte(`{"id":"` + fmt.Sprintf("al-%06d", seq) + `","alertType":"device","criticality":"High",` +
			`"alertStarted":"2026-03-07T09:05:04Z","deviceName":"PLC-7","deviceIp":"10.40.172.17",` +
			`"description":"Unauthorized Modbus write to holding register 40001","siteIp":"10.40.172.144",` +
			`"sensorIp":"10.40.172.172","acknowledged":false,"tags":["modbus","write","plc"]}`),
	}
}

func marshal(t testing.TB, e *pipeline.Event) []byte {
	t.Helper()
	b, err := pipeline.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entriesOf marshals events into journal entries, seq from the events.
func entriesOf(t testing.TB, events ...*pipeline.Event) []pipeline.Entry {
	out := make([]pipeline.Entry, len(events))
	for i, e := range events {
		out[i] = pipeline.Entry{Seq: e.Seq, Data: marshal(t, e)}
	}
	return out
}

// seqEvents returns n realistic events with seq from..from+n-1.
func seqEvents(from uint64, n int) []*pipeline.Event {
	out := make([]*pipeline.Event, n)
	for i := range out {
		out[i] = testEvent(from + uint64(i))
	}
	return out
}

// streamReceiver accepts connections on a loopback TCP (or TLS) listener
// and keeps each connection's bytes.
type streamReceiver struct {
	ln    net.Listener
	tcp   *net.TCPListener // under ln, for the accept deadline in wait
	mu    sync.Mutex
	conns [][]byte
	wg    sync.WaitGroup
	live  []net.Conn
}

func newStreamReceiver(t *testing.T, tlsConf *tls.Config) *streamReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startStreamReceiver(t, ln, tlsConf)
}

// startStreamReceiver accepts on the TCP listener ln, through TLS when
// tlsConf is not nil, until stop or wait.
func startStreamReceiver(t *testing.T, ln net.Listener, tlsConf *tls.Config) *streamReceiver {
	t.Helper()
	r := &streamReceiver{ln: ln, tcp: ln.(*net.TCPListener)}
	if tlsConf != nil {
		r.ln = tls.NewListener(ln, tlsConf)
	}
	r.wg.Add(1)
	go r.acceptLoop()
	t.Cleanup(r.stop)
	return r
}

// acceptLoop accepts connections and reads each to its end.
func (r *streamReceiver) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		i := len(r.conns)
		r.conns = append(r.conns, nil)
		r.live = append(r.live, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			b, _ := io.ReadAll(c)
			_ = c.Close()
			r.mu.Lock()
			r.conns[i] = b
			r.mu.Unlock()
		}()
	}
}

// count is how many connections were accepted.
func (r *streamReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// closeLive half-closes the accepted connections (FIN to the sender), as a
// receiver shutting down does; unlike a full close it cannot discard bytes
// not read yet, so what was sent before is still counted.
func (r *streamReceiver) closeLive() {
	r.mu.Lock()
	live := r.live
	r.mu.Unlock()
	for _, c := range live {
		_ = c.(interface{ CloseWrite() error }).CloseWrite()
	}
}

func (r *streamReceiver) addr() string { return r.ln.Addr().String() }

// stop closes the listener and every connection and waits for the readers.
func (r *streamReceiver) stop() {
	_ = r.ln.Close()
	r.mu.Lock()
	for _, c := range r.live {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// wait waits until every connection was closed by the sender (after the
// sink's Close) and returns all bytes received, in order. A connection the
// kernel completed but acceptLoop has not taken yet would be dropped by
// closing the listener, so the loop first gets half a second to accept
// what is queued (a busy machine can delay it that long).
func (r *streamReceiver) wait(t *testing.T) []byte {
	t.Helper()
	_ = r.tcp.SetDeadline(time.Now().Add(500 * time.Millisecond))
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("receiver connections not closed by the sink")
	}
	_ = r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Join(r.conns, nil)
}

// udpReceiver reads datagrams on a loopback UDP socket.
type udpReceiver struct {
	pc net.PacketConn
}

func newUDPReceiver(t *testing.T) *udpReceiver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &udpReceiver{pc: pc}
}

func (u *udpReceiver) addr() string { return u.pc.LocalAddr().String() }

// read returns n datagrams, failing after a timeout.
func (u *udpReceiver) read(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 70000)
	_ = u.pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(out) < n {
		k, _, err := u.pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(out), n, err)
		}
		out = append(out, bytes.Clone(buf[:k]))
	}
	return out
}

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost,
// written as PEM files in a temp dir.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mdbridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
	}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "EC PRIVATE KEY", keyDER)
	if p.server, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverTLS is a server config; with clientCA it demands a client
// certificate signed by the test CA (mTLS).
func (p *testPKI) serverTLS(t testing.TB, clientCA bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientCA {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(p.caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(b)
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// mustNew builds a sink and closes it at cleanup.
func mustNew(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testConfig is the default config for address, with a fixed hostname.
func testConfig(address string) Config {
	c := DefaultConfig()
	c.Address = address
	c.Hostname = "bridge-1"
	return c
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strings.ToValidUTF8(s, "?")
}
