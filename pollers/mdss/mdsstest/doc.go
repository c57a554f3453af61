// Package mdsstest is a fake MetaDefender Storage Security (MDSS) for tests,
// benchmarks and demos. It follows the wire contract in pollers/mdss/README.md
// to the letter. It is used like net/http/httptest: NewServer starts it on a
// loopback port, NewTLSServer does the same over HTTPS with a self-signed
// certificate, and NewUnstartedHandler returns a bare http.Handler for a
// program (cmd/mdsim) that runs its own listener.
//
// # Contract
//
// Authentication: the ApiKey header (its name matched case-insensitively,
// as every HTTP header) against Options.APIKey, or a bearer token from
// POST /api/user/authenticate {"userName","password"}, which answers
// {"accessToken","refreshToken","accessTokenExpiryTime","refreshTokenExpiryTime"}
// with the times in RFC 3339 UTC with milliseconds. POST /api/user/refreshToken
// {"refreshToken","accessToken"} renews them; POST /api/user/logout with the
// bearer token ends the session. Lists: GET /api/scan/{startIndex}/{count}
// and GET /api/file/{startIndex}/{count}?scanId=..., plus one record by id
// at GET /api/scan/{id} and GET /api/file/{id}. Records are camelCase as
// the contract shows them; webhooks (ScanCompleted, FileScanned) are
// PascalCase, exactly the vendor's published examples.
//
// # Where the contract is silent, the fake decides
//
//   - Token lifetimes: Options.AccessTTL and RefreshTTL, 60 minutes each by
//     default (the vendor document). A refresh issues a new access token and
//     a new refresh token that expires RefreshTTL after the refresh (the
//     vendor: the refresh token "can be extended by calling
//     /api/user/refreshToken"). The old refresh token stops working at once;
//     the old access token keeps working until its own expiry. Every access
//     token of a session dies with the session: when its refresh token
//     expires or at logout (vendor: the refresh token "is used to forcibly
//     expire any previously issued JWT"). The vendor's "also automatically
//     extended with an hour with each non-GET request" has nothing to act
//     on: the fake's only non-GET requests are the three user endpoints.
//   - The refresh body: refreshToken is required; accessToken is optional,
//     but when present it must be a token of the same session (expired or
//     not), else 401.
//   - Access tokens are JWT-shaped (HS256, claims sub, jti, iat, exp, iss),
//     so a client that reads "exp" finds the truth; the server looks tokens
//     up and never checks the signature. Refresh tokens are opaque base64.
//   - Logout answers 200 with an empty body; it needs a live bearer token
//     (an API key has no session to end: 401).
//   - Every 401 has the body UnauthorizedBody, {"message":"Unauthorized"},
//     and "WWW-Authenticate: Bearer"; the real body is not published and the
//     contract does not rely on it. Wrong credentials at authenticate, a
//     dead or reused refresh token, and SetRejectRefresh are 401 too; an
//     unparsable body or a missing field is a 400.
//   - Other errors are JSON {"message":"..."}: 400 for bad paging (a
//     startIndex that is not an integer of 0 or more, a count that is not an
//     integer from 1 to MaxCount) or a bad filter value; 404 for an unknown
//     path or record; 405 with an Allow header for a wrong method. Routing
//     comes first, as in ASP.NET: an unknown path is 404 and a wrong method
//     405 before credentials are looked at. Paths match case-insensitively
//     and with or without one trailing slash (ASP.NET routing; OPSWAT's own
//     scripts write /api/User/authenticate and /api/Storage/all).
//   - Users: both user names and API keys are configured; a zero Options
//     accepts DefaultAPIKey and DefaultUser/DefaultPassword. User names
//     match case-insensitively.
//   - List shape (Options.ListShape): "object" {"items":[...],"total":N}
//     (keys configurable with ListKey and TotalKey) or a bare "array".
//     "total" counts every record that matched. Scans are listed newest
//     StartTime first (ties by id, descending); files in the order they
//     were scanned (scanCompletedTime, then id). A page past the end is an
//     empty list. Pages shift when scans are added between requests, as a
//     live server's do.
//   - The file list also filters on the public KB query parameters scanId,
//     storageId, processingState, result and scanAllResultI (comma-separated
//     lists, each an OR; enums as integers or names); any other parameter is
//     ignored, as ASP.NET ignores unknown ones. Without scanId it lists the
//     files of every scan.
//   - Enums: a scan's status is a name by default (as the webhook spells
//     it), its integer with Options.ScanStatusAsInt (0 InProgress,
//     1 Completed, 2 Cancelled, 3 Failed — the contract's assumption); a
//     file's processingState, result and remediations are integers by
//     default and names with Options.EnumsAsNames. scanType is always an
//     integer.
//   - Times (FormatTime): RFC 3339 UTC; a whole millisecond is written with
//     three digits, any other time with microseconds and trailing zeros
//     trimmed. Generated times are a mix of the three precisions MDSS shows
//     (3, 5 and 6 digits). Options.TimeFormat "epoch_ms"/"epoch_s" renders
//     REST times as numbers instead. A scan in progress has "stopTime":null.
//   - A file's overall result is under scanResult.scanResults (with
//     totalAvs and scanDetails, one entry per engine), or at the top level
//     with Options.FlatResult.
//   - Webhooks are sent when a scan finishes: one FileScanned per file
//     (Options.WebhookFileFilter "all", or "blocked": Result Blocked only),
//     then one ScanCompleted, in that order, each once, without retries,
//     with Options.WebhookHeaders; every attempt and its status is kept
//     (Webhooks). Real MDSS likely sends FileScanned as each file finishes;
//     sending them at the end of the scan keeps a test's expectations
//     simple. RemediationResult is each remediation's name with ": Applied",
//     or "AllowedKept: Applied"/"BlockedKept: Applied" when there was none
//     (the vendor's example). Deliveries keep their order across concurrent
//     Ticks; Tick and AddScan return once theirs are done.
//
// # Records
//
// Scans run on a few storages (Options.Storages). A generated scan is
// Scheduled (70%) or Instant, runs from a tenth of Options.MaxScanDuration
// to all of it, and finishes Completed (80%), Cancelled (10%) or Failed
// (10%). While it runs, its files appear in the lists as their
// scanCompletedTime passes; totalFiles, blockedFiles and infectedFiles count
// the files shown. Most files are Allowed with result 0 (No Threat Detected),
// some with 7, 10 or 23. A file is a threat with probability
// Options.ThreatRate; a threat is Blocked with Core result 1, 2, 8, 18, 20,
// 21 or 22, except two edge cases a client must get right: Allowed with 20
// (sensitive data the workflow lets through; still an mdss.file event by its
// code) and Blocked with 12 (an encrypted archive; an event because it is
// Blocked). Engines name threats (scanDetails[].threatFound) for 1, 2 and
// 22; the other codes come from Core's other checks, so no engine names
// one. Blocked files carry a Blocked remediation. The last clean file of a
// Cancelled scan is Canceled (processingState 2, result code 19) and of a
// Failed scan Failed (1, code 3, with ExceptionDetails); both are Allowed.
//
// Everything is repeatable given Options.Seed and the sequence of calls and
// clock readings: ids are UUIDv7 (as MDSS 4.x uses) made from the record's
// time and the seeded source. AddScan adds a scan as a test describes it;
// Generate starts generated scans now; Backfill adds history; Tick moves
// running scans on to the clock (Options.Now, for which Clock is a manual
// clock); StartGenerator does Tick and Generate on a timer for cmd/mdsim.
// Scans, Files, FinishedScans and ThreatFiles tell a test what a client
// should deliver.
//
// # Faults
//
// SetFaults injects what a client meets in the field: latency, 503s with a
// text body (at a rate or for the next N requests), nginx's HTML 502, a
// huge valid body, a body cut short (with an honest Content-Length or with
// the connection dropped), and requests that never get an answer.
// ExpireTokens, ExpireAccessTokens, SetRejectRefresh and SetAPIKey drive the
// authentication paths; Authentications, Refreshes, Logouts and
// Unauthorized count them.
package mdsstest
