// Package otsec polls MetaDefender OT Security's Enterprise Manager API
// (port 3003, Bearer token of an API-Client user) for device, connection and
// Suricata alerts, per site and sensor, and keeps three sets in view: the
// device inventory, the CVEs of the devices and the patch requests, whose
// additions, changes and (for devices) removals become events.
//
// The vendor document gives the endpoints, the query parameters and the
// {error, errors, data} envelope, but not the shape of list data or record
// fields. This package therefore reads `data` either as the list itself or
// as an object holding it, reads fields from a table of likely spellings
// that an operator can override per stream, and fails a poll with a message
// naming the field and the override key instead of guessing.
package otsec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// API paths, as the vendor document spells them.
const (
	PathComponents     = "/neu-exposure/exposure/v1/managements/components"
	PathDevices        = "/neu-exposure/exposure-external/asset-main/exposure/v1/sensor/device/items"
	PathDeviceAlerts   = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/device-alert/items"
	PathConnAlerts     = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/conn-alert/items"
	PathSuricataAlerts = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/suricata-alert/items"
	PathDevicesBySite  = "/neu-exposure/exposure/v1/devices/items"
	PathDeviceCVEs     = "/neu-exposure/exposure-external/asset-report/exposure/v1/sensor/device-cves/items"
	PathPatchRequests  = "/neu-exposure/exposure-external/asset-main/exposure/v1/sensor/request-patching/items"
)

// ErrUnauthorized is returned (wrapped) for HTTP 401: the token is wrong,
// expired or revoked.
var ErrUnauthorized = errors.New("unauthorized")

// APIError is an answer the API gave with error: true, or a non-2xx status.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// client talks to one Enterprise Manager.
type client struct {
	base    *url.URL
	token   *pipeline.Credential
	http    *http.Client
	maxBody int64
	timeout time.Duration
}

func newClient(cfg *Config, log *zap.Logger) (*client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	tr, err := pipeline.NewUpstreamTransport(pipeline.UpstreamOptions{CAFile: cfg.TLS.CAFile, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
		ResponseTimeout: cfg.Timeout, MaxIdleConnsPerHost: 8, Credentials: "the token"}, log)
	if err != nil {
		return nil, err
	}
	return &client{
		base:    base,
		token:   pipeline.NewCredential(cfg.Token, cfg.TokenFile),
		http:    &http.Client{Transport: tr, CheckRedirect: noRedirect},
		maxBody: int64(cfg.MaxBodyBytes),
		timeout: cfg.Timeout,
	}, nil
}

// noRedirect refuses redirects: following one would send the bearer token
// to wherever the redirect points.
func noRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("refusing redirect to %s", req.URL.Redacted())
}

// get performs one GET and returns the envelope's data and the body it
// points into, read into dst's storage when it is large enough.
func (c *client) get(parent context.Context, path string, query url.Values, dst []byte) (gjson.Result, []byte, error) {
	status, ctype, body, err := c.exchange(parent, path, query, dst)
	if err != nil {
		return gjson.Result{}, body, err
	}
	data, err := DecodeEnvelope(status, ctype, body)
	if err != nil {
		return gjson.Result{}, body, fmt.Errorf("GET %s: %w", path, err)
	}
	return data, body, nil
}

// getList performs one GET of a list endpoint and returns its page (records,
// total or -1, and which records match recognised) and the body they point
// into.
func (c *client) getList(parent context.Context, path string, query url.Values, dst []byte, match pipeline.ElementMatcher) (page, []byte, error) {
	status, ctype, body, err := c.exchange(parent, path, query, dst)
	if err != nil {
		return page{}, body, err
	}
	items, known, total, err := decodeListBody(status, ctype, body, match)
	if err != nil {
		return page{}, body, fmt.Errorf("GET %s: %w", path, err)
	}
	return page{items: items, known: known, total: total}, body, nil
}

// exchange performs one GET and reads the whole answer into dst's storage
// when it is large enough.
func (c *client) exchange(parent context.Context, path string, query url.Values, dst []byte) (status int, ctype string, body []byte, err error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", nil, fmt.Errorf("build request: %w", err)
	}
	tok, err := c.token.Get()
	if err != nil {
		return 0, "", nil, fmt.Errorf("token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", nil, c.transportError(parent, path, err)
	}
	defer resp.Body.Close()
	body, err = readBody(resp, c.maxBody, dst)
	if err != nil {
		return 0, "", nil, c.transportError(parent, path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// transportError words a failed exchange; a timeout says so and names the
// configured limit.
func (c *client) transportError(parent context.Context, path string, err error) error {
	var ne net.Error
	if parent.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		// Either the header timeout or the call's deadline fired first, at
		// random: one wording for both, so a run of timeouts logs once.
		return fmt.Errorf("GET %s: timeout: no complete answer within %s: %w", path, c.timeout, context.DeadlineExceeded)
	}
	err = stripURL(err)
	if hinted := pipeline.CertHint(err); hinted != err {
		return fmt.Errorf("GET %s: TLS with %s: %w", path, c.base.Host, hinted)
	}
	return fmt.Errorf("GET %s: %w", path, err)
}

// stripURL removes the URL from *url.Error: the path is already in the
// message and the query can be long.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readBody reads the whole body, at most max bytes, into dst's storage.
// With a Content-Length it reads exactly that much into a buffer of that
// size (bytes.Buffer would double its storage to look for the end).
func readBody(resp *http.Response, max int64, dst []byte) ([]byte, error) {
	cl := resp.ContentLength
	if cl > max {
		return nil, fmt.Errorf("response body of %d bytes exceeds max_body_bytes (%d)", cl, max)
	}
	if cl >= 0 {
		if int64(cap(dst)) < cl {
			dst = make([]byte, pipeline.RoomFor(int(cl)))
		}
		b := dst[:cl]
		if n, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, fmt.Errorf("read body: got %d of %d bytes: %w", n, cl, err)
		}
		return b, nil
	}
	buf := bytes.NewBuffer(dst[:0])
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read body after %d bytes: %w", n, err)
	}
	if n > max {
		return nil, fmt.Errorf("response body exceeds max_body_bytes (%d)", max)
	}
	return buf.Bytes(), nil
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// DecodeEnvelope checks an API answer and returns its `data`. It fails for
// a non-2xx status (401 as ErrUnauthorized), an HTML page, a body that is not
// complete JSON, and for error: true even with HTTP 200.
func DecodeEnvelope(status int, contentType string, body []byte) (gjson.Result, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '<' || strings.Contains(strings.ToLower(contentType), "html") {
		title := "no title"
		if m := htmlTitle.FindSubmatch(body); m != nil {
			title = strings.Join(strings.Fields(string(m[1])), " ")
		}
		err := fmt.Errorf("HTTP %d with an HTML page (%.80q) instead of JSON: a proxy or web server answered, not the API", status, title)
		if status == http.StatusUnauthorized {
			return gjson.Result{}, fmt.Errorf("%w: %v (check token or token_file)", ErrUnauthorized, err)
		}
		return gjson.Result{}, err
	}
	valid := pipeline.ValidJSON(trimmed)
	if status == http.StatusUnauthorized {
		e := &APIError{Status: status}
		if valid {
			fillAPIError(e, gjson.ParseBytes(trimmed))
		}
		return gjson.Result{}, fmt.Errorf("%w: %v (check token or token_file)", ErrUnauthorized, e)
	}
	if status < 200 || status > 299 {
		e := &APIError{Status: status}
		if valid {
			fillAPIError(e, gjson.ParseBytes(trimmed))
		} else {
			e.Message = snippet(trimmed)
		}
		return gjson.Result{}, e
	}
	if len(trimmed) == 0 {
		return gjson.Result{}, fmt.Errorf("HTTP %d with an empty body", status)
	}
	if !valid {
		return gjson.Result{}, fmt.Errorf("HTTP %d with malformed or truncated JSON (%d bytes)", status, len(body))
	}
	// gjson reads strings; view the body as one without copying it. The
	// body is never modified afterwards.
	doc := gjson.Parse(unsafe.String(unsafe.SliceData(trimmed), len(trimmed)))
	if !doc.IsObject() {
		return gjson.Result{}, fmt.Errorf("HTTP %d with JSON that is not an {error, errors, data} envelope", status)
	}
	// One pass over the envelope's members: the list inside data is most
	// of the body, and every Get would scan past it again.
	var errFlag, data gjson.Result
	pipeline.Members(doc.Raw, func(k string, v gjson.Result) bool {
		switch k {
		case "error":
			errFlag = v
		case "data":
			data = v
		}
		return true
	})
	if errFlag.Type == gjson.True {
		e := &APIError{Status: status}
		fillAPIError(e, doc)
		if e.Message == "" && e.Code == "" {
			e.Message = "error: true without details"
		}
		return gjson.Result{}, fmt.Errorf("API reported an error: %w", e)
	}
	if !data.Exists() {
		return gjson.Result{}, fmt.Errorf("HTTP %d envelope has no data", status)
	}
	return data, nil
}

func fillAPIError(e *APIError, doc gjson.Result) {
	first := doc.Get("errors.0")
	e.Code = pipeline.Str(first.Get("code"))
	e.Message = pipeline.Str(first.Get("message"))
	if e.Message == "" {
		e.Message = pipeline.Str(doc.Get("message"))
	}
}

// snippet returns the start of a non-JSON body, printable, for an error.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		// Cut at a character boundary.
		cut := n
		for cut > n-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = b[:cut]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
}

// decodeListBody is DecodeEnvelope followed by DecodeList, with the same
// results and errors, for a list endpoint's whole answer. A well-formed
// answer takes one walk over the body, which validates it and splits the
// list as it goes, passing over the records match recognises (see
// pipeline.ScanListEnvelope); anything else (an error status, an HTML page,
// JSON that is not valid, error: true, no list) goes the two-step way,
// which words the error. known holds match's tag of each item, -1 for an
// item read in full; it is nil when match is nil or the answer went the
// two-step way (every item read).
func decodeListBody(status int, contentType string, body []byte, match pipeline.ElementMatcher) (items []gjson.Result, known []int32, total int, err error) {
	trimmed := bytes.TrimSpace(body)
	if status >= 200 && status <= 299 && len(trimmed) > 0 && trimmed[0] == '{' &&
		!strings.Contains(strings.ToLower(contentType), "html") {
		scan, valid := pipeline.ScanListEnvelope(trimmed, listRank, totalRank, match)
		if valid && scan.HasList && scan.Error.Type != gjson.True {
			return scan.Items, scan.Known, scan.Total, nil
		}
	}
	data, err := DecodeEnvelope(status, contentType, body)
	if err != nil {
		return nil, nil, -1, err
	}
	items, total, err = DecodeList(data)
	return items, nil, total, err
}

func listRank(k string) int  { return slices.Index(listKeys, k) }
func totalRank(k string) int { return slices.Index(totalKeys, k) }

// listKeys and totalKeys are where a list endpoint's data object may hold
// the records and their total.
var (
	listKeys  = []string{"items", "list", "rows", "records", "data", "content", "results", "devices", "alerts"}
	totalKeys = []string{"total", "totalCount", "total_count", "count", "totalElements", "totalRecords", "totalItems"}
)

// DecodeList reads a list endpoint's data: the list itself, or an object
// holding it under a known key with an optional total. total is -1 when not
// given.
func DecodeList(data gjson.Result) (items []gjson.Result, total int, err error) {
	total = -1
	switch {
	case data.IsArray():
		return pipeline.Elements(data.Raw), total, nil
	case data.IsObject():
		// One pass over the members, taking the best-ranked list and total.
		var keys []string
		listRank, totalRank := len(listKeys), len(totalKeys)
		var list gjson.Result
		pipeline.Members(data.Raw, func(k string, v gjson.Result) bool {
			if len(keys) < 20 {
				keys = append(keys, k)
			}
			if i := slices.Index(listKeys, k); i >= 0 && i < listRank && v.IsArray() {
				list, listRank = v, i
			}
			if i := slices.Index(totalKeys, k); i >= 0 && i < totalRank {
				if n, ok := pipeline.Int(v); ok && n >= 0 {
					total, totalRank = n, i
				}
			}
			return true
		})
		if listRank < len(listKeys) {
			return pipeline.Elements(list.Raw), total, nil
		}
		return nil, total, fmt.Errorf("data is an object without a list (keys: %s; expected one of %s)",
			strings.Join(keys, ", "), strings.Join(listKeys, ", "))
	case data.Type == gjson.Null:
		return nil, total, nil
	}
	return nil, total, fmt.Errorf("data is %s, not a list", data.Type)
}

// dataQuery renders the `data` parameter as the API documents it; an empty
// sortBy leaves the sort keys out.
func dataQuery(limit int, sortBy string, extra string) string {
	q := `{"limit":` + strconv.Itoa(limit) + `,"page":1`
	if sortBy != "" {
		q += `,"sortBy":` + strconv.Quote(sortBy) + `,"sortType":"desc"`
	}
	if extra != "" {
		q += "," + extra
	}
	return q + "}"
}
