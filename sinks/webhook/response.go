package webhook

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Response handling limits.
const (
	// maxRetryAfter caps the wait a Retry-After header can ask for.
	maxRetryAfter = 10 * time.Minute
	// snippetBytes is the most response body text quoted in an error.
	snippetBytes = 200
	// errBodyRead is how much of an error response is read for the snippet
	// (secrets are scrubbed from all of it before it is cut).
	errBodyRead = 4 << 10
	// drainBytes is how much of a response is read before closing it, so
	// the connection can be reused; a longer body closes the connection.
	drainBytes = 64 << 10
	// minScrubLen keeps a very short header value from mangling snippets.
	minScrubLen = 4
)

// classify turns a response into the sink's result for one request: nil
// for 2xx; pipeline.Disabled for 410; pipeline.Permanent for other 4xx
// except 408, 425 and 429; a retryable error (with pipeline.RetryAfter when
// the response says when) for everything else, 3xx included since
// redirects are not followed. body is the start of the response body, read
// only for non-2xx responses. what names the request (URL and events).
func classify(resp *http.Response, body []byte, what string, scrub []string, now time.Time) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	status := fmt.Sprintf("HTTP %d", code)
	if t := http.StatusText(code); t != "" {
		status += " " + t
	}
	snip := ""
	if s := sanitize(body, scrub); s != "" {
		snip = ": response " + strconv.Quote(s)
	}
	var err error
	switch {
	case code >= 300 && code <= 399:
		loc := "nowhere (no Location header)"
		if l := resp.Header.Get("Location"); l != "" {
			loc = redactLocation(resp.Request, l)
		}
		err = fmt.Errorf("%s: %s: redirect to %s not followed; set url to the final address", what, status, loc)
	case code == http.StatusGone:
		return pipeline.Disabled(fmt.Errorf("%s: %s: the endpoint asked never to be sent to again%s", what, status, snip))
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		err = fmt.Errorf("%s: %s%s", what, status, snip)
	case code >= 400 && code <= 499:
		return pipeline.Permanent(fmt.Errorf("%s: %s%s", what, status, snip))
	default:
		err = fmt.Errorf("%s: unexpected %s%s", what, status, snip)
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok && d > 0 {
		return pipeline.RetryAfter(err, d)
	}
	return err
}

// parseRetryAfter reads a Retry-After value: a number of seconds or an
// HTTP date. The wait is capped at maxRetryAfter; a date in the past is 0.
// ok is false when v is empty or neither form.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if digits(v) {
		v = strings.TrimLeft(v, "0")
		if v == "" {
			return 0, true
		}
		if len(v) > 9 {
			return maxRetryAfter, true
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, false
		}
		return min(time.Duration(n)*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, maxRetryAfter), true
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// sanitize turns the start of a response body into text fit for an error
// message: every value in scrub (our credentials, header values, the URL's
// query) replaced by pipeline.Redacted, control characters and runs of
// white space made one space, invalid UTF-8 made '?', and the result cut
// to snippetBytes (with "..." when cut).
func sanitize(body []byte, scrub []string) string {
	s := string(body)
	for _, sec := range scrub {
		if len(sec) >= minScrubLen {
			s = strings.ReplaceAll(s, sec, pipeline.Redacted)
		}
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '?'
		case unicode.IsSpace(r) || unicode.IsControl(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r):
			r = '?'
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > snippetBytes {
			b.WriteString("...")
			return b.String()
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// safeURL renders u for messages: scheme, host and path only. Userinfo,
// query and fragment can hold credentials and are left out (a query is
// shown as "?...").
func safeURL(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := c.String()
	if u.RawQuery != "" || u.ForceQuery {
		s += "?..."
	}
	return s
}

// redactLocation renders a redirect's Location, resolved against the
// request's URL, the way safeURL does.
func redactLocation(req *http.Request, loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "an unparsable Location"
	}
	if req != nil && req.URL != nil {
		u = req.URL.ResolveReference(u)
	}
	return safeURL(u)
}
