package otsectest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paths the server answers (GET only), as the vendor document spells them.
const (
	// PathComponents lists sites and their sensors: data=[{siteIp, sensorIps}].
	PathComponents = "/neu-exposure/exposure/v1/managements/components"
	// PathSites lists sites: data=[{id, siteIp, name}] (shape assumed).
	PathSites = "/neu-exposure/exposure/v1/managements/sites"
	// PathDevices lists a sensor's devices (stream devices, sorted on discovTime).
	PathDevices = "/neu-exposure/exposure-external/asset-main/exposure/v1/sensor/device/items"
	// PathDeviceAlerts lists a sensor's device alerts (sorted on alertStarted).
	PathDeviceAlerts = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/device-alert/items"
	// PathConnAlerts lists a sensor's connection alerts (sorted on alertStarted).
	PathConnAlerts = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/conn-alert/items"
	// PathSuricataAlerts lists a sensor's Suricata alerts (sorted on alertStarted).
	PathSuricataAlerts = "/neu-exposure/exposure-external/alert-main/exposure/v1/sensor/suricata-alert/items"
	// PathDevicesBySite lists the devices of the sites in siteId=[N,...].
	PathDevicesBySite = "/neu-exposure/exposure/v1/devices/items"
	// PathDeviceCVEs lists a sensor's device CVEs (stream cves, sorted on firstSeen).
	PathDeviceCVEs = "/neu-exposure/exposure-external/asset-report/exposure/v1/sensor/device-cves/items"
	// PathDeviceCVEsAlt is the document's other path to the same CVE list.
	PathDeviceCVEsAlt = "/neu-exposure/exposure-external/asset-main/exposure/v1/sensor/device/cves"
	// PathPatchRequests lists a sensor's patch requests (stream patch_requests,
	// sorted on createdAt).
	PathPatchRequests = "/neu-exposure/exposure-external/asset-main/exposure/v1/sensor/request-patching/items"
)

// sensorPaths maps each per-sensor list endpoint to its stream.
var sensorPaths = map[string]string{
	PathDevices:        StreamDevices,
	PathDeviceAlerts:   StreamDeviceAlerts,
	PathConnAlerts:     StreamConnAlerts,
	PathSuricataAlerts: StreamSuricataAlerts,
	PathDeviceCVEs:     StreamCVEs,
	PathDeviceCVEsAlt:  StreamCVEs,
	PathPatchRequests:  StreamPatchRequests,
}

// Bodies the server sends verbatim.
const (
	// UnauthorizedBody is the 401 body the vendor document publishes.
	UnauthorizedBody = `{"error":true,"errors":[{"code":"NEM-3003-000204","message":"Invalid authentication token"}]}`
	// ErrorTrueBody is the HTTP 200 body of the ErrorTrue fault.
	ErrorTrueBody = `{"error":true,"errors":[{"code":"NEM-3003-000500","message":"Internal error"}]}`
	// BadGatewayHTML is the body of the HTML fault's 502, as nginx sends it.
	BadGatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	// PortalHTML is the body of the HTMLOK fault's 200.
	PortalHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Network Access</title></head>
<body><h1>Authentication required</h1><p>Please sign in to continue to the requested site.</p>
<form method="post" action="/login"><input name="user"><input name="password" type="password"><button>Sign in</button></form>
</body></html>
`
	// UnavailableText is the body of the Status5xx fault's 503.
	UnavailableText = "503 Service Temporarily Unavailable\n"
)

// Error codes of answers other than the published 401 (assumed, in the
// published code's form).
const (
	// CodeBadRequest comes with a 400: bad data, page other than 1, unknown
	// site or sensor.
	CodeBadRequest = "NEM-3003-000400"
	// CodeNotFound comes with a 404 for a path the server does not know.
	CodeNotFound = "NEM-3003-000404"
	// CodeMethodNotAllowed comes with a 405 for a method other than GET.
	CodeMethodNotAllowed = "NEM-3003-000405"
)

const ctJSON = "application/json; charset=utf-8"

// errPage is the answer to a request whose page is not 1.
var errPage = errors.New("page must be 1 (the value should ALWAYS be 1)")

// ServeHTTP answers one request of the vendor API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.reqCount.Add(1)
	q := r.URL.Query()
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: q}
	var dataErr error
	if raw, ok := q["data"]; ok {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw[0]), &m); err != nil {
			dataErr = fmt.Errorf("data is not valid JSON: %v", err)
		} else if m == nil {
			dataErr = errors.New("data must be a JSON object")
		} else {
			entry.Data = m
		}
	}
	// The log entry is made before the answer is written, so that a client
	// that has its answer finds its request in Requests.
	reply := func(status int, ctype string, body []byte, fault string) {
		entry.Status = status
		s.logRequest(entry)
		s.write(w, status, ctype, body, fault)
	}

	s.mu.Lock()
	f := s.faults
	roll := func(p float64) bool { return p > 0 && s.frng.Float64() < p }
	switch {
	case roll(f.Hang):
		entry.Fault = "hang"
	case roll(f.Status5xx):
		entry.Fault = "5xx"
	case roll(f.HTML):
		entry.Fault = "html"
	case roll(f.HTMLOK):
		entry.Fault = "htmlok"
	case roll(f.ErrorTrue):
		entry.Fault = "error_true"
	case roll(f.Truncate):
		entry.Fault = "truncate"
		if s.frng.IntN(2) == 0 {
			entry.Fault = "truncate_close"
		}
	}
	s.mu.Unlock()

	if entry.Fault == "hang" {
		s.logRequest(entry)
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	if f.Latency > 0 && !s.sleep(r.Context(), f.Latency) {
		s.logRequest(entry) // the client left before the answer
		return
	}
	switch entry.Fault {
	case "5xx":
		reply(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte(UnavailableText), "")
		return
	case "html":
		reply(http.StatusBadGateway, "text/html", []byte(BadGatewayHTML), "")
		return
	case "htmlok":
		reply(http.StatusOK, "text/html; charset=utf-8", []byte(PortalHTML), "")
		return
	}
	if !s.authorized(r) {
		entry.Fault = ""
		reply(http.StatusUnauthorized, ctJSON, []byte(UnauthorizedBody), "")
		return
	}
	if entry.Fault == "error_true" {
		reply(http.StatusOK, ctJSON, []byte(ErrorTrueBody), "")
		return
	}
	status, body, release := s.route(r, q, entry.Data, dataErr)
	reply(status, ctJSON, body, entry.Fault)
	if release != nil {
		release()
	}
}

// sleep waits d; false when the request or the server ended first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.expired && h[len(p):] == s.token
}

// write sends one answer, cut as the fault says.
func (s *Server) write(w http.ResponseWriter, status int, ctype string, body []byte, fault string) {
	switch fault {
	case "truncate":
		body = body[:len(body)/2]
	case "truncate_close":
		if writeAndDrop(w, status, ctype, body) {
			return
		}
		body = body[:len(body)/2] // no connection to drop (HTTP/2, a recorder)
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeAndDrop announces the full body, sends half of it and closes the
// connection.
func writeAndDrop(w http.ResponseWriter, status int, ctype string, body []byte) bool {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), ctype, len(body))
	_, _ = brw.Write(body[:len(body)/2])
	_ = brw.Flush()
	return true
}

func errorBody(code, msg string) []byte {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error  bool       `json:"error"`
		Errors []apiError `json:"errors"`
	}{true, []apiError{{code, msg}}})
	return b
}

func okBody(data any) []byte {
	b, _ := json.Marshal(struct {
		Error  bool     `json:"error"`
		Errors []string `json:"errors"`
		Data   any      `json:"data"`
	}{false, []string{}, data})
	return b
}

func badRequest(msg string) (int, []byte, func()) {
	return http.StatusBadRequest, errorBody(CodeBadRequest, msg), nil
}

// route answers an authenticated request. release, when not nil, returns
// the body's buffer once it has been written.
func (s *Server) route(r *http.Request, q url.Values, data map[string]any, dataErr error) (int, []byte, func()) {
	path := r.URL.Path
	stream, isSensor := sensorPaths[path]
	if !isSensor && path != PathComponents && path != PathSites && path != PathDevicesBySite {
		return http.StatusNotFound, errorBody(CodeNotFound, "Not found: "+path), nil
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, errorBody(CodeMethodNotAllowed, "Method not allowed: "+r.Method), nil
	}
	switch path {
	case PathComponents:
		type component struct {
			SiteIP    string   `json:"siteIp"`
			SensorIPs []string `json:"sensorIps"`
		}
		out := make([]component, len(s.sites))
		for i, site := range s.sites {
			out[i] = component{site.SiteIP, site.SensorIPs}
		}
		return http.StatusOK, okBody(out), nil
	case PathSites:
		type siteItem struct {
			ID     int    `json:"id"`
			SiteIP string `json:"siteIp"`
			Name   string `json:"name"`
		}
		out := make([]siteItem, len(s.sites))
		for i, site := range s.sites {
			out[i] = siteItem{i + 1, site.SiteIP, fmt.Sprintf("Site %d", i+1)}
		}
		return http.StatusOK, okBody(out), nil
	}
	if dataErr != nil {
		return badRequest(dataErr.Error())
	}
	spec := streamSpecs[StreamDevices]
	if isSensor {
		spec = streamSpecs[stream]
	}
	lq, err := parseListQuery(data, spec.timeField, !isSensor)
	if err != nil {
		return badRequest(err.Error())
	}
	if !isSensor {
		return s.devicesBySite(q, &lq)
	}
	siteIP, sensorIP := q.Get("siteIp"), q.Get("sensorIp")
	if siteIP == "" || sensorIP == "" {
		return badRequest("siteIp and sensorIp are required")
	}
	st := s.stores[storeKey{stream, siteIP, sensorIP}]
	if st == nil {
		return badRequest(fmt.Sprintf("Sensor %s not found at site %s", sensorIP, siteIP))
	}
	bp := bufPool.Get().(*[]byte)
	st.mu.RLock()
	a := pick(st.recs, &lq, spec.timeField)
	*bp = render(*bp, s.shape, &a)
	st.mu.RUnlock()
	return http.StatusOK, *bp, func() { putBuf(bp) }
}

// devicesBySite answers /devices/items?siteId=[N,...]: the devices of every
// sensor of the sites numbered N (1-based positions in Options.Sites).
func (s *Server) devicesBySite(q url.Values, lq *listQuery) (int, []byte, func()) {
	raw := q.Get("siteId")
	if raw == "" {
		return badRequest("siteId is required")
	}
	var ids []int
	if err := json.Unmarshal([]byte(raw), &ids); err != nil {
		var one int
		if err := json.Unmarshal([]byte(raw), &one); err != nil {
			return badRequest("siteId must be an array of numbers")
		}
		ids = []int{one}
	}
	var recs []rec
	for _, id := range ids {
		if id < 1 || id > len(s.sites) {
			continue
		}
		site := s.sites[id-1]
		for _, sensor := range site.SensorIPs {
			st := s.stores[storeKey{StreamDevices, site.SiteIP, sensor}]
			st.mu.RLock()
			recs = append(recs, st.recs...)
			st.mu.RUnlock()
		}
	}
	slices.SortFunc(recs, func(a, b rec) int {
		if a.less(&b) {
			return -1
		}
		if b.less(&a) {
			return 1
		}
		return 0
	})
	a := pick(recs, lq, streamSpecs[StreamDevices].timeField)
	bp := bufPool.Get().(*[]byte)
	*bp = render(*bp, s.shape, &a)
	return http.StatusOK, *bp, func() { putBuf(bp) }
}

// parseListQuery checks and decodes a `data` object; allowAll accepts isAll.
func parseListQuery(data map[string]any, defSort string, allowAll bool) (listQuery, error) {
	q := listQuery{limit: 20, sortBy: defSort, desc: true}
	if v, ok := data["page"]; ok {
		if f, ok := v.(float64); !ok || f != 1 {
			return q, errPage
		}
	}
	if v, ok := data["limit"]; ok {
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || f < 1 {
			return q, errors.New("limit must be a positive integer")
		}
		q.limit = int(min(f, math.MaxInt32))
	}
	if v, ok := data["sortBy"]; ok {
		sb, ok := v.(string)
		if !ok || sb == "" {
			return q, errors.New("sortBy must be a field name")
		}
		q.sortBy = sb
	}
	if v, ok := data["sortType"]; ok {
		st, _ := v.(string)
		switch strings.ToLower(st) {
		case "desc":
		case "asc":
			q.desc = false
		default:
			return q, errors.New("sortType must be asc or desc")
		}
	}
	if v, ok := data["properties"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return q, errors.New("properties must be an object")
		}
		for k, pv := range m {
			s, ok := pv.(string)
			if !ok {
				return q, fmt.Errorf("properties.%s must be a string", k)
			}
			if s == "" {
				continue
			}
			if q.props == nil {
				q.props = map[string]string{}
			}
			q.props[k] = s
			q.quoted = append(q.quoted, appendJSONString(nil, s))
		}
	}
	if v, ok := data["id"]; ok {
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return q, errors.New("id must be an integer")
		}
		q.id, q.hasID = int64(f), true
	}
	if v, ok := data["isAll"]; ok && allowAll {
		b, ok := v.(bool)
		if !ok {
			return q, errors.New("isAll must be a boolean")
		}
		if b {
			q.limit = 0
		}
	}
	return q, nil
}

// marshalOrdered renders m as a JSON object whose keys come in the order
// they have in orig; keys not in orig follow, sorted.
func marshalOrdered(orig []byte, m map[string]any) ([]byte, error) {
	var order []string
	dec := json.NewDecoder(strings.NewReader(string(orig)))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		order = append(order, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var extra []string
	for _, k := range order {
		seen[k] = true
	}
	for k := range m {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	buf := []byte{'{'}
	n := 0
	for _, k := range append(order, extra...) {
		v, ok := m[k]
		if !ok {
			continue
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, vb...)
	}
	return append(buf, '}'), nil
}
