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
