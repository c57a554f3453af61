package mdss_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/pollers/mdss"
	"github.com/mdbridge/mdbridge/pollers/mdss/mdsstest"
)

// TestPushMatchesPoll: for every webhook the fake sends, the pushed record
// has the stream, key and hash of the record polling produces for the same
// scan or file, so the second to arrive is recognised as seen; and a file
// push is refused as not a threat exactly when polling leaves it out.
func TestPushMatchesPoll(t *testing.T) {
	for _, o := range []mdsstest.Options{
		{},
		{EnumsAsNames: true, FlatResult: true},
		{ScanStatusAsInt: true, TimeFormat: "epoch_ms"},
	} {
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		o.WebhookURL = recv.URL
		o.Seed = 21
		o.ThreatRate = 0.4
		srv := mdsstest.NewServer(o)
		for _, outcome := range []mdsstest.ScanStatus{mdsstest.ScanCompleted, mdsstest.ScanCancelled, mdsstest.ScanFailed} {
			srv.AddScan(mdsstest.ScanSpec{Outcome: outcome, Files: 30})
		}
		srv.AddScan(mdsstest.ScanSpec{Files: 10, Threats: []int{1, 2, 8, 12, 18, 20, 21, 22}})

		cfg := baseConfig(srv)
		p, err := mdss.New("storage", cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		polled := map[string]pipeline.Record{}
		sts, _ := p.Streams(context.Background())
		for _, st := range sts {
			b, err := st.Poll(context.Background(), pipeline.Position{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range b.Records {
				polled[st.ID()+"/"+r.Key] = r
			}
		}
		matched, notThreat := 0, 0
		hooks := srv.Webhooks()
		if len(hooks) < 60 {
			t.Fatalf("only %d webhooks", len(hooks))
		}
		for _, h := range hooks {
			var rec pipeline.Record
			var err error
			if h.Type == mdsstest.WebhookScanCompleted {
				rec, err = mdss.NormalizeScanCompleted("storage", h.Body)
			} else {
				rec, err = mdss.NormalizeFileScanned("storage", h.Body)
			}
			stream := ""
			if err == nil {
				stream = rec.Event.Source.Stream
			}
			switch {
			case errors.Is(err, mdss.ErrNotThreat):
				notThreat++
				if _, ok := polled[mdss.StreamID("storage", mdss.StreamFiles)+"/"+h.ID]; ok {
					t.Errorf("push refused %s as not a threat; polling reports it: %s", h.ID, h.Body)
				}
				continue
			case err != nil:
				t.Fatalf("%s: %v", h.Body, err)
			}
			want, ok := polled[stream+"/"+rec.Key]
			if !ok {
				t.Errorf("pushed %s %s has no polled record: %s", stream, rec.Key, h.Body)
				continue
			}
			if rec.Key != want.Key || rec.Hash != want.Hash || stream != want.Event.Source.Stream || rec.Event.Kind != want.Event.Kind {
				t.Errorf("pushed %s differs from polled: key %s/%s hash %x/%x stream %s/%s", h.Body, rec.Key, want.Key, rec.Hash, want.Hash, stream, want.Event.Source.Stream)
			}
			if rec.Event.File != nil {
				pf, wf := rec.Event.File, want.Event.File
				if *pf.ResultCode != *wf.ResultCode || pf.Verdict != wf.Verdict || rec.Event.Severity != want.Event.Severity ||
					!rec.Event.Time.Truncate(time.Millisecond).Equal(want.Event.Time.Truncate(time.Millisecond)) {
					t.Errorf("pushed file %s: %+v %s %s; polled %+v %s %s", rec.Key, pf, rec.Event.Severity, rec.Event.Time, wf, want.Event.Severity, want.Event.Time)
				}
			} else if rec.Event.Scan.Status != want.Event.Scan.Status {
				t.Errorf("pushed scan %s status %s, polled %s", rec.Key, rec.Event.Scan.Status, want.Event.Scan.Status)
			}
			matched++
		}
		if matched != len(polled) {
			t.Errorf("%d pushes matched %d polled records", matched, len(polled))
		}
		if notThreat == 0 {
			t.Error("no push was refused as not a threat")
		}
		t.Logf("%+v: %d webhooks, %d matched, %d not threats", o.TimeFormat, len(hooks), matched, notThreat)
		srv.Close()
		recv.Close()
	}
}

func TestPushErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		file bool
		body string
		is   error
		want string
	}{
		{"not JSON", false, `{"ScanId":`, nil, "not valid JSON"},
		{"array", true, `[1]`, nil, "is an array, not an object"},
		{"wrong type", false, `{"ScanId":"a","Status":"Completed","StopTime":"2026-01-01T00:00:00Z","WebhookNotificationType":"FileScanned"}`, mdss.ErrWrongNotification, "want ScanCompleted"},
		{"not finished", false, `{"ScanId":"a","Status":"InProgress"}`, mdss.ErrNotFinished, `scan "a" has status "InProgress"`},
		{"no stop", false, `{"ScanId":"a","Status":"Completed"}`, nil, "time (at stopTime|StopTime"},
		{"no id", true, `{"FileStatus":"Blocked","ScanCompletedTimeStamp":"2026-01-01T00:00:00Z"}`, nil, "id (at id|fileId|FileId|_id) is missing"},
		{"clean", true, `{"FileId":"f","FileStatus":"Allowed","CoreScanResult":"No Threat Detected","ScanCompletedTimeStamp":"2026-01-01T00:00:00Z"}`, mdss.ErrNotThreat, ""},
		{"no time", true, `{"FileId":"f","FileStatus":"Blocked","CoreScanResult":"Infected"}`, nil, "ScanCompletedTimeStamp is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.file {
				_, err = mdss.NormalizeFileScanned("storage", []byte(tt.body))
			} else {
				_, err = mdss.NormalizeScanCompleted("storage", []byte(tt.body))
			}
			if err == nil || tt.is != nil && !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %v %q", err, tt.is, tt.want)
			}
		})
	}
}

func TestPollerPushUsesConfig(t *testing.T) {
	cfg := mdss.DefaultConfig()
	cfg.URL = "https://mdss.example"
	cfg.APIKey = "k"
	cfg.Raw = false
	cfg.ThreatResults = []int{23}
	p, err := mdss.New("storage", cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"FileId":"f","FileStatus":"Allowed","CoreScanResult":"Unsupported file type","ScanCompletedTimeStamp":"2026-01-01T00:00:00.1234567Z","WebhookNotificationType":"FileScanned"}`)
	rec, err := p.NormalizeFileScanned(body)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Event.Raw != nil || string(rec.Raw) != string(body) || rec.Event.Source.URL != "https://mdss.example" || *rec.Event.File.ResultCode != 23 ||
		rec.Event.Source.Stream != "storage/files" || !rec.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 123456700, time.UTC)) {
		t.Errorf("%+v %+v", rec, rec.Event)
	}
	if _, err := mdss.NormalizeFileScanned("storage", body); !errors.Is(err, mdss.ErrNotThreat) {
		t.Errorf("package function with default threat results: %v", err)
	}
	sc, err := p.NormalizeScanCompleted([]byte(`{"ScanId":"s","ScanName":"n","Status":"Failed","StopTime":"2026-01-01T00:00:00Z"}`))
	if err != nil || sc.Event.Severity != "medium" || sc.Key != "s" || sc.Hash != mdss.ScanHash("s", mdss.StatusFailed) || sc.Event.Raw != nil {
		t.Errorf("%+v %v", sc, err)
	}
}
