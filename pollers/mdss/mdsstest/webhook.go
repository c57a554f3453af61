package mdsstest

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Webhook notification types, as MDSS names them in
// WebhookNotificationType.
const (
	// WebhookScanCompleted is sent when a scan finishes.
	WebhookScanCompleted = "ScanCompleted"
	// WebhookFileScanned is sent for each processed file.
	WebhookFileScanned = "FileScanned"
)

// ScanCompletedNotification is the body of a ScanCompleted webhook, field
// for field as MDSS documents it.
type ScanCompletedNotification struct {
	ScanID                  string `json:"ScanId"`
	ScanName                string `json:"ScanName"`
	StartTime               string `json:"StartTime"`
	StopTime                string `json:"StopTime"`
	Status                  string `json:"Status"`
	WebhookNotificationType string `json:"WebhookNotificationType"`
}

// FileScannedNotification is the body of a FileScanned webhook, field for
// field as MDSS documents it. It carries no scan id.
type FileScannedNotification struct {
	FileID                  string   `json:"FileId"`
	FileName                string   `json:"FileName"`
	FilePath                string   `json:"FilePath"`
	FileStatus              string   `json:"FileStatus"`
	CoreScanResult          string   `json:"CoreScanResult"`
	FileState               string   `json:"FileState"`
	RemediationResult       []string `json:"RemediationResult"`
	ScanCompletedTimeStamp  string   `json:"ScanCompletedTimeStamp"`
	WorkflowName            string   `json:"WorkflowName"`
	Rules                   []string `json:"Rules"`
	ExceptionDetails        string   `json:"ExceptionDetails"`
	RemediationErrors       []string `json:"RemediationErrors"`
	WebhookNotificationType string   `json:"WebhookNotificationType"`
}

// WebhookAttempt is one notification the server tried to deliver.
type WebhookAttempt struct {
	// Type is WebhookFileScanned or WebhookScanCompleted.
	Type string
	// ID is the file's or the scan's id.
	ID string
	// Body is the JSON sent.
	Body []byte
	// Status is the receiver's HTTP status, 0 when none came.
	Status int
	// Err is the transport error, "" when an answer came.
	Err string
	// At is the clock's time (Options.Now) of the attempt.
	At time.Time
}

// Rules is what a FileScanned notification lists under "Rules" (the vendor
// example's value).
var Rules = []string{"MetaDefender Storage Security"}

type webhookConfig struct {
	url     string
	method  string
	headers map[string]string
	blocked bool
	client  *http.Client
	mu      sync.Mutex // guards next
	cond    *sync.Cond
	next    uint64 // the last ticket delivered
}

func (c *webhookConfig) init(o Options) {
	c.url, c.method = o.WebhookURL, strings.ToUpper(orDefault(o.WebhookMethod, "POST"))
	c.blocked, c.client, c.headers = o.WebhookFileFilter == "blocked", o.WebhookClient, map[string]string{}
	for k, v := range o.WebhookHeaders {
		c.headers[k] = v
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	c.cond = sync.NewCond(&c.mu)
}

// notification is one webhook body to send.
type notification struct {
	typ, id string
	body    []byte
}

// ticket is a batch of notifications with its place in the delivery
// order.
type ticket struct {
	n     uint64
	notes []notification
}

// notesLocked builds a finished scan's notifications: FileScanned for each
// file the filter lets through, then ScanCompleted.
func (s *Server) notesLocked(sc *scanRec) []notification {
	if s.wh.url == "" {
		return nil
	}
	var out []notification
	for _, fr := range sc.files {
		f := &fr.f
		if s.wh.blocked && f.Result != ResultBlocked {
			continue
		}
		n := FileScannedNotification{
			FileID: f.ID, FileName: f.Name, FilePath: f.Path, FileStatus: f.Result.String(),
			CoreScanResult: f.ScanAllResultA, FileState: f.ProcessingState.String(),
			RemediationResult:      []string{},
			ScanCompletedTimeStamp: FormatTime(f.ScanCompletedTime), WorkflowName: f.WorkflowName,
			Rules: slices.Clone(Rules), ExceptionDetails: f.ExceptionDetails, RemediationErrors: []string{},
			WebhookNotificationType: WebhookFileScanned,
		}
		for _, r := range f.Remediations {
			n.RemediationResult = append(n.RemediationResult, r.String()+": Applied")
		}
		if len(f.Remediations) == 0 && f.ProcessingState == StateAvailable {
			n.RemediationResult = append(n.RemediationResult, f.Result.String()+"Kept: Applied")
		}
		out = append(out, notification{WebhookFileScanned, f.ID, mustJSON(n)})
	}
	n := ScanCompletedNotification{ScanID: sc.scan.ID, ScanName: sc.scan.Name,
		StartTime: FormatTime(sc.scan.StartTime), StopTime: FormatTime(sc.scan.StopTime),
		Status: sc.scan.Status.String(), WebhookNotificationType: WebhookScanCompleted}
	return append(out, notification{WebhookScanCompleted, sc.scan.ID, mustJSON(n)})
}

// ticketLocked gives notes their place in the delivery order; nil when
// there is nothing to send. s.mu is held.
func (s *Server) ticketLocked(notes []notification) *ticket {
	if len(notes) == 0 {
		return nil
	}
	s.whSeq++
	return &ticket{n: s.whSeq, notes: notes}
}

// deliver sends t's notifications once every earlier ticket is delivered,
// each once (MDSS does not retry), recording every attempt. s.mu is not
// held.
func (s *Server) deliver(t *ticket) {
	if t == nil {
		return
	}
	c := &s.wh
	c.mu.Lock()
	for c.next+1 != t.n {
		c.cond.Wait()
	}
	c.mu.Unlock()
	for _, n := range t.notes {
		s.send(n)
	}
	c.mu.Lock()
	c.next = t.n
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (s *Server) send(n notification) {
	a := WebhookAttempt{Type: n.typ, ID: n.id, Body: n.body, At: s.now()}
	req, err := http.NewRequestWithContext(s.ctx, s.wh.method, s.wh.url, bytes.NewReader(n.body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		for k, v := range s.wh.headers {
			req.Header.Set(k, v)
		}
		var resp *http.Response
		resp, err = s.wh.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			a.Status = resp.StatusCode
		}
	}
	if err != nil {
		a.Err = err.Error()
	}
	s.mu.Lock()
	if s.maxReqs > 0 && len(s.webhooks) >= s.maxReqs {
		keep := s.maxReqs / 2
		s.webhooks = append(s.webhooks[:0], s.webhooks[len(s.webhooks)-keep:]...)
	}
	s.webhooks = append(s.webhooks, a)
	s.mu.Unlock()
}

// Webhooks returns every webhook attempt so far, oldest first.
func (s *Server) Webhooks() []WebhookAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.webhooks)
}
