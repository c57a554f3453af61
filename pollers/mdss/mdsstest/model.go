package mdsstest

import (
	"encoding/json"
	"strconv"
	"time"
)

// ScanStatus is the state of a scan. Its integer values are the contract's
// assumption (0 InProgress, 1 Completed, 2 Cancelled, 3 Failed); its names
// are the ones the ScanCompleted webhook publishes.
type ScanStatus int

// The scan states.
const (
	// ScanInProgress is a scan that has not finished.
	ScanInProgress ScanStatus = iota
	// ScanCompleted is a scan that went through every file.
	ScanCompleted
	// ScanCancelled is a scan stopped by a user.
	ScanCancelled
	// ScanFailed is a scan that ended in an error.
	ScanFailed
)

var scanStatusNames = [...]string{"InProgress", "Completed", "Cancelled", "Failed"}

// String returns the status's name ("Completed"), or its number when it has
// none.
func (s ScanStatus) String() string {
	if s >= 0 && int(s) < len(scanStatusNames) {
		return scanStatusNames[s]
	}
	return strconv.Itoa(int(s))
}

// Finished reports whether s is one of the final states.
func (s ScanStatus) Finished() bool {
	return s == ScanCompleted || s == ScanCancelled || s == ScanFailed
}

// ProcessingState is a file's "processingState" (public: KB "advanced file
// API filtering").
type ProcessingState int

// The processing states.
const (
	// StateInProgress is a file still being processed.
	StateInProgress ProcessingState = iota
	// StateFailed is a file whose processing failed.
	StateFailed
	// StateCanceled is a file whose processing was canceled (one "l", as
	// MDSS spells it for files).
	StateCanceled
	// StateAvailable is a file whose result is available.
	StateAvailable
)

var stateNames = [...]string{"InProgress", "Failed", "Canceled", "Available"}

// String returns the state's name ("Available"), or its number.
func (p ProcessingState) String() string {
	if p >= 0 && int(p) < len(stateNames) {
		return stateNames[p]
	}
	return strconv.Itoa(int(p))
}

// Result is a file's MDSS verdict, "result" (public, same KB page).
type Result int

// The verdicts.
const (
	// ResultAllowed is a file MDSS let through.
	ResultAllowed Result = iota
	// ResultBlocked is a file MDSS blocked.
	ResultBlocked
	// ResultProcessing is a file without a verdict yet.
	ResultProcessing
)

var resultNames = [...]string{"Allowed", "Blocked", "Processing"}

// String returns the verdict's name ("Blocked"), or its number.
func (r Result) String() string {
	if r >= 0 && int(r) < len(resultNames) {
		return resultNames[r]
	}
	return strconv.Itoa(int(r))
}

// Remediation is an action MDSS took on a file (public, same KB page).
type Remediation int

// The remediations.
const (
	RemediationTagging             Remediation = 0   // Tagging
	RemediationDeepCdrSanitization Remediation = 1   // DeepCdrSanitization
	RemediationDeepCdrDelete       Remediation = 2   // DeepCdrDelete
	RemediationDeepCdrEncrypt      Remediation = 3   // DeepCdrEncrypt
	RemediationDeepCdrKeep         Remediation = 4   // DeepCdrKeep
	RemediationAllowedMoved        Remediation = 5   // AllowedMoved
	RemediationBlockedMoved        Remediation = 6   // BlockedMoved
	RemediationBlockedDelete       Remediation = 7   // BlockedDelete
	RemediationSanitizedMoved      Remediation = 8   // SanitizedMoved
	RemediationAllowedCopied       Remediation = 9   // AllowedCopied
	RemediationBlockedCopied       Remediation = 10  // BlockedCopied
	RemediationSanitizedCopied     Remediation = 11  // SanitizedCopied
	RemediationSoftDelete          Remediation = 100 // SoftDelete
)

var remediationNames = map[Remediation]string{
	0: "Tagging", 1: "DeepCdrSanitization", 2: "DeepCdrDelete", 3: "DeepCdrEncrypt", 4: "DeepCdrKeep",
	5: "AllowedMoved", 6: "BlockedMoved", 7: "BlockedDelete", 8: "SanitizedMoved", 9: "AllowedCopied",
	10: "BlockedCopied", 11: "SanitizedCopied", 100: "SoftDelete",
}

// String returns the remediation's name ("BlockedMoved"), or its number.
func (r Remediation) String() string {
	if n, ok := remediationNames[r]; ok {
		return n
	}
	return strconv.Itoa(int(r))
}

// Scan types (public, KB "advanced file API filtering").
const (
	// ScanTypeInstant is an on-demand scan.
	ScanTypeInstant = 0
	// ScanTypeScheduled is a scan started by a schedule.
	ScanTypeScheduled = 1
	// ScanTypeRealTime is real-time processing.
	ScanTypeRealTime = 2
)

// ThreatResults are the MetaDefender Core result codes that make a file an
// mdss.file event even when MDSS allowed it: the contract's default
// threat_results (infected, suspicious, blocklisted, potentially vulnerable,
// sensitive data, YARA match, potentially unwanted).
var ThreatResults = []int{1, 2, 8, 18, 20, 21, 22}

// coreResultNames are MetaDefender Core's scan_all_result_a for each
// scan_all_result_i (research §3, newer spellings for 7 and 8).
var coreResultNames = map[int]string{
	0: "No Threat Detected", 1: "Infected", 2: "Suspicious", 3: "Failed", 4: "Cleaned / Deleted",
	7: "Allowlisted", 8: "Blocklisted", 9: "Exceeded Archive Depth", 10: "Not Scanned",
	12: "Encrypted Archive", 13: "Exceeded Archive Size", 14: "Exceeded Archive File Number",
	15: "Password Protected Document", 16: "Exceeded Archive Timeout", 17: "File type Mismatch",
	18: "Potentially Vulnerable File", 19: "Canceled", 20: "Sensitive data found", 21: "Yara Rule Matched",
	22: "Potentially Unwanted Program", 23: "Unsupported file type", 255: "In Progress",
}

// CoreResultName returns MetaDefender Core's name for a result code
// ("Infected" for 1), or "" for a code it does not know.
func CoreResultName(code int) string { return coreResultNames[code] }

// IsThreat reports whether f becomes an mdss.file event under the contract's
// defaults: it is Blocked, or its result code is in ThreatResults.
func IsThreat(f File) bool {
	if f.Result == ResultBlocked {
		return true
	}
	for _, c := range ThreatResults {
		if f.ScanAllResultI == c {
			return true
		}
	}
	return false
}

// Storage is a storage unit that scans run on.
type Storage struct {
	// ID is the storage's id; default a UUID made from Name.
	ID string
	// Name is the storage's name, as scans and files carry it.
	Name string
}

// Scan is a snapshot of one scan, as the fake knows it.
type Scan struct {
	// ID is the scan's id (a UUIDv7, as MDSS 4.x uses).
	ID string
	// Name is the scan's name.
	Name string
	// Status is the scan's state.
	Status ScanStatus
	// ScanType is one of the ScanType constants.
	ScanType int
	// StorageID and StorageName name the storage scanned.
	StorageID, StorageName string
	// StartTime is when the scan started.
	StartTime time.Time
	// StopTime is when it finished; zero while it is in progress.
	StopTime time.Time
	// TotalFiles counts the files processed so far (all, once finished).
	TotalFiles int
	// BlockedFiles counts those Blocked, InfectedFiles those whose result
	// code is 1 (Infected).
	BlockedFiles, InfectedFiles int
}

// EngineResult is one anti-malware engine's verdict on a file, an entry of
// scanResult.scanResults.scanDetails.
type EngineResult struct {
	// EngineName is the engine's display name ("Ahnlab").
	EngineName string
	// EngID is the engine's id ("ahnlab_1_linux").
	EngID string
	// ThreatFound is the threat's name, "" when the engine found none.
	ThreatFound string
	// ScanResultI is the engine's Core result code.
	ScanResultI int
	// DefTime is the time of the engine's definitions.
	DefTime time.Time
	// ScanTime is how long the engine took, in milliseconds.
	ScanTime int
}

// File is one processed file of a scan.
type File struct {
	// ID is the file's id (a UUIDv7).
	ID string
	// ScanID is the scan that processed it.
	ScanID string
	// StorageID and StorageName name the storage it is on.
	StorageID, StorageName string
	// Name is the file's name, Path its path in the storage.
	Name, Path string
	// Size is in bytes.
	Size int64
	// MD5, SHA1 and SHA256 are lower-case hex digests.
	MD5, SHA1, SHA256 string
	// ProcessingState is how far MDSS got with the file.
	ProcessingState ProcessingState
	// Result is MDSS's verdict.
	Result Result
	// ScanCompletedTime is when the file's scan completed.
	ScanCompletedTime time.Time
	// Remediations are the actions taken, in order.
	Remediations []Remediation
	// ScanAllResultI is MetaDefender Core's overall result code and
	// ScanAllResultA its name.
	ScanAllResultI int
	ScanAllResultA string
	// Engines are the per-engine verdicts; TotalAvs == len(Engines).
	Engines []EngineResult
	// TotalAvs is how many engines scanned the file.
	TotalAvs int
	// WorkflowName is the workflow the FileScanned webhook names.
	WorkflowName string
	// ExceptionDetails is the error of a failed file, "" otherwise.
	ExceptionDetails string
}

// Threats returns the distinct threat names the engines found, in engine
// order.
func (f File) Threats() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range f.Engines {
		if e.ThreatFound != "" && !seen[e.ThreatFound] {
			seen[e.ThreatFound] = true
			out = append(out, e.ThreatFound)
		}
	}
	return out
}

// timeFormat says how record times are rendered.
type timeFormat int

const (
	tfRFC3339 timeFormat = iota
	tfEpochMS
	tfEpochS
)

// FormatTime renders t the way MDSS does in its REST answers and webhooks:
// RFC 3339 in UTC with "Z", three fractional digits when t is a whole
// millisecond ("2026-11-23T08:00:00.120Z", as Core's defTime), otherwise
// microseconds with trailing zeros trimmed ("...:20.12684Z",
// "...:14.953181Z", as the webhooks). The generator makes times of all
// three kinds, so a client meets 3, 5 and 6 digits (and sometimes fewer).
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	return t.Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z")
}

// formatMillis renders t with exactly three fractional digits, as the token
// expiry times are.
func formatMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// render is how one server renders records.
type render struct {
	tf           timeFormat
	fileNames    bool // file enums as names
	scanStatusNo bool // scan status as its integer
	flat         bool // scanAllResultI/A at the top level, no scanResult
}

func (rd *render) time(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	switch rd.tf {
	case tfEpochMS:
		return t.UnixMilli()
	case tfEpochS:
		return t.Unix()
	}
	return FormatTime(t)
}

func (rd *render) fileEnum(n int, name string) any {
	if rd.fileNames {
		return name
	}
	return n
}

type scanJSON struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Status        any    `json:"status"`
	ScanType      int    `json:"scanType"`
	StorageID     string `json:"storageId"`
	StorageName   string `json:"storageName"`
	StartTime     any    `json:"startTime"`
	StopTime      any    `json:"stopTime"`
	TotalFiles    int    `json:"totalFiles"`
	BlockedFiles  int    `json:"blockedFiles"`
	InfectedFiles int    `json:"infectedFiles"`
}

func (rd *render) scan(sc *Scan) scanJSON {
	var st any = sc.Status.String()
	if rd.scanStatusNo {
		st = int(sc.Status)
	}
	return scanJSON{
		ID: sc.ID, Name: sc.Name, Status: st, ScanType: sc.ScanType,
		StorageID: sc.StorageID, StorageName: sc.StorageName,
		StartTime: rd.time(sc.StartTime), StopTime: rd.time(sc.StopTime),
		TotalFiles: sc.TotalFiles, BlockedFiles: sc.BlockedFiles, InfectedFiles: sc.InfectedFiles,
	}
}

type engineJSON struct {
	EngineName  string `json:"engineName"`
	ThreatFound string `json:"threatFound"`
	ScanResultI int    `json:"scanResultI"`
	DefTime     any    `json:"defTime"`
	ScanTime    int    `json:"scanTime"`
	EngID       string `json:"engId"`
}

type scanResultsJSON struct {
	ScanAllResultI int          `json:"scanAllResultI"`
	ScanAllResultA string       `json:"scanAllResultA"`
	TotalAvs       int          `json:"totalAvs"`
	ScanDetails    []engineJSON `json:"scanDetails"`
}

type fileJSON struct {
	ID                string `json:"id"`
	ScanID            string `json:"scanId"`
	StorageID         string `json:"storageId"`
	StorageName       string `json:"storageName"`
	Name              string `json:"name"`
	Path              string `json:"path"`
	Size              int64  `json:"size"`
	MD5               string `json:"md5"`
	SHA1              string `json:"sha1"`
	SHA256            string `json:"sha256"`
	ProcessingState   any    `json:"processingState"`
	Result            any    `json:"result"`
	ScanCompletedTime any    `json:"scanCompletedTime"`
	Remediations      []any  `json:"remediations"`
	// Flat (Options.FlatResult) puts the overall result here instead of
	// under scanResult.
	ScanAllResultI *int    `json:"scanAllResultI,omitempty"`
	ScanAllResultA *string `json:"scanAllResultA,omitempty"`
	TotalAvs       *int    `json:"totalAvs,omitempty"`
	ScanResult     *struct {
		ScanResults scanResultsJSON `json:"scanResults"`
	} `json:"scanResult,omitempty"`
}

func (rd *render) file(f *File) fileJSON {
	out := fileJSON{
		ID: f.ID, ScanID: f.ScanID, StorageID: f.StorageID, StorageName: f.StorageName,
		Name: f.Name, Path: f.Path, Size: f.Size, MD5: f.MD5, SHA1: f.SHA1, SHA256: f.SHA256,
		ProcessingState:   rd.fileEnum(int(f.ProcessingState), f.ProcessingState.String()),
		Result:            rd.fileEnum(int(f.Result), f.Result.String()),
		ScanCompletedTime: rd.time(f.ScanCompletedTime),
		Remediations:      make([]any, len(f.Remediations)),
	}
	for i, r := range f.Remediations {
		out.Remediations[i] = rd.fileEnum(int(r), r.String())
	}
	if rd.flat {
		i, a, n := f.ScanAllResultI, f.ScanAllResultA, f.TotalAvs
		out.ScanAllResultI, out.ScanAllResultA, out.TotalAvs = &i, &a, &n
		return out
	}
	res := scanResultsJSON{ScanAllResultI: f.ScanAllResultI, ScanAllResultA: f.ScanAllResultA,
		TotalAvs: f.TotalAvs, ScanDetails: make([]engineJSON, len(f.Engines))}
	for i, e := range f.Engines {
		res.ScanDetails[i] = engineJSON{EngineName: e.EngineName, ThreatFound: e.ThreatFound,
			ScanResultI: e.ScanResultI, DefTime: rd.time(e.DefTime), ScanTime: e.ScanTime, EngID: e.EngID}
	}
	out.ScanResult = &struct {
		ScanResults scanResultsJSON `json:"scanResults"`
	}{res}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("mdsstest: " + err.Error())
	}
	return b
}
