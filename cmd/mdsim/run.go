package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

var defaultStreams = []string{
	otsectest.StreamDeviceAlerts, otsectest.StreamConnAlerts,
	otsectest.StreamSuricataAlerts, otsectest.StreamDevices,
}

// config is the parsed command line.
type config struct {
	listen      string
	allowRemote bool
	token       string
	sites       int
	sensors     int
	backlog     int
	streams     []string
	rate        float64
	shape       string
	timeFormat  string
	seed        int64
	useTLS      bool
	caFile      string
	maxRequests int
	faults      otsectest.Faults
	mdss        mdssConfig
}

// mdssConfig is the command line of the MDSS fake, served beside the OT one
// when -mdss-listen is set.
type mdssConfig struct {
	listen      string
	backlog     int
	rate        float64
	opts        mdsstest.Options
	user        string
	password    string
	webhookHdrs headerFlag
}

// headerFlag collects repeated "Name: value" flags.
type headerFlag map[string]string

func (h *headerFlag) String() string {
	var parts []string
	for k, v := range *h {
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, ", ")
}

func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if k = strings.TrimSpace(k); !ok || k == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	(*h)[k] = strings.TrimSpace(val)
	return nil
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("mdsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:3003", "address to listen on (host:port; a loopback host unless -allow-remote)")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a listen address that is not loopback")
	fs.StringVar(&c.token, "token", "demo-token", "bearer token the simulator accepts")
	fs.IntVar(&c.sites, "sites", 1, "number of sites (1-84): 10.40.172.144, 10.40.173.144, ...")
	fs.IntVar(&c.sensors, "sensors", 1, "sensors per site (1-84): 10.40.<site>.172, .173, ...")
	fs.IntVar(&c.backlog, "backlog", 1000, "records created at start per stream and sensor")
	streams := fs.String("streams", strings.Join(defaultStreams, ","), "comma-separated streams to fill and feed (also cves, patch_requests)")
	fs.Float64Var(&c.rate, "rate", 5, "live records per second, over all streams and sensors (0: none)")
	fs.StringVar(&c.shape, "shape", "object", "list shape: object, array or list")
	fs.StringVar(&c.timeFormat, "time-format", "rfc3339", "time format: rfc3339, epoch_ms or epoch_s")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the record generator")
	fs.BoolVar(&c.useTLS, "tls", false, "serve HTTPS with a self-signed certificate")
	fs.StringVar(&c.caFile, "ca-file", "", "with -tls: where to write the certificate PEM (default: a new temporary directory)")
	fs.IntVar(&c.maxRequests, "max-requests", 10000, "requests kept in the in-memory request log")
	fs.DurationVar(&c.faults.Latency, "latency", 0, "latency added to every answer")
	fs.Float64Var(&c.faults.Status5xx, "p5xx", 0, "probability of a 503 with a text body")
	fs.Float64Var(&c.faults.HTML, "phtml", 0, "probability of an nginx HTML 502")
	fs.Float64Var(&c.faults.HTMLOK, "phtmlok", 0, "probability of an HTML 200 (captive portal)")
	fs.Float64Var(&c.faults.Truncate, "ptruncate", 0, "probability of a body cut in half")
	fs.Float64Var(&c.faults.ErrorTrue, "perror", 0, `probability of HTTP 200 with "error":true`)
	fs.Float64Var(&c.faults.Hang, "phang", 0, "probability of never answering")
	m := &c.mdss
	fs.StringVar(&m.listen, "mdss-listen", "", "also serve a fake MetaDefender Storage Security here (host:port; off when empty). -latency, -p5xx, -phtml, -ptruncate and -phang apply to it too")
	fs.StringVar(&m.opts.APIKey, "mdss-api-key", "demo-api-key", "MDSS: API key accepted in the ApiKey header (empty: none)")
	fs.StringVar(&m.user, "mdss-user", "admin", "MDSS: user name for /api/user/authenticate (empty: none)")
	fs.StringVar(&m.password, "mdss-password", "demo-password", "MDSS: that user's password")
	fs.IntVar(&m.backlog, "mdss-backlog", 100, "MDSS: finished scans created at start, over the last 24 hours")
	fs.Float64Var(&m.rate, "mdss-rate", 0.1, "MDSS: scans started per second (0: none)")
	fs.IntVar(&m.opts.FilesPerScan, "mdss-files", 12, "MDSS: mean number of files per scan")
	fs.Float64Var(&m.opts.ThreatRate, "mdss-threat-rate", 0.15, "MDSS: probability that a file is a threat")
	fs.DurationVar(&m.opts.MaxScanDuration, "mdss-max-duration", time.Minute, "MDSS: longest a live scan runs")
	fs.DurationVar(&m.opts.AccessTTL, "mdss-access-ttl", time.Hour, "MDSS: access token lifetime")
	fs.DurationVar(&m.opts.RefreshTTL, "mdss-refresh-ttl", time.Hour, "MDSS: refresh token lifetime")
	fs.StringVar(&m.opts.ListShape, "mdss-shape", "object", "MDSS: list shape: object or array")
	fs.BoolVar(&m.opts.EnumsAsNames, "mdss-enum-names", false, "MDSS: file enums (processingState, result, remediations) as names")
	fs.BoolVar(&m.opts.ScanStatusAsInt, "mdss-status-int", false, "MDSS: scan status as an integer")
	fs.StringVar(&m.opts.WebhookURL, "mdss-webhook", "", "MDSS: URL that gets FileScanned and ScanCompleted notifications (a loopback host unless -allow-remote)")
	fs.Var(&m.webhookHdrs, "mdss-webhook-header", `MDSS: "Name: value" header sent with every notification (repeatable)`)
	fs.StringVar(&m.opts.WebhookFileFilter, "mdss-webhook-filter", "all", "MDSS: files notified: all or blocked")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(out, "usage: mdsim [flags]")
			fs.SetOutput(out)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if c.sites < 1 || c.sites > 84 {
		errs = append(errs, errors.New("-sites must be 1 to 84"))
	}
	if c.sensors < 1 || c.sensors > 84 {
		errs = append(errs, errors.New("-sensors must be 1 to 84"))
	}
	if c.backlog < 0 {
		errs = append(errs, errors.New("-backlog must not be negative"))
	}
	if c.rate < 0 {
		errs = append(errs, errors.New("-rate must not be negative"))
	}
	if c.token == "" {
		errs = append(errs, errors.New("-token must not be empty"))
	}
	for _, s := range strings.Split(*streams, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.streams = append(c.streams, s)
		}
	}
	if len(c.streams) == 0 {
		errs = append(errs, errors.New("-streams must name at least one stream"))
	}
	for name, p := range map[string]float64{"p5xx": c.faults.Status5xx, "phtml": c.faults.HTML, "phtmlok": c.faults.HTMLOK,
		"ptruncate": c.faults.Truncate, "perror": c.faults.ErrorTrue, "phang": c.faults.Hang} {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("-%s must be between 0 and 1", name))
		}
	}
	if c.faults.Latency < 0 {
		errs = append(errs, errors.New("-latency must not be negative"))
	}
	if err := checkListen(c.listen, c.allowRemote); err != nil {
		errs = append(errs, err)
	}
	if m.listen != "" {
		errs = append(errs, m.check(c.allowRemote)...)
	}
	return c, errors.Join(errs...)
}

// check completes and checks the MDSS options.
func (m *mdssConfig) check(allowRemote bool) []error {
	var errs []error
	if err := checkListen(m.listen, allowRemote); err != nil {
		errs = append(errs, fmt.Errorf("-mdss-listen: %w", err))
	}
	if m.backlog < 0 || m.rate < 0 || m.opts.FilesPerScan < 1 || m.opts.MaxScanDuration <= 0 ||
		m.opts.AccessTTL <= 0 || m.opts.RefreshTTL <= 0 || m.opts.ThreatRate < 0 {
		errs = append(errs, errors.New("-mdss-backlog, -mdss-rate and -mdss-threat-rate must not be negative; -mdss-files, -mdss-max-duration and the TTLs must be positive"))
	}
	if m.opts.ThreatRate == 0 {
		m.opts.ThreatRate = -1 // none; the zero value means the default
	}
	m.opts.Users = map[string]string{}
	if m.user != "" {
		if m.password == "" {
			errs = append(errs, errors.New("-mdss-password must not be empty"))
		}
		m.opts.Users[m.user] = m.password
	}
	if m.opts.APIKey == "" && m.user == "" {
		errs = append(errs, errors.New("-mdss-api-key and -mdss-user are both empty: nobody could log in"))
	}
	m.opts.WebhookHeaders = m.webhookHdrs
	if w := m.opts.WebhookURL; w != "" && !allowRemote {
		if u, err := url.Parse(w); err == nil && u.Host != "" {
			if err := checkListen(hostPort(u), false); err != nil {
				errs = append(errs, fmt.Errorf("-mdss-webhook %q is not a loopback URL; pass -allow-remote to send elsewhere", w))
			}
		}
	}
	m.opts.Seed = 1
	m.opts.MaxRequests = 10000
	if err := m.opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// hostPort is u's host with a port, so that checkListen can read it.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// checkListen refuses a listen address whose host is not loopback, unless
// allowed.
func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-listen %q is not a loopback address; pass -allow-remote to serve other hosts", addr)
}

// sites lays out n sites with m sensors each: site k (1-based) is
// 10.40.(171+k).144 and its sensors 10.40.(171+k).(171+j), so that site 1 is
// the vendor document's example.
func sites(n, m int) []otsectest.Site {
	out := make([]otsectest.Site, n)
	for k := range n {
		oct := 172 + k
		out[k].SiteIP = fmt.Sprintf("10.40.%d.144", oct)
		for j := range m {
			out[k].SensorIPs = append(out[k].SensorIPs, fmt.Sprintf("10.40.%d.%d", oct, 172+j))
		}
	}
	return out
}

// run parses args, serves until ctx ends, and reports on stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	opts := otsectest.Options{
		Token:       c.token,
		Sites:       sites(c.sites, c.sensors),
		ListShape:   c.shape,
		TimeFormat:  c.timeFormat,
		Seed:        c.seed,
		Start:       now.Add(-time.Duration(c.backlog) * 500 * time.Millisecond), // steps average 500.5 ms
		Streams:     c.streams,
		MaxRequests: c.maxRequests,
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	srv := otsectest.NewUnstartedHandler(opts)
	defer srv.Close()

	began := time.Now()
	fill(srv, opts.Sites, c.streams, c.backlog)
	filled := time.Since(began)
	srv.SetFaults(c.faults)

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	var mln net.Listener
	if c.mdss.listen != "" {
		if mln, err = net.Listen("tcp", c.mdss.listen); err != nil {
			ln.Close()
			return err
		}
	}
	scheme, caNote := "http", ""
	if c.useTLS {
		addrs := []net.Addr{ln.Addr()}
		if mln != nil {
			addrs = append(addrs, mln.Addr())
		}
		cert, path, err := selfSigned(c.caFile, addrs...)
		if err != nil {
			ln.Close()
			if mln != nil {
				mln.Close()
			}
			return err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, cfg)
		if mln != nil {
			mln = tls.NewListener(mln, cfg)
		}
		scheme, caNote = "https", " ca="+path
	}
	stopMDSS := func() {}
	if mln != nil {
		stopMDSS = serveMDSS(c, mln, scheme, caNote, stdout)
		defer stopMDSS()
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	stopGen := srv.StartGenerator(c.rate)
	defer stopGen()

	fmt.Fprintf(stdout, "mdsim: serving %s://%s token=%s sites=%d sensors=%d streams=%s backlog=%d (%d records in %v) rate=%g/s shape=%s time-format=%s%s\n",
		scheme, ln.Addr(), c.token, c.sites, c.sensors, strings.Join(c.streams, ","), c.backlog,
		c.backlog*len(c.streams)*c.sites*c.sensors, filled.Round(time.Millisecond), c.rate, c.shape, c.timeFormat, caNote)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return err
	}
	stopGen()
	srv.Close() // releases hanging and delayed requests
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	stopMDSS()
	fmt.Fprintln(stdout, "mdsim: stopped")
	return nil
}

// serveMDSS serves the MDSS fake on ln, with its backlog and generator,
// until the returned function is called.
func serveMDSS(c *config, ln net.Listener, scheme, caNote string, stdout io.Writer) (stop func()) {
	m := &c.mdss
	srv := mdsstest.NewUnstartedHandler(m.opts)
	srv.Backfill(m.backlog, 24*time.Hour)
	files := 0
	for _, sc := range srv.Scans() {
		files += sc.TotalFiles
	}
	srv.SetFaults(mdsstest.Faults{Latency: c.faults.Latency, Status5xx: c.faults.Status5xx, HTML: c.faults.HTML,
		Truncate: c.faults.Truncate, Hang: c.faults.Hang})
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown or Close below
	stopGen := srv.StartGenerator(m.rate)
	key, user := m.opts.APIKey, m.user
	fmt.Fprintf(stdout, "mdsim: mdss serving %s://%s api-key=%s user=%s password=%s backlog=%d (%d files) rate=%g/s shape=%s webhook=%s%s\n",
		scheme, ln.Addr(), orNone(key), orNone(user), orNone(m.password), m.backlog, files, m.rate, m.opts.ListShape, orNone(m.opts.WebhookURL), caNote)
	var once sync.Once
	return func() {
		once.Do(func() {
			stopGen()
			srv.Close() // releases hanging and delayed requests
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		})
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fill creates the backlog, one stream of one sensor per worker at a time.
func fill(srv *otsectest.Server, ss []otsectest.Site, streams []string, n int) {
	if n == 0 {
		return
	}
	type job struct{ stream, site, sensor string }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				srv.Add(j.stream, j.site, j.sensor, n)
			}
		}()
	}
	for _, st := range streams {
		for _, s := range ss {
			for _, sensor := range s.SensorIPs {
				jobs <- job{st, s.SiteIP, sensor}
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// selfSigned makes a self-signed certificate for the listen addresses (and
// localhost) and writes its PEM, which is also the CA to trust, to caFile or
// to a new temporary directory.
func selfSigned(caFile string, addrs ...net.Addr) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mdsim", Organization: []string{"mdbridge simulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, addr := range addrs {
		if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ta.IP)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if caFile == "" {
		dir, err := os.MkdirTemp("", "mdsim-tls-")
		if err != nil {
			return tls.Certificate{}, "", err
		}
		caFile = filepath.Join(dir, "ca.pem")
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile, nil
}
