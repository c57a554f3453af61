package mdss

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Webhook notification types (research §2.7).
const (
	NotificationScanCompleted = "ScanCompleted"
	NotificationFileScanned   = "FileScanned"
)

var (
	// ErrNotThreat is returned (wrapped) by NormalizeFileScanned for a file
	// that polling would not report: allowed, with a result code outside the
	// threat results. A receiver drops such a payload.
	ErrNotThreat = errors.New("not a threat")
	// ErrNotFinished is returned (wrapped) by NormalizeScanCompleted for a
	// scan whose status is not Completed, Cancelled or Failed.
	ErrNotFinished = errors.New("scan not finished")
	// ErrWrongNotification is returned (wrapped) when the payload's
	// WebhookNotificationType is not the one the function reads.
	ErrWrongNotification = errors.New("wrong webhook notification type")
)

// NormalizeScanCompleted turns an MDSS ScanCompleted webhook payload into
// the record polling produces for the same scan: stream StreamID(instance,
// "scans"), Key the scan id, Time the stop time and Hash ScanHash(id,
// status). The event carries the payload as raw. Field names are matched as
// the webhook spells them (PascalCase) or as the REST API does (camelCase).
func NormalizeScanCompleted(instance string, raw []byte) (pipeline.Record, error) {
	return normalizeScanCompleted(instance, "", raw, true)
}

// NormalizeFileScanned turns an MDSS FileScanned webhook payload into the
// record polling produces for the same file: stream StreamID(instance,
// "files"), Key the file id, Hash FileHash(verdict, result). Its Time is the
// payload's ScanCompletedTimeStamp (a webhook does not carry the scan's stop
// time, which orders the polled records), and so is the event's. A file
// that is neither Blocked nor has a result in DefaultThreatResults gives
// ErrNotThreat.
func NormalizeFileScanned(instance string, raw []byte) (pipeline.Record, error) {
	return normalizeFileScanned(instance, "", raw, true, DefaultThreatResults)
}

// NormalizeScanCompleted is the package function with this source's name,
// URL and raw setting.
func (p *Poller) NormalizeScanCompleted(raw []byte) (pipeline.Record, error) {
	return normalizeScanCompleted(p.name, p.publicURL, raw, p.cfg.Raw)
}

// NormalizeFileScanned is the package function with this source's name,
// URL, raw setting and threat_results.
func (p *Poller) NormalizeFileScanned(raw []byte) (pipeline.Record, error) {
	return normalizeFileScanned(p.name, p.publicURL, raw, p.cfg.Raw, p.cfg.ThreatResults)
}

// webhookDoc checks a payload and its notification type.
func webhookDoc(raw []byte, want string) (gjson.Result, error) {
	if !pipeline.ValidJSON(raw) {
		return gjson.Result{}, fmt.Errorf("%s webhook payload is not valid JSON (%d bytes)", want, len(raw))
	}
	doc := gjson.ParseBytes(raw)
	if !doc.IsObject() {
		return gjson.Result{}, fmt.Errorf("%s webhook payload is %s, not an object", want, typeName(doc))
	}
	nt := doc.Get("WebhookNotificationType")
	if !nt.Exists() {
		nt = doc.Get("webhookNotificationType")
	}
	if nt.Exists() && nt.Type != gjson.Null {
		if nt.Type != gjson.String || nt.Str != want {
			return gjson.Result{}, fmt.Errorf("%w: WebhookNotificationType is %.40q, want %s", ErrWrongNotification, pipeline.Str(nt), want)
		}
	}
	return doc, nil
}

func normalizeScanCompleted(instance, publicURL string, raw []byte, keepRaw bool) (pipeline.Record, error) {
	doc, err := webhookDoc(raw, NotificationScanCompleted)
	if err != nil {
		return pipeline.Record{}, err
	}
	sc, err := decodeScanWith(defaultDecoder.scan, "", doc)
	if err != nil {
		return pipeline.Record{}, fmt.Errorf("%s webhook: %w", NotificationScanCompleted, err)
	}
	if !Finished(sc.Status) {
		return pipeline.Record{}, fmt.Errorf("%s webhook: scan %.80q has status %.40q: %w", NotificationScanCompleted, sc.ID, sc.Status, ErrNotFinished)
	}
	raw = append([]byte(nil), raw...)
	id := StreamID(instance, StreamScans)
	ev := scanEvent(sc, instance, id, publicURL)
	if keepRaw {
		ev.Raw = raw
	}
	return pipeline.Record{Key: sc.ID, Time: *sc.Stopped, Hash: ScanHash(sc.ID, sc.Status), Raw: raw, Event: ev}, nil
}

func normalizeFileScanned(instance, publicURL string, raw []byte, keepRaw bool, threatResults []int) (pipeline.Record, error) {
	doc, err := webhookDoc(raw, NotificationFileScanned)
	if err != nil {
		return pipeline.Record{}, err
	}
	f, err := decodeFileWith(defaultDecoder.file, "", doc)
	if err != nil {
		return pipeline.Record{}, fmt.Errorf("%s webhook: %w", NotificationFileScanned, err)
	}
	if !f.threat(threatResults) {
		return pipeline.Record{}, fmt.Errorf("%s webhook: file %.80q (%s, %s): %w", NotificationFileScanned, f.ID, f.Verdict, f.Result, ErrNotThreat)
	}
	if f.Completed == nil {
		return pipeline.Record{}, fmt.Errorf("%s webhook: file %.80q: ScanCompletedTimeStamp is missing or not a time", NotificationFileScanned, f.ID)
	}
	raw = append([]byte(nil), raw...)
	id := StreamID(instance, StreamFiles)
	ev := fileEvent(f, pipeline.Str(doc.Get("ScanName")), *f.Completed, instance, id, publicURL)
	if keepRaw {
		ev.Raw = raw
	}
	return pipeline.Record{Key: f.ID, Time: *f.Completed, Hash: FileHash(f.Verdict, f.Code, f.Result), Raw: raw, Event: ev}, nil
}
