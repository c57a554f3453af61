// Package pipeline holds mdbridge's common event model, the contracts that
// pollers and sinks implement, field extraction and normalisation helpers, and
// the runner that moves records from pollers through the journal to sinks.
package pipeline

import (
	"encoding/json"
	"time"
)

// Schema is the value of Event.Schema for this version of the event model.
const Schema = "mdbridge.event/v1"

// Event kinds (EVENTS.md).
const (
	KindDeviceAlert   = "ot.device_alert"
	KindConnAlert     = "ot.conn_alert"
	KindSuricataAlert = "ot.suricata_alert"
	KindDevice        = "ot.device"
	KindCVE           = "ot.cve"
	KindPatchRequest  = "ot.patch_request"
	KindMDSSScan      = "mdss.scan"
	KindMDSSFile      = "mdss.file"
	KindHeartbeat     = "bridge.heartbeat"
	ProductOTSecurity = "metadefender-ot-security"
	ProductStorageSec = "metadefender-storage-security"
	SeverityInfo      = "info"
	SeverityLow       = "low"
	SeverityMedium    = "medium"
	SeverityHigh      = "high"
	SeverityCritical  = "critical"
)

// Event is one normalised security event, schema v1. Field meanings are in
// EVENTS.md; blocks that do not apply are nil and left out of the JSON.
type Event struct {
	ID            string            `json:"id"`
	Schema        string            `json:"schema"`
	Kind          string            `json:"kind"`
	Seq           uint64            `json:"seq"`
	Time          time.Time         `json:"time"`
	Observed      time.Time         `json:"observed"`
	Severity      string            `json:"severity"`
	SeverityScore int               `json:"severity_score"`
	Message       string            `json:"message,omitempty"`
	Source        Source            `json:"source"`
	Revision      int               `json:"revision"`
	Changes       map[string]Change `json:"changes,omitempty"`
	Alert         *Alert            `json:"alert,omitempty"`
	Device        *Device           `json:"device,omitempty"`
	Network       *Network          `json:"network,omitempty"`
	Rule          *Rule             `json:"rule,omitempty"`
	Vulnerability *Vulnerability    `json:"vulnerability,omitempty"`
	Patch         *Patch            `json:"patch,omitempty"`
	File          *File             `json:"file,omitempty"`
	Scan          *Scan             `json:"scan,omitempty"`
	Heartbeat     *Heartbeat        `json:"heartbeat,omitempty"`
	Raw           json.RawMessage   `json:"raw,omitempty"`
}

// Source says where an event came from.
type Source struct {
	Product  string `json:"product"`
	Instance string `json:"instance"`
	Stream   string `json:"stream,omitempty"`
	SiteIP   string `json:"site_ip,omitempty"`
	SensorIP string `json:"sensor_ip,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Change is one field's old and new value in a revision.
type Change struct {
	Old any `json:"old"`
	New any `json:"new"`
}

// Alert is the alert block of OT Security alerts.
type Alert struct {
	ID      string     `json:"id,omitempty"`
	Type    string     `json:"type,omitempty"`
	Name    string     `json:"name,omitempty"`
	Status  string     `json:"status,omitempty"`
	Started *time.Time `json:"started,omitempty"`
	Ended   *time.Time `json:"ended,omitempty"`
	Reason  string     `json:"reason,omitempty"`
}

// Device is the device block.
type Device struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name,omitempty"`
	IP          string `json:"ip,omitempty"`
	MAC         string `json:"mac,omitempty"`
	Vendor      string `json:"vendor,omitempty"`
	Model       string `json:"model,omitempty"`
	Type        string `json:"type,omitempty"`
	Firmware    string `json:"firmware,omitempty"`
	OS          string `json:"os,omitempty"`
	PurdueLevel string `json:"purdue_level,omitempty"`
	Site        string `json:"site,omitempty"`
	Action      string `json:"action,omitempty"`
}

// Network is the network block.
type Network struct {
	SrcIP     string `json:"src_ip,omitempty"`
	SrcPort   int    `json:"src_port,omitempty"`
	SrcMAC    string `json:"src_mac,omitempty"`
	DstIP     string `json:"dst_ip,omitempty"`
	DstPort   int    `json:"dst_port,omitempty"`
	DstMAC    string `json:"dst_mac,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Transport string `json:"transport,omitempty"`
}

// Rule is the detection rule block (Suricata signatures).
type Rule struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Category string `json:"category,omitempty"`
}

// Vulnerability is the vulnerability block.
type Vulnerability struct {
	CVE         string   `json:"cve,omitempty"`
	CVSS        *float64 `json:"cvss,omitempty"`
	CVSSVector  string   `json:"cvss_vector,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Patch is the patch-request block of OT Security patch requests.
type Patch struct {
	ID           string `json:"id,omitempty"`
	Status       string `json:"status,omitempty"`
	Device       string `json:"device,omitempty"`
	FirmwareFrom string `json:"firmware_from,omitempty"`
	FirmwareTo   string `json:"firmware_to,omitempty"`
	RequestedBy  string `json:"requested_by,omitempty"`
}

// Scan is the scan block of Storage Security events. On an mdss.file event
// only ID and Name are set. The counts are pointers so that an unknown
// count is left out rather than reported as zero.
type Scan struct {
	ID       string     `json:"id,omitempty"`
	Name     string     `json:"name,omitempty"`
	Status   string     `json:"status,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Stopped  *time.Time `json:"stopped,omitempty"`
	Storage  string     `json:"storage,omitempty"`
	Files    *int64     `json:"files,omitempty"`
	Blocked  *int64     `json:"blocked,omitempty"`
	Infected *int64     `json:"infected,omitempty"`
}

// File is the file block of mdss.file events.
type File struct {
	ID          string   `json:"id,omitempty"`
	Name        string   `json:"name,omitempty"`
	Path        string   `json:"path,omitempty"`
	Size        *int64   `json:"size,omitempty"`
	MD5         string   `json:"md5,omitempty"`
	SHA1        string   `json:"sha1,omitempty"`
	SHA256      string   `json:"sha256,omitempty"`
	Verdict     string   `json:"verdict,omitempty"`
	ResultCode  *int     `json:"result_code,omitempty"`
	Result      string   `json:"result,omitempty"`
	Threats     []string `json:"threats,omitempty"`
	Engines     *Engines `json:"engines,omitempty"`
	Remediation []string `json:"remediation,omitempty"`
}

// Engines counts the anti-malware engines that scanned a file and those
// that found something.
type Engines struct {
	Total    int `json:"total"`
	Detected int `json:"detected"`
}

// Heartbeat is the block of bridge.heartbeat events: what one stream did in
// one period.
type Heartbeat struct {
	PolledUntil *time.Time `json:"polled_until,omitempty"`
	Records     int        `json:"records"`
	Events      int        `json:"events"`
	Gaps        int        `json:"gaps"`
	LastError   string     `json:"last_error,omitempty"`
}

// MarshalEvent encodes e as one line of schema-v1 JSON (no trailing newline).
func MarshalEvent(e *Event) ([]byte, error) {
	return AppendEvent(nil, e)
}

// UnmarshalEvent decodes schema-v1 JSON produced by MarshalEvent.
func UnmarshalEvent(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
