package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// counter holds what the counting proxy saw.
type counter struct {
	requests atomic.Int64
	bytes    atomic.Int64 // response body bytes
	records  atomic.Int64 // record objects in response bodies
}

// recordStart begins every record the simulator renders (its first member
// is the id), and nothing else in its answers.
var recordStart = []byte(`{"id":`)

// startProxy serves a reverse proxy to target on a loopback port that counts
// requests, response bytes and records. close shuts it down.
func startProxy(target string, c *counter) (string, func(), error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, IdleConnTimeout: time.Minute},
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, c: c}
			return nil
		},
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.requests.Add(1); rp.ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// countingBody counts the bytes read and the record starts in them,
// including those split across reads.
type countingBody struct {
	io.ReadCloser
	c    *counter
	tail []byte // the last len(recordStart)-1 bytes read
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.bytes.Add(int64(n))
		b.c.records.Add(int64(countSplit(b.tail, p[:n], recordStart)))
		b.tail = keepTail(b.tail, p[:n], len(recordStart)-1)
	}
	return n, err
}

// countSplit counts the occurrences of pat in chunk plus those that start in
// prev (shorter than pat) and end in chunk.
func countSplit(prev, chunk, pat []byte) int {
	n := bytes.Count(chunk, pat)
	if len(prev) > 0 {
		var join [32]byte
		k := copy(join[:], prev)
		k += copy(join[k:], chunk[:min(len(chunk), len(pat)-1)])
		n += bytes.Count(join[:k], pat)
	}
	return n
}

// keepTail returns the last k bytes of prev+chunk, reusing prev's memory.
func keepTail(prev, chunk []byte, k int) []byte {
	if len(chunk) >= k {
		return append(prev[:0], chunk[len(chunk)-k:]...)
	}
	prev = append(prev, chunk...)
	if len(prev) > k {
		prev = append(prev[:0], prev[len(prev)-k:]...)
	}
	return prev
}
