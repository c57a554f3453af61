package mdsstest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Credentials a zero Options accepts.
const (
	// DefaultAPIKey is the API key accepted when Options sets neither
	// APIKey nor Users.
	DefaultAPIKey = "test-api-key"
	// DefaultUser and DefaultPassword are the user accepted when Options
	// sets neither APIKey nor Users.
	DefaultUser     = "admin"
	DefaultPassword = "admin-password"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// APIKey is the key accepted in the ApiKey header; "" accepts none.
	// When both APIKey and Users are unset, DefaultAPIKey is accepted and
	// DefaultUser can log in with DefaultPassword.
	APIKey string
	// Users maps user names to passwords for POST /api/user/authenticate.
	// User names match case-insensitively (ASP.NET Identity normalises
	// them); passwords exactly.
	Users map[string]string
	// AccessTTL is the life of an access token; default 60 minutes, as the
	// vendor document says.
	AccessTTL time.Duration
	// RefreshTTL is the life of a refresh token from its issue; default 60
	// minutes. A refresh issues a new one that lives RefreshTTL from then.
	RefreshTTL time.Duration

	// ListShape is the shape of a list answer: "object" (default)
	// {"items":[...],"total":N} or "array" [...].
	ListShape string
	// ListKey and TotalKey name the object shape's members; default
	// "items" and "total" (the contract's client also reads scans, files,
	// entries, results, data, list, records and totalCount, count).
	ListKey, TotalKey string
	// EnumsAsNames renders a file's processingState, result and
	// remediations as names ("Available", "Blocked", "BlockedMoved")
	// instead of integers, and a scan's status as a name even when
	// ScanStatusAsInt is set.
	EnumsAsNames bool
	// ScanStatusAsInt renders a scan's status as its integer (0 InProgress,
	// 1 Completed, 2 Cancelled, 3 Failed) instead of its name; ignored with
	// EnumsAsNames.
	ScanStatusAsInt bool
	// FlatResult puts scanAllResultI, scanAllResultA and totalAvs at the top
	// level of a file instead of under scanResult.scanResults (the contract
	// reads either).
	FlatResult bool
	// TimeFormat is how REST record times are rendered: "rfc3339" (default;
	// see FormatTime), "epoch_ms" or "epoch_s" (JSON numbers). Token expiry
	// times and webhooks are always RFC 3339.
	TimeFormat string

	// Storages are the storage units scans run on; default three
	// (finance-share, hr-documents, eng-uploads).
	Storages []Storage
	// Seed makes every generated scan, file, id and token repeatable.
	Seed int64
	// Now is the clock; default time.Now. Token expiry, scan progress
	// (Tick) and generated times follow it.
	Now func() time.Time
	// FilesPerScan is the mean number of files a generated scan has
	// (uniform from half to one and a half times it); default 12.
	FilesPerScan int
	// ThreatRate is the probability that a generated file is a threat;
	// default 0.15, negative for none.
	ThreatRate float64
	// MaxScanDuration bounds how long a generated scan runs (uniform from a
	// tenth of it to all of it); default 10 minutes.
	MaxScanDuration time.Duration

	// WebhookURL, when set, receives a FileScanned notification per file
	// and then a ScanCompleted one when a scan finishes.
	WebhookURL string
	// WebhookHeaders are custom headers sent with every notification, as
	// configured in MDSS.
	WebhookHeaders map[string]string
	// WebhookFileFilter chooses the files notified: "all" (default) or
	// "blocked" (Result Blocked only), the two MDSS choices.
	WebhookFileFilter string
	// WebhookMethod is "POST" (default) or "PUT", the two MDSS offers.
	WebhookMethod string
	// WebhookClient sends notifications; default a client with a 10 s
	// timeout.
	WebhookClient *http.Client

	// MaxRequests bounds the request log (Requests) and the webhook log
	// (Webhooks) to about this many most recent entries each; 0 keeps
	// everything. Long-running demos set it.
	MaxRequests int
}

// Faults are failures injected into answers. Each probability (0 to 1) is
// drawn per request from the server's own seeded random source; at most one
// fault applies to a request, tried in the order Hang, Status5xxCount,
// Status5xx, HTML, Huge, Truncate. Hang, Status5xx and HTML happen before
// routing and authentication, as nginx in front of MDSS would fail; Huge
// and Truncate change the answer the API made.
type Faults struct {
	// PathPrefix, when set, limits faults to requests whose path starts
	// with it (case-insensitively), e.g. "/api/scan" to leave
	// authentication alone.
	PathPrefix string
	// Latency is added to every response.
	Latency time.Duration
	// Status5xx is the probability of a 503 with a plain-text body.
	Status5xx float64
	// Status5xxCount makes the next that many requests (that PathPrefix
	// matches) 503s; SetFaults restarts the count.
	Status5xxCount int
	// HTML is the probability of a 502 with nginx's HTML error page.
	HTML float64
	// Huge is the probability that the answer is padded with a string of
	// HugeSize bytes: a valid, enormous JSON body with an honest
	// Content-Length, for a client's body limit.
	Huge float64
	// HugeSize is the padding of Huge; default 64 MiB.
	HugeSize int
	// Truncate is the probability that the body is cut in half: either with
	// a Content-Length that is honest about the cut, or with the full
	// Content-Length and the connection closed mid-body (half of each).
	Truncate float64
	// Hang is the probability that no answer comes: the handler waits until
	// the request's context ends or the server closes.
	Hang float64
}

// Request is one logged request.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the URL path as sent (not case-folded).
	Path string
	// Query is the parsed query string.
	Query url.Values
	// Header is a copy of the request headers.
	Header http.Header
	// Body is the request body (authenticate, refreshToken), nil for none.
	Body []byte
	// Auth is how the request authenticated: "apikey", "bearer", or ""
	// (none, or not needed).
	Auth string
	// Status is the HTTP status answered; 0 when no answer was sent (Hang,
	// or the client left during Latency).
	Status int
	// Fault names the injected fault ("hang", "5xx", "html", "huge",
	// "truncate", "truncate_close"), empty when none was.
	Fault string
}

// Server is a fake MetaDefender Storage Security. It is an http.Handler;
// NewServer and NewTLSServer also run it on a loopback listener. All methods
// are safe for concurrent use, also while requests are served.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port" or "https://...", without
	// a trailing slash; empty for NewUnstartedHandler.
	URL string

	ts         *httptest.Server
	rd         render
	shape      string
	listKey    string
	totalKey   string
	now        func() time.Time
	seed       int64
	storages   []Storage
	filesMean  int
	threatRate float64
	maxDur     time.Duration
	accessTTL  time.Duration
	refreshTTL time.Duration
	users      map[string]string // lower-cased name -> password
	maxReqs    int
	reqCount   atomic.Int64
	done       chan struct{}
	ctx        context.Context // ends at Close, for webhooks
	cancel     context.CancelFunc
	closeOnce  sync.Once
	genWG      sync.WaitGroup
	genN       atomic.Uint64
	wh         webhookConfig

	nAuth, nRefresh, nLogout, nUnauth atomic.Int64

	mu            sync.Mutex // guards the fields below
	apiKey        string
	rejectRefresh bool
	access        map[string]*accessToken
	refresh       map[string]*session
	tokN          uint64
	faults        Faults
	fail5xx       int // left of Faults.Status5xxCount
	frng          *rand.Rand
	log           []Request
	webhooks      []WebhookAttempt
	whSeq         uint64 // the last ticket handed out
	scanN         int
	scans         []*scanRec // creation order
	byStart       []*scanRec // newest StartTime first, ties by id descending
	scanByID      map[string]*scanRec
	fileByID      map[string]*fileRec
	running       []*scanRec
	finishedOrder []*scanRec
}

// scanRec is a stored scan: its snapshot and every file it will have.
type scanRec struct {
	scan    Scan
	outcome ScanStatus
	stop    time.Time // planned stop
	files   []*fileRec
	visible int // files[:visible] are listed
}

type fileRec struct {
	f    File
	scan *scanRec
	idx  int // in scan.files
}

// Validate reports what is wrong with o, if anything. The constructors panic
// on options that do not validate.
func (o Options) Validate() error {
	var errs []error
	switch o.ListShape {
	case "", "object", "array":
	default:
		errs = append(errs, fmt.Errorf("ListShape %q: want object or array", o.ListShape))
	}
	switch o.TimeFormat {
	case "", "rfc3339", "epoch_ms", "epoch_s":
	default:
		errs = append(errs, fmt.Errorf("TimeFormat %q: want rfc3339, epoch_ms or epoch_s", o.TimeFormat))
	}
	switch o.WebhookFileFilter {
	case "", "all", "blocked":
	default:
		errs = append(errs, fmt.Errorf("WebhookFileFilter %q: want all or blocked", o.WebhookFileFilter))
	}
	switch strings.ToUpper(o.WebhookMethod) {
	case "", "POST", "PUT":
	default:
		errs = append(errs, fmt.Errorf("WebhookMethod %q: want POST or PUT", o.WebhookMethod))
	}
	if o.WebhookURL != "" {
		if u, err := url.Parse(o.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("WebhookURL %q: want an http or https URL", o.WebhookURL))
		}
	}
	if o.AccessTTL < 0 || o.RefreshTTL < 0 {
		errs = append(errs, errors.New("AccessTTL and RefreshTTL must not be negative"))
	}
	if o.FilesPerScan < 0 {
		errs = append(errs, errors.New("FilesPerScan: negative"))
	}
	if o.ThreatRate > 1 {
		errs = append(errs, fmt.Errorf("ThreatRate %g: above 1", o.ThreatRate))
	}
	if o.MaxScanDuration < 0 {
		errs = append(errs, errors.New("MaxScanDuration: negative"))
	}
	if o.MaxRequests < 0 {
		errs = append(errs, errors.New("MaxRequests: negative"))
	}
	names, ids := map[string]bool{}, map[string]bool{}
	for i, st := range o.Storages {
		if st.Name == "" {
			errs = append(errs, fmt.Errorf("Storages[%d]: empty Name", i))
		}
		id := storageID(st)
		if names[st.Name] || ids[id] {
			errs = append(errs, fmt.Errorf("Storages[%d]: repeated name or id", i))
		}
		names[st.Name], ids[id] = true, true
	}
	for u := range o.Users {
		if u == "" {
			errs = append(errs, errors.New("Users: empty user name"))
		}
	}
	return errors.Join(errs...)
}

var defaultStorages = []Storage{{Name: "finance-share"}, {Name: "hr-documents"}, {Name: "eng-uploads"}}

// storageID is st's ID, or a UUID made from its name.
func storageID(st Storage) string {
	if st.ID != "" {
		return st.ID
	}
	h := fnv.New128a()
	h.Write([]byte("storage\x00" + st.Name))
	var b [16]byte
	h.Sum(b[:0])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// NewUnstartedHandler returns a Server without a listener, for a program
// that serves it itself (it implements http.Handler); URL is empty.
func NewUnstartedHandler(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic("mdsstest: " + err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		shape:      orDefault(opts.ListShape, "object"),
		listKey:    orDefault(opts.ListKey, "items"),
		totalKey:   orDefault(opts.TotalKey, "total"),
		now:        opts.Now,
		seed:       opts.Seed,
		filesMean:  opts.FilesPerScan,
		threatRate: opts.ThreatRate,
		maxDur:     opts.MaxScanDuration,
		accessTTL:  opts.AccessTTL,
		refreshTTL: opts.RefreshTTL,
		users:      map[string]string{},
		maxReqs:    opts.MaxRequests,
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		apiKey:     opts.APIKey,
		access:     map[string]*accessToken{},
		refresh:    map[string]*session{},
		frng:       rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_fa17)),
		scanByID:   map[string]*scanRec{},
		fileByID:   map[string]*fileRec{},
	}
	s.rd = render{fileNames: opts.EnumsAsNames, scanStatusNo: opts.ScanStatusAsInt && !opts.EnumsAsNames, flat: opts.FlatResult}
	switch opts.TimeFormat {
	case "epoch_ms":
		s.rd.tf = tfEpochMS
	case "epoch_s":
		s.rd.tf = tfEpochS
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.filesMean == 0 {
		s.filesMean = 12
	}
	if s.threatRate == 0 {
		s.threatRate = 0.15
	}
	if s.maxDur == 0 {
		s.maxDur = 10 * time.Minute
	}
	if s.accessTTL == 0 {
		s.accessTTL = time.Hour
	}
	if s.refreshTTL == 0 {
		s.refreshTTL = time.Hour
	}
	if opts.APIKey == "" && opts.Users == nil {
		s.apiKey = DefaultAPIKey
		s.users[DefaultUser] = DefaultPassword
	}
	for u, p := range opts.Users {
		s.users[strings.ToLower(u)] = p
	}
	s.storages = slices.Clone(opts.Storages)
	if len(s.storages) == 0 {
		s.storages = slices.Clone(defaultStorages)
	}
	for i := range s.storages {
		s.storages[i].ID = storageID(s.storages[i])
	}
	s.wh.init(opts)
	return s
}

// NewServer starts a Server on a loopback port, like httptest.NewServer.
func NewServer(opts Options) *Server {
	s := NewUnstartedHandler(opts)
	s.ts = httptest.NewServer(s)
	s.URL = s.ts.URL
	return s
}

// NewTLSServer starts a Server over HTTPS with a self-signed certificate,
// like httptest.NewTLSServer; Certificate and Client give what a client
// needs to trust it.
func NewTLSServer(opts Options) *Server {
	s := NewUnstartedHandler(opts)
	s.ts = httptest.NewTLSServer(s)
	s.URL = s.ts.URL
	return s
}

// Close stops generators, releases hanging requests, ends webhook
// deliveries in flight and, when the server has a listener, shuts it down
// and waits for outstanding requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
	})
	s.genWG.Wait()
	if s.ts != nil {
		s.ts.Close()
	}
}

// Certificate returns the TLS certificate of a NewTLSServer, nil otherwise.
func (s *Server) Certificate() *x509.Certificate {
	if s.ts == nil || s.ts.TLS == nil {
		return nil
	}
	return s.ts.Certificate()
}

// Client returns an HTTP client for the server (one that trusts its
// certificate, for a NewTLSServer); for NewUnstartedHandler a plain client.
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return &http.Client{}
	}
	return s.ts.Client()
}

// Storages returns the storages scans run on (defaults and ids filled in).
func (s *Server) Storages() []Storage { return slices.Clone(s.storages) }

// SetFaults replaces the injected faults; it applies to requests that
// arrive from then on, and restarts Status5xxCount.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.fail5xx = f.Status5xxCount
	s.mu.Unlock()
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetRequests empties the request log and sets RequestCount to zero.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.log = nil
	s.reqCount.Store(0)
	s.mu.Unlock()
}

// RequestCount returns how many requests arrived since the start or the
// last ResetRequests (also those not kept in a bounded log).
func (s *Server) RequestCount() int64 { return s.reqCount.Load() }

func (s *Server) logRequest(r Request) {
	s.mu.Lock()
	if s.maxReqs > 0 && len(s.log) >= s.maxReqs {
		keep := s.maxReqs / 2
		s.log = append(s.log[:0], s.log[len(s.log)-keep:]...)
	}
	s.log = append(s.log, r)
	s.mu.Unlock()
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Clock is a manual clock for Options.Now: it stands still until Advance or
// Set moves it. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
