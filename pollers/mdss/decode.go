package mdss

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Scan statuses (README: a string, or 0 InProgress, 1 Completed, 2 Cancelled,
// 3 Failed — the integers are an assumption).
const (
	StatusInProgress = "InProgress"
	StatusCompleted  = "Completed"
	StatusCancelled  = "Cancelled"
	StatusFailed     = "Failed"
)

// File verdicts (MDSS `result`: 0 Allowed, 1 Blocked, 2 Processing).
const (
	VerdictAllowed    = "Allowed"
	VerdictBlocked    = "Blocked"
	VerdictProcessing = "Processing"
)

var scanStatusByNumber = []string{StatusInProgress, StatusCompleted, StatusCancelled, StatusFailed}

var scanStatusByName = map[string]string{
	"inprogress": StatusInProgress, "in progress": StatusInProgress, "in_progress": StatusInProgress,
	"completed": StatusCompleted,
	"cancelled": StatusCancelled, "canceled": StatusCancelled,
	"failed": StatusFailed,
}

var verdictByNumber = []string{VerdictAllowed, VerdictBlocked, VerdictProcessing}

// coreResults names MetaDefender Core's result codes (research Part 3).
var coreResults = map[int]string{
	0: "No Threat Detected", 1: "Infected", 2: "Suspicious", 3: "Failed", 4: "Cleaned / Deleted",
	7: "Allowlisted", 8: "Blocklisted", 9: "Exceeded Archive Depth", 10: "Not Scanned",
	12: "Encrypted Archive", 13: "Exceeded Archive Size", 14: "Exceeded Archive File Number",
	15: "Password Protected Document", 16: "Exceeded Archive Timeout", 17: "File Type Mismatch",
	18: "Potentially Vulnerable File", 19: "Canceled", 20: "Sensitive Data Found",
	21: "Yara Rule Matched", 22: "Potentially Unwanted Program", 23: "Unsupported File Type",
	255: "In Progress",
}

// coreResultCodes maps the normalised spellings of Core result names
// (webhooks carry the name only) back to their codes.
var coreResultCodes = func() map[string]int {
	m := map[string]int{}
	for code, name := range coreResults {
		m[normName(name)] = code
	}
	for name, code := range map[string]int{
		"threat detected": 0, "no threat": 0, "clean": 0, "cleaned": 4, "deleted": 4, "cleaned/deleted": 4,
		"whitelisted": 7, "scan skipped - whitelisted": 7, "scan skipped - allowlisted": 7,
		"blacklisted": 8, "scan skipped - blacklisted": 8, "scan skipped - blocklisted": 8,
		"mismatch": 17, "cancelled": 19, "sensitive data": 20, "yara match": 21, "yara rule match": 21,
		"potentially unwanted": 22, "pua": 22, "inprogress": 255,
	} {
		m[normName(name)] = code
	}
	return m
}()

// remediationNames names MDSS remediation codes (KB "advanced file API
// filtering", research §2.3).
var remediationNames = map[int]string{
	0: "Tagging", 1: "DeepCdrSanitization", 2: "DeepCdrDelete", 3: "DeepCdrEncrypt", 4: "DeepCdrKeep",
	5: "AllowedMoved", 6: "BlockedMoved", 7: "BlockedDelete", 8: "SanitizedMoved", 9: "AllowedCopied",
	10: "BlockedCopied", 11: "SanitizedCopied", 100: "SoftDelete",
}

func normName(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// enumText reads an enum given as an integer (a number or a numeric string)
// or a name. names maps normalised names to canonical ones; byNumber maps
// integers. It returns the canonical name and whether it was recognised; an
// unrecognised value comes back as its text (a number as its digits).
func enumText(r gjson.Result, byNumber []string, names map[string]string) (string, bool, error) {
	switch r.Type {
	case gjson.Number, gjson.String:
	case gjson.Null:
		return "", false, nil
	default:
		if !r.Exists() {
			return "", false, nil
		}
		return "", false, fmt.Errorf("is %s, not an integer or a name", typeName(r))
	}
	if n, ok := pipeline.Int(r); ok {
		if n >= 0 && n < len(byNumber) {
			return byNumber[n], true, nil
		}
		return strconv.Itoa(n), false, nil
	}
	if r.Type == gjson.Number {
		return "", false, fmt.Errorf("is %s, not an integer or a name", r.Raw)
	}
	s := strings.TrimSpace(r.Str)
	if s == "" {
		return "", false, nil
	}
	if c, ok := names[normName(s)]; ok {
		return c, true, nil
	}
	return s, false, nil
}

// ScanStatus reads a scan status given as an integer or a name and returns
// its canonical name (StatusCompleted, ...) and whether it is one of the
// four known statuses.
func ScanStatus(r gjson.Result) (string, bool, error) {
	return enumText(r, scanStatusByNumber, scanStatusByName)
}

// Finished reports whether a canonical scan status is a final one
// (Completed, Cancelled or Failed).
func Finished(status string) bool {
	return status == StatusCompleted || status == StatusCancelled || status == StatusFailed
}

var verdictByName = map[string]string{"allowed": VerdictAllowed, "blocked": VerdictBlocked, "processing": VerdictProcessing}

// FileVerdict reads a file's MDSS result (0 Allowed, 1 Blocked, 2
// Processing, or the name) and returns its canonical name and whether it is
// one of those three.
func FileVerdict(r gjson.Result) (string, bool, error) {
	return enumText(r, verdictByNumber, verdictByName)
}

// CoreResultName returns the name of a MetaDefender Core result code, or ""
// when the code is not known.
func CoreResultName(code int) string { return coreResults[code] }

// CoreResultCode returns the code of a Core result name ("Infected",
// "No Threat Detected", ...; case and spacing do not matter).
func CoreResultCode(name string) (int, bool) {
	c, ok := coreResultCodes[normName(strings.TrimPrefix(strings.TrimSpace(name), "Scan Skipped - "))]
	if !ok {
		c, ok = coreResultCodes[normName(name)]
	}
	return c, ok
}

// FileSeverity maps a file's Core result code and verdict to a severity and
// score (EVENTS.md): 1 Infected, 8 Blocklisted, 21 YARA → high 8;
// 2 Suspicious, 18 Potentially vulnerable, 20 Sensitive data → medium 5;
// 22 Potentially unwanted → low 3; blocked for any other reason → low 3;
// otherwise info 1. code is nil when the result code is unknown.
func FileSeverity(code *int, verdict string) (string, int) {
	if code != nil {
		switch *code {
		case 1, 8, 21:
			return pipeline.SeverityHigh, 8
		case 2, 18, 20:
			return pipeline.SeverityMedium, 5
		case 22:
			return pipeline.SeverityLow, 3
		}
	}
	if verdict == VerdictBlocked {
		return pipeline.SeverityLow, 3
	}
	return pipeline.SeverityInfo, 1
}

// ScanSeverity maps a finished scan to a severity and score (EVENTS.md):
// Failed → medium 5; Completed with infected files → high 7; otherwise
// info 1. infected is nil when the count is unknown.
func ScanSeverity(status string, infected *int64) (string, int) {
	switch {
	case status == StatusFailed:
		return pipeline.SeverityMedium, 5
	case status == StatusCompleted && infected != nil && *infected > 0:
		return pipeline.SeverityHigh, 7
	}
	return pipeline.SeverityInfo, 1
}

// dotNetZero is how .NET writes an unset DateTime; MDSS is a .NET service.
var dotNetZero = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseTime reads an MDSS time: RFC 3339 with any number of fractional
// digits (3, 5 and 6 are seen), or epoch seconds or milliseconds. A missing
// or null value, an empty string and .NET's unset DateTime
// (0001-01-01T00:00:00) give pipeline.ErrNoTime.
func ParseTime(r gjson.Result) (time.Time, error) {
	t, err := pipeline.ParseTime(r)
	if err != nil {
		return time.Time{}, err
	}
	if !t.After(dotNetZero) {
		return time.Time{}, pipeline.ErrNoTime
	}
	return t, nil
}

// count reads a non-negative count or size given as a number or a numeric
// string. ok is false when the value is missing or null.
func count(r gjson.Result) (int64, bool, error) {
	switch r.Type {
	case gjson.Null:
		return 0, false, nil
	case gjson.Number:
		if r.Num >= 0 && r.Num == math.Trunc(r.Num) && r.Num < 1<<53 {
			return int64(r.Num), true, nil
		}
		return 0, false, fmt.Errorf("is %.40s, not a count", r.Raw)
	case gjson.String:
		s := strings.TrimSpace(r.Str)
		if s == "" {
			return 0, false, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			return n, true, nil
		}
		return 0, false, errors.New("is a string that is not a count")
	}
	if !r.Exists() {
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("is %s, not a count", typeName(r))
}

// text reads a scalar as a string; objects and arrays are a wrong type.
func text(r gjson.Result) (string, error) {
	if r.IsObject() || r.IsArray() {
		return "", fmt.Errorf("is %s, not a string", typeName(r))
	}
	return strings.TrimSpace(pipeline.Str(r)), nil
}

func typeName(r gjson.Result) string {
	switch {
	case r.IsObject():
		return "an object"
	case r.IsArray():
		return "an array"
	case r.Type == gjson.True || r.Type == gjson.False:
		return "a boolean"
	case r.Type == gjson.Number:
		return "a number"
	case r.Type == gjson.String:
		return "a string"
	case r.Type == gjson.Null:
		return "null"
	}
	return "missing"
}

// decoder reads scan and file records with the field tables of one source
// (defaults merged with its `fields` overrides).
type decoder struct {
	scan, file *pipeline.Extractor
	// where names the override key in messages: "sources.NAME.fields".
	where string
}

func newDecoder(instance string, overrides map[string]map[string]string) *decoder {
	return &decoder{
		scan:  pipeline.NewExtractor(scanFields.Merge(overrides[StreamScans])),
		file:  pipeline.NewExtractor(fileFields.Merge(overrides[StreamFiles])),
		where: "sources." + instance + ".fields",
	}
}

// defaultDecoder has the built-in tables only; pushed payloads use it.
var defaultDecoder = newDecoder("<instance>", nil)

// FieldError is a record field that is missing where it is required, or
// holds a value of the wrong type. It names the field, the paths looked at
// and the override key that moves it.
type FieldError struct {
	Record   string // "scan" or "file"
	Key      string // the record's id, when known
	Field    string // the field name in the fields table
	Paths    []string
	Override string // e.g. sources.storage.fields.scans.time
	Err      error
}

// Error implements error, naming the field, its paths and the override key.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Record)
	if e.Key != "" {
		fmt.Fprintf(&b, " %.80q", e.Key)
	}
	fmt.Fprintf(&b, ": %s (at %s) %v", e.Field, strings.Join(e.Paths, "|"), e.Err)
	if e.Override != "" {
		b.WriteString("; set " + e.Override + " if it is elsewhere")
	}
	return b.String()
}

// Unwrap returns the underlying problem (pipeline.ErrNoTime, ...).
func (e *FieldError) Unwrap() error { return e.Err }

var errMissing = errors.New("is missing")

// values holds one record's extracted fields.
type values struct {
	x      *pipeline.Extractor
	v      []gjson.Result
	record string
	key    string
	where  string
	stream string
	// problems lists optional fields left out for holding a wrong type.
	problems []*FieldError
}

func extract(x *pipeline.Extractor, item gjson.Result, record, where, stream string) *values {
	vs := &values{x: x, v: make([]gjson.Result, x.Len()), record: record, where: where, stream: stream}
	x.Extract(item, vs.v, make([]int, x.Len()))
	return vs
}

func (vs *values) get(field string) gjson.Result {
	if i := vs.x.Index(field); i >= 0 {
		return vs.v[i]
	}
	return gjson.Result{}
}

func (vs *values) fail(field string, err error) *FieldError {
	i := vs.x.Index(field)
	var paths []string
	if i >= 0 {
		paths = vs.x.Paths(i)
	}
	return &FieldError{Record: vs.record, Key: vs.key, Field: field, Paths: paths,
		Override: vs.where + "." + vs.stream + "." + field, Err: err}
}

// optText reads an optional string field; a wrong type leaves it out.
func (vs *values) optText(field string) string {
	s, err := text(vs.get(field))
	if err != nil {
		vs.problems = append(vs.problems, vs.fail(field, err))
	}
	return s
}

// optCount reads an optional count; missing or wrong gives nil.
func (vs *values) optCount(field string) *int64 {
	n, ok, err := count(vs.get(field))
	if err != nil {
		vs.problems = append(vs.problems, vs.fail(field, err))
	}
	if !ok {
		return nil
	}
	return &n
}

// optTime reads an optional time; missing or wrong gives nil.
func (vs *values) optTime(field string) *time.Time {
	t, err := ParseTime(vs.get(field))
	if err != nil {
		if !errors.Is(err, pipeline.ErrNoTime) {
			vs.problems = append(vs.problems, vs.fail(field, err))
		}
		return nil
	}
	return &t
}

// scanRec is one decoded scan.
type scanRec struct {
	ID, Name, Status, Storage string
	// Known says Status is one of the four statuses.
	Known            bool
	Started, Stopped *time.Time
	Files, Blocked   *int64
	Infected         *int64
	Problems         []*FieldError
}

// decodeScan reads a scan record. The id and status are required; the stop
// time is required of a finished scan. Optional fields of a wrong type are
// left out and listed in Problems.
func (d *decoder) decodeScan(item gjson.Result) (*scanRec, error) {
	return decodeScanWith(d.scan, d.where, item)
}

func decodeScanWith(x *pipeline.Extractor, where string, item gjson.Result) (*scanRec, error) {
	if !item.IsObject() {
		return nil, fmt.Errorf("scan record is %s, not an object", typeName(item))
	}
	vs := extract(x, item, "scan", where, StreamScans)
	id, err := text(vs.get(fID))
	if err == nil && id == "" {
		err = errMissing
	}
	if err != nil {
		return nil, vs.fail(fID, err)
	}
	vs.key = id
	s := &scanRec{ID: id}
	st := vs.get(fStatus)
	s.Status, s.Known, err = ScanStatus(st)
	if err == nil && s.Status == "" {
		err = errMissing
	}
	if err != nil {
		return nil, vs.fail(fStatus, err)
	}
	if Finished(s.Status) {
		t, err := ParseTime(vs.get(fTime))
		if err != nil {
			if errors.Is(err, pipeline.ErrNoTime) {
				err = fmt.Errorf("is missing on a %s scan", s.Status)
			}
			return nil, vs.fail(fTime, err)
		}
		s.Stopped = &t
	} else {
		s.Stopped = vs.optTime(fTime)
	}
	s.Name = vs.optText(fName)
	s.Storage = vs.optText(fStorage)
	s.Started = vs.optTime(fStart)
	s.Files = vs.optCount(fFiles)
	s.Blocked = vs.optCount(fBlocked)
	s.Infected = vs.optCount(fInfected)
	s.Problems = vs.problems
	return s, nil
}

// fileRec is one decoded processed file.
type fileRec struct {
	ID, ScanID, Name, Path, Storage string
	MD5, SHA1, SHA256               string
	Size                            *int64
	// Verdict is Allowed, Blocked, Processing, or the unrecognised text.
	Verdict string
	// Code is the Core result code, from scanAllResultI or from the name.
	Code *int
	// Result is the Core result's name.
	Result      string
	Completed   *time.Time
	Threats     []string
	Engines     *pipeline.Engines
	Remediation []string
	Problems    []*FieldError
}

// decodeFile reads a file record. The id is required; every other field of
// a wrong type is left out and listed in Problems, so that one odd field
// never hides a threat.
func (d *decoder) decodeFile(item gjson.Result) (*fileRec, error) {
	return decodeFileWith(d.file, d.where, item)
}

func decodeFileWith(x *pipeline.Extractor, where string, item gjson.Result) (*fileRec, error) {
	if !item.IsObject() {
		return nil, fmt.Errorf("file record is %s, not an object", typeName(item))
	}
	vs := extract(x, item, "file", where, StreamFiles)
	id, err := text(vs.get(fID))
	if err == nil && id == "" {
		err = errMissing
	}
	if err != nil {
		return nil, vs.fail(fID, err)
	}
	vs.key = id
	f := &fileRec{ID: id}
	f.ScanID = vs.optText(fScanID)
	f.Name = vs.optText(fName)
	f.Path = vs.optText(fPath)
	f.Storage = vs.optText(fStorage)
	f.MD5 = vs.optText(fMD5)
	f.SHA1 = vs.optText(fSHA1)
	f.SHA256 = vs.optText(fSHA256)
	f.Size = vs.optCount(fSize)
	if f.Verdict, _, err = FileVerdict(vs.get(fVerdict)); err != nil {
		vs.problems = append(vs.problems, vs.fail(fVerdict, err))
	}
	f.Result = vs.optText(fResult)
	switch rc := vs.get(fResultCode); {
	case rc.Type == gjson.Null || !rc.Exists():
	default:
		if n, ok := pipeline.Int(rc); ok && n >= 0 {
			f.Code = &n
		} else if c, ok := CoreResultCode(pipeline.Str(rc)); ok && rc.Type == gjson.String {
			f.Code = &c // the name where the code was expected
		} else {
			vs.problems = append(vs.problems, vs.fail(fResultCode, fmt.Errorf("is %s, not a result code", typeName(rc))))
		}
	}
	if f.Code == nil && f.Result != "" {
		if c, ok := CoreResultCode(f.Result); ok {
			f.Code = &c
		}
	}
	if f.Result == "" && f.Code != nil {
		f.Result = CoreResultName(*f.Code)
	}
	f.Completed = vs.optTime(fTime)
	total, hasTotal, err := count(vs.get(fEnginesTotal))
	if err != nil {
		vs.problems = append(vs.problems, vs.fail(fEnginesTotal, err))
	}
	if details := vs.get(fEngineDetails); details.Exists() && details.Type != gjson.Null {
		threats, engines, detected, err := readEngines(details)
		if err != nil {
			vs.problems = append(vs.problems, vs.fail(fEngineDetails, err))
		} else {
			f.Threats = threats
			if !hasTotal {
				total = int64(engines)
			}
			f.Engines = &pipeline.Engines{Total: int(total), Detected: detected}
		}
	}
	f.Remediation = vs.readRemediation()
	f.Problems = vs.problems
	return f, nil
}

// readEngines reads scanDetails: an array of {engineName, threatFound,
// scanResultI} (MDSS) or an object keyed by engine name (MetaDefender Core,
// snake_case). It returns the distinct threat names in order, the number of
// engines and how many of them detected something (a threat name, or
// scanResultI 1 Infected or 2 Suspicious).
func readEngines(details gjson.Result) (threats []string, engines, detected int, err error) {
	if !details.IsArray() && !details.IsObject() {
		return nil, 0, 0, fmt.Errorf("is %s, not a list of engine results", typeName(details))
	}
	details.ForEach(func(_, e gjson.Result) bool {
		engines++
		if !e.IsObject() {
			return true
		}
		threat := ""
		for _, k := range []string{"threatFound", "threat_found", "ThreatFound"} {
			if v := e.Get(k); v.Type == gjson.String {
				threat = strings.TrimSpace(v.Str)
				break
			}
		}
		code := -1
		for _, k := range []string{"scanResultI", "scan_result_i", "ScanResultI"} {
			if n, ok := pipeline.Int(e.Get(k)); ok {
				code = n
				break
			}
		}
		if threat != "" || code == 1 || code == 2 {
			detected++
		}
		if threat != "" && !slices.Contains(threats, threat) {
			threats = append(threats, threat)
		}
		return true
	})
	return threats, engines, detected, nil
}

// readRemediation reads remediations: integer codes, names, or webhook
// strings such as "BlockedMoved: Applied" (kept as they are).
func (vs *values) readRemediation() []string {
	r := vs.get(fRemediation)
	if !r.Exists() || r.Type == gjson.Null {
		return nil
	}
	items := []gjson.Result{r}
	if r.IsArray() {
		items = r.Array()
	}
	var out []string
	for _, it := range items {
		switch {
		case it.Type == gjson.Number:
			n, ok := pipeline.Int(it)
			if name, known := remediationNames[n]; ok && known {
				out = append(out, name)
			} else {
				out = append(out, it.Raw)
			}
		case it.Type == gjson.String:
			if s := strings.TrimSpace(it.Str); s != "" {
				if n, err := strconv.Atoi(s); err == nil && remediationNames[n] != "" {
					s = remediationNames[n]
				}
				out = append(out, s)
			}
		case it.Type == gjson.Null:
		default:
			vs.problems = append(vs.problems, vs.fail(fRemediation, fmt.Errorf("holds %s, not a code or a name", typeName(it))))
			return out
		}
	}
	return out
}

// threat reports whether a file is one polling reports: Blocked, or a Core
// result code in threatResults.
func (f *fileRec) threat(threatResults []int) bool {
	return f.Verdict == VerdictBlocked || f.Code != nil && slices.Contains(threatResults, *f.Code)
}

// ScanHash is the content hash of a scan record: over its id and canonical
// status only, the fields a polled scan and a ScanCompleted webhook share.
func ScanHash(id, status string) uint64 {
	return pipeline.ContentHash([]byte("mdss.scan\x00"), []byte(id), []byte{0}, []byte(status))
}

// FileHash is the content hash of a file record: over its canonical verdict
// and Core result (the code when known, else the name) only, the fields a
// polled file and a FileScanned webhook share.
func FileHash(verdict string, code *int, result string) uint64 {
	r := "n:" + normName(result)
	if code != nil {
		r = "c:" + strconv.Itoa(*code)
	}
	return pipeline.ContentHash([]byte("mdss.file\x00"), []byte(verdict), []byte{0}, []byte(r))
}
