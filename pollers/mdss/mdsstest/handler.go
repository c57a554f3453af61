package mdsstest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paths the server answers, as the contract spells them. Matching is
// case-insensitive (ASP.NET routing) and ignores one trailing slash.
const (
	// PathAuthenticate logs a user in (POST {"userName","password"}).
	PathAuthenticate = "/api/user/authenticate"
	// PathRefreshToken renews a session's tokens (POST {"refreshToken","accessToken"}).
	PathRefreshToken = "/api/user/refreshToken"
	// PathLogout ends the bearer token's session (POST).
	PathLogout = "/api/user/logout"
	// PathScans is the prefix of the scan list GET /api/scan/{startIndex}/{count}
	// and of one scan, GET /api/scan/{id}.
	PathScans = "/api/scan"
	// PathFiles is the prefix of the file list GET /api/file/{startIndex}/{count}?scanId=
	// and of one file, GET /api/file/{id}.
	PathFiles = "/api/file"
)

// MaxCount is the largest page the lists answer; a larger count is a 400.
const MaxCount = 1000

// Bodies the server sends verbatim.
const (
	// UnauthorizedBody is the body of every 401 (an assumption: MDSS's is
	// not published, and the contract does not rely on it). The answer also
	// carries "WWW-Authenticate: Bearer".
	UnauthorizedBody = `{"message":"Unauthorized"}`
	// BadGatewayHTML is the body of the HTML fault's 502, as nginx sends it.
	BadGatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	// UnavailableText is the body of the Status5xx fault's 503.
	UnavailableText = "503 Service Temporarily Unavailable\n"
)

const ctJSON = "application/json; charset=utf-8"

// route is one endpoint of the fake.
type route int

const (
	routeNone route = iota
	routeAuthenticate
	routeRefresh
	routeLogout
	routeScanList
	routeScan
	routeFileList
	routeFile
)

// match finds the endpoint of path and its path parameters.
func match(path string) (route, []string) {
	segs := strings.Split(strings.TrimPrefix(strings.TrimSuffix(path, "/"), "/"), "/")
	if len(segs) < 3 || !strings.EqualFold(segs[0], "api") || slices.Contains(segs, "") {
		return routeNone, nil
	}
	kind := strings.ToLower(segs[1])
	switch {
	case kind == "user" && len(segs) == 3:
		switch strings.ToLower(segs[2]) {
		case "authenticate":
			return routeAuthenticate, nil
		case "refreshtoken":
			return routeRefresh, nil
		case "logout":
			return routeLogout, nil
		}
	case kind == "scan" && len(segs) == 3:
		return routeScan, segs[2:]
	case kind == "scan" && len(segs) == 4:
		return routeScanList, segs[2:]
	case kind == "file" && len(segs) == 3:
		return routeFile, segs[2:]
	case kind == "file" && len(segs) == 4:
		return routeFileList, segs[2:]
	}
	return routeNone, nil
}

func (rt route) method() string {
	switch rt {
	case routeAuthenticate, routeRefresh, routeLogout:
		return http.MethodPost
	}
	return http.MethodGet
}

// ServeHTTP answers one request of the MDSS API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.reqCount.Add(1)
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
	if r.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(b) > 0 {
			entry.Body = b
		}
	}
	// The log entry is made before the answer is written, so that a client
	// that has its answer finds its request in Requests.
	reply := func(status int, body []byte, fault string) {
		entry.Status = status
		s.logRequest(entry)
		s.write(w, status, body, fault)
	}

	s.mu.Lock()
	f := s.faults
	applies := f.PathPrefix == "" || hasPrefixFold(r.URL.Path, f.PathPrefix)
	roll := func(p float64) bool { return applies && p > 0 && s.frng.Float64() < p }
	switch {
	case roll(f.Hang):
		entry.Fault = "hang"
	case applies && s.fail5xx > 0:
		s.fail5xx--
		entry.Fault = "5xx"
	case roll(f.Status5xx):
		entry.Fault = "5xx"
	case roll(f.HTML):
		entry.Fault = "html"
	case roll(f.Huge):
		entry.Fault = "huge"
	case roll(f.Truncate):
		entry.Fault = "truncate"
		if s.frng.IntN(2) == 0 {
			entry.Fault = "truncate_close"
		}
	}
	s.mu.Unlock()
	if !applies {
		f.Latency = 0
	}

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
		entry.Status = http.StatusServiceUnavailable
		s.logRequest(entry)
		writePlain(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte(UnavailableText))
		return
	case "html":
		entry.Status = http.StatusBadGateway
		s.logRequest(entry)
		writePlain(w, http.StatusBadGateway, "text/html", []byte(BadGatewayHTML))
		return
	}

	rt, params := match(r.URL.Path)
	if rt == routeNone {
		entry.Fault = ""
		reply(http.StatusNotFound, errorBody("No such endpoint: "+r.URL.Path), "")
		return
	}
	if r.Method != rt.method() {
		entry.Fault = ""
		w.Header().Set("Allow", rt.method())
		reply(http.StatusMethodNotAllowed, errorBody("Method not allowed: "+r.Method), "")
		return
	}
	var status int
	var body []byte
	switch rt {
	case routeAuthenticate:
		status, body = s.handleAuthenticate(entry.Body)
	case routeRefresh:
		status, body = s.handleRefresh(entry.Body)
	case routeLogout:
		status, body = s.handleLogout(r)
		if status == http.StatusOK {
			entry.Auth = "bearer"
		}
	default:
		entry.Auth = s.authenticate(r)
		if entry.Auth == "" {
			status, body = s.unauthorized()
			break
		}
		status, body = s.api(rt, params, entry.Query)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	if status != http.StatusOK {
		entry.Fault = ""
	}
	reply(status, body, entry.Fault)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
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

func errorBody(msg string) []byte { return mustJSON(map[string]string{"message": msg}) }

func badRequest(msg string) (int, []byte) { return http.StatusBadRequest, errorBody(msg) }

// api answers an authenticated GET.
func (s *Server) api(rt route, params []string, q url.Values) (int, []byte) {
	switch rt {
	case routeScan:
		s.mu.Lock()
		defer s.mu.Unlock()
		sc := s.scanByID[strings.ToLower(params[0])]
		if sc == nil {
			return http.StatusNotFound, errorBody("Scan not found: " + params[0])
		}
		return http.StatusOK, mustJSON(s.rd.scan(&sc.scan))
	case routeFile:
		s.mu.Lock()
		defer s.mu.Unlock()
		fr := s.fileByID[strings.ToLower(params[0])]
		if fr == nil || !fr.listed() {
			return http.StatusNotFound, errorBody("File not found: " + params[0])
		}
		return http.StatusOK, mustJSON(s.rd.file(&fr.f))
	}
	start, count, err := parsePaging(params[0], params[1])
	if err != nil {
		return badRequest(err.Error())
	}
	if rt == routeScanList {
		s.mu.Lock()
		defer s.mu.Unlock()
		total := len(s.byStart)
		var items [][]byte
		for _, sc := range page(s.byStart, start, count) {
			items = append(items, mustJSON(s.rd.scan(&sc.scan)))
		}
		return http.StatusOK, s.list(items, total)
	}
	ff, err := parseFileFilter(q)
	if err != nil {
		return badRequest(err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var files []*fileRec
	for _, sc := range s.scans {
		if ff.scanIDs != nil && !ff.scanIDs[sc.scan.ID] {
			continue
		}
		for _, fr := range sc.files[:sc.visible] {
			if ff.match(&fr.f) {
				files = append(files, fr)
			}
		}
	}
	slices.SortStableFunc(files, func(a, b *fileRec) int {
		if c := a.f.ScanCompletedTime.Compare(b.f.ScanCompletedTime); c != 0 {
			return c
		}
		return cmp.Compare(a.f.ID, b.f.ID)
	})
	var items [][]byte
	for _, fr := range page(files, start, count) {
		items = append(items, mustJSON(s.rd.file(&fr.f)))
	}
	return http.StatusOK, s.list(items, len(files))
}

func (fr *fileRec) listed() bool { return fr.idx < fr.scan.visible }

func page[T any](all []T, start, count int) []T {
	if start >= len(all) {
		return nil
	}
	return all[start:min(start+count, len(all))]
}

func parsePaging(a, b string) (start, count int, err error) {
	start, err = strconv.Atoi(a)
	if err != nil || start < 0 {
		return 0, 0, fmt.Errorf("startIndex %q: want an integer of 0 or more", a)
	}
	count, err = strconv.Atoi(b)
	if err != nil || count < 1 || count > MaxCount {
		return 0, 0, fmt.Errorf("count %q: want an integer from 1 to %d", b, MaxCount)
	}
	return start, count, nil
}

// list renders a list answer in the configured shape.
func (s *Server) list(items [][]byte, total int) []byte {
	var b bytes.Buffer
	if s.shape == "object" {
		b.WriteString(`{`)
		b.Write(mustJSON(s.listKey))
		b.WriteString(`:`)
	}
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	if s.shape == "object" {
		b.WriteString(`,`)
		b.Write(mustJSON(s.totalKey))
		b.WriteString(`:` + strconv.Itoa(total) + `}`)
	}
	return b.Bytes()
}

// fileFilter is the query of the file list: comma-separated lists, each
// an OR, as the KB "advanced file API filtering" describes.
type fileFilter struct {
	scanIDs, storageIDs    map[string]bool
	states, results, codes map[int]bool
}

func parseFileFilter(q url.Values) (fileFilter, error) {
	var ff fileFilter
	strs := func(key string) map[string]bool {
		v := q.Get(key)
		if v == "" {
			return nil
		}
		m := map[string]bool{}
		for _, p := range strings.Split(v, ",") {
			m[strings.ToLower(strings.TrimSpace(p))] = true
		}
		return m
	}
	ints := func(key string, names []string) (map[int]bool, error) {
		v := q.Get(key)
		if v == "" {
			return nil, nil
		}
		m := map[int]bool{}
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if n, err := strconv.Atoi(p); err == nil {
				m[n] = true
				continue
			}
			i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, p) })
			if i < 0 {
				return nil, fmt.Errorf("%s: %q is not a valid value", key, p)
			}
			m[i] = true
		}
		return m, nil
	}
	ff.scanIDs, ff.storageIDs = strs("scanId"), strs("storageId")
	var err error
	if ff.states, err = ints("processingState", stateNames[:]); err != nil {
		return ff, err
	}
	if ff.results, err = ints("result", resultNames[:]); err != nil {
		return ff, err
	}
	if ff.codes, err = ints("scanAllResultI", nil); err != nil {
		return ff, err
	}
	return ff, nil
}

func (ff *fileFilter) match(f *File) bool {
	return (ff.storageIDs == nil || ff.storageIDs[strings.ToLower(f.StorageID)]) &&
		(ff.states == nil || ff.states[int(f.ProcessingState)]) &&
		(ff.results == nil || ff.results[int(f.Result)]) &&
		(ff.codes == nil || ff.codes[f.ScanAllResultI])
}

// writePlain sends a fault's answer.
func writePlain(w http.ResponseWriter, status int, ctype string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// write sends one API answer, changed as the fault says.
func (s *Server) write(w http.ResponseWriter, status int, body []byte, fault string) {
	switch fault {
	case "huge":
		s.writeHuge(w, body)
		return
	case "truncate":
		body = body[:len(body)/2]
	case "truncate_close":
		if writeAndDrop(w, status, body) {
			return
		}
		body = body[:len(body)/2] // no connection to drop (HTTP/2, a recorder)
	}
	h := w.Header()
	if len(body) > 0 {
		h.Set("Content-Type", ctJSON)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeHuge sends a 200 whose JSON body is body with a "padding" string of
// Faults.HugeSize bytes added first: {"padding":"xxx…",…} or ["xxx…",…].
func (s *Server) writeHuge(w http.ResponseWriter, body []byte) {
	s.mu.Lock()
	size := s.faults.HugeSize
	s.mu.Unlock()
	if size <= 0 {
		size = 64 << 20
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	var head, tail string
	switch {
	case body[0] == '[':
		head, tail = `["`, `"`
	default:
		head, tail = `{"padding":"`, `"`
	}
	rest := body[1:]
	if len(rest) > 1 {
		tail += ","
	}
	h := w.Header()
	h.Set("Content-Type", ctJSON)
	h.Set("Content-Length", strconv.Itoa(len(head)+size+len(tail)+len(rest)))
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, head); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for left := size; left > 0; left -= len(chunk) {
		if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, tail)
	_, _ = w.Write(rest)
}

// writeAndDrop announces the full body, sends half of it and closes the
// connection.
func writeAndDrop(w http.ResponseWriter, status int, body []byte) bool {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), ctJSON, len(body))
	_, _ = brw.Write(body[:len(body)/2])
	_ = brw.Flush()
	return true
}
