// Package otsectest is a fake MetaDefender OT Security Enterprise Manager
// (the "neu-exposure" REST API on port 3003) for tests, benchmarks and demos.
// It is used like net/http/httptest: NewServer starts it on a loopback port,
// NewTLSServer does the same over HTTPS with a self-signed certificate, and
// NewUnstartedHandler returns a bare http.Handler for a program (cmd/mdsim)
// that runs its own listener.
//
// It follows the vendor's "API Client v1" document: every GET endpoint that
// document lists, at the same path (the /neu-exposure prefix included); a
// bearer token in the Authorization header; the {"error","errors","data"}
// envelope; the exact 401 body the document publishes; site and sensor chosen
// with the siteIp and sensorIp query parameters; and paging through a `data`
// query parameter that holds a URL-encoded JSON object such as
// {"limit":200,"page":1,"sortBy":"alertStarted","sortType":"desc"}, whose
// "page" "should ALWAYS be 1" (any other page is answered with a 400 and
// logged, so a test can assert that a client never asked for one).
//
// Where the document is silent the fake assumes, and makes configurable:
//
//   - The shape of `data` on list endpoints (Options.ListShape): by default an
//     object {"items":[...],"total":N}; "array" makes it a bare array and
//     "list" makes it {"list":[...],"total":N}. "total" counts every record
//     that matched, not just those returned.
//   - The format of times (Options.TimeFormat): by default RFC 3339 UTC with
//     millisecond fraction ("2026-11-23T08:52:43.123Z"); "epoch_ms" and
//     "epoch_s" render JSON numbers.
//   - Record field names: camelCase, as the few published keys (siteIp,
//     sensorIps, discovTime, alertStarted) are. Alerts carry alertStarted,
//     devices discovTime, CVE records firstSeen and patch requests createdAt;
//     each list is sorted on that field unless the request's sortBy names
//     another one. Ties are broken by id, in the same direction as sortType.
//   - Error answers other than the published 401 use the same envelope with
//     codes of the published form: NEM-3003-000400 (bad request),
//     NEM-3003-000404 (no such path), NEM-3003-000405 (method not allowed)
//     and NEM-3003-000500 (internal error).
//   - The sites endpoint answers data=[{"id":N,"siteIp":...,"name":...}],
//     where N is the 1-based position of the site in Options.Sites; that N is
//     what the devices-by-site endpoint takes in siteId=[N,...].
//
// Records are stored as pre-rendered JSON, sorted on their time field, so
// that answering the usual newest-first request costs a memory copy; this
// keeps the fake out of the way when a benchmark drains millions of records.
// The maps that Records returns and Update hands to its function are decoded
// with encoding/json's defaults: every JSON number is a float64. Update and
// Remove are how a test changes the sets a client keeps in view: a device's
// address or firmware, a patch request's status, a device leaving the
// inventory.
//
// Faults (SetFaults) inject the failures a client meets in the field: slow
// answers, 503s, an nginx-style HTML 502, an HTML 200 from a captive portal,
// truncated bodies, HTTP 200 with "error":true, and requests that never get
// an answer.
package otsectest
