package mdss

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// scanStream emits one mdss.scan event per finished scan.
type scanStream struct {
	p     *Poller
	id    string
	notes notes
}

// ID implements pipeline.Stream.
func (s *scanStream) ID() string { return s.id }

// Poll implements pipeline.Stream: every finished scan whose stop time is
// at or after the position's floor, oldest first.
func (s *scanStream) Poll(ctx context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	scans, gap, err := s.p.finishedScans(ctx, pos.Floor, &s.notes)
	if err != nil {
		return pipeline.Batch{}, err
	}
	recs := make([]pipeline.Record, 0, len(scans))
	for _, sc := range scans {
		recs = append(recs, s.p.scanRecord(sc.rec, sc.raw, s.id))
	}
	s.notes.flush(s.p, s.id)
	return pipeline.Batch{Records: recs, Gap: gap}, nil
}

// scanItem is a decoded scan with its raw record.
type scanItem struct {
	rec *scanRec
	raw []byte
}

// finishedScans lists the scans, keeps the finished ones that stopped at or
// after floor (once per id), and returns them oldest first. Broken records
// and unknown statuses are noted in n.
func (p *Poller) finishedScans(ctx context.Context, floor time.Time, n *notes) ([]scanItem, int, error) {
	items, gap, err := p.listScans(ctx)
	if err != nil {
		return nil, 0, err
	}
	seen := make(map[string]bool, len(items))
	var out []scanItem
	for i, it := range items {
		sc, err := p.dec.decodeScan(it)
		if err != nil {
			n.skip(fmt.Errorf("scan list item %d: %w", i, err))
			continue
		}
		n.problems(sc.Problems)
		if !sc.Known {
			n.skip(fmt.Errorf("scan %.80q: unknown status %.40q (known: 0-3 or %s, %s, %s, %s)", sc.ID, sc.Status,
				StatusInProgress, StatusCompleted, StatusCancelled, StatusFailed))
			continue
		}
		if !Finished(sc.Status) || sc.Stopped.Before(floor) || seen[sc.ID] {
			continue
		}
		seen[sc.ID] = true
		out = append(out, scanItem{rec: sc, raw: []byte(it.Raw)})
	}
	slices.SortStableFunc(out, func(a, b scanItem) int {
		return cmp.Or(a.rec.Stopped.Compare(*b.rec.Stopped), strings.Compare(a.rec.ID, b.rec.ID))
	})
	return out, gap, nil
}

// scanRecord builds the record and event of a finished scan.
func (p *Poller) scanRecord(sc *scanRec, raw []byte, streamID string) pipeline.Record {
	ev := scanEvent(sc, p.name, streamID, p.publicURL)
	if p.cfg.Raw {
		ev.Raw = raw
	}
	return pipeline.Record{Key: sc.ID, Time: *sc.Stopped, Hash: ScanHash(sc.ID, sc.Status), Raw: raw, Event: ev}
}

// scanEvent is the mdss.scan event of a finished scan (Stopped set).
func scanEvent(sc *scanRec, instance, streamID, publicURL string) *pipeline.Event {
	ev := &pipeline.Event{
		Kind: pipeline.KindMDSSScan,
		Time: *sc.Stopped,
		Source: pipeline.Source{Product: pipeline.ProductStorageSec, Instance: instance, Stream: streamID,
			URL: publicURL},
		Scan: &pipeline.Scan{ID: sc.ID, Name: sc.Name, Status: sc.Status, Started: sc.Started, Stopped: sc.Stopped,
			Storage: sc.Storage, Files: sc.Files, Blocked: sc.Blocked, Infected: sc.Infected},
	}
	ev.Severity, ev.SeverityScore = ScanSeverity(sc.Status, sc.Infected)
	ev.Message = scanMessage(sc)
	return ev
}

func scanMessage(sc *scanRec) string {
	name := sc.Name
	if name == "" {
		name = sc.ID
	}
	msg := "Scan " + oneLine(name, 120) + " " + strings.ToLower(sc.Status)
	var parts []string
	for _, c := range []struct {
		n    *int64
		what string
	}{{sc.Files, "files"}, {sc.Blocked, "blocked"}, {sc.Infected, "infected"}} {
		if c.n != nil {
			parts = append(parts, strconv.FormatInt(*c.n, 10)+" "+c.what)
		}
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	if sc.Storage != "" {
		msg += " (" + oneLine(sc.Storage, 80) + ")"
	}
	return msg
}

// fileStream emits one mdss.file event per threat file of every finished
// scan.
//
// Its records are ordered by the stop time of their scan (Record.Time),
// while the event's time is the file's own scanCompletedTime: the files of a
// scan are read when the scan has finished, so the scan's stop time is what
// says how far the stream has read. A file time as the watermark would make
// the runner drop the early files of a long scan that finishes after a
// shorter one.
type fileStream struct {
	p     *Poller
	id    string
	notes notes

	mu sync.Mutex
	// complete holds finished scans whose files need not be read again in
	// this process once they stopped more than lookback ago: scans read in
	// full without a threat, and scans whose records are known to be
	// committed. (A restart reads them again; the seen index drops repeats.)
	complete map[string]scanMark
	// pending are the scans whose records the last poll returned and that
	// move the watermark past pendingFrom, up to pendingMax: once a later
	// poll sees that watermark, they were committed.
	pending                 map[string]scanMark
	pendingFrom, pendingMax time.Time
}

// scanMark is what fileStream remembers of a scan.
type scanMark struct{ stopped time.Time }

// ID implements pipeline.Stream.
func (s *fileStream) ID() string { return s.id }

// Poll implements pipeline.Stream: for every finished scan that stopped at
// or after the floor, its files that were blocked or have a result code in
// threat_results, ordered by scan stop time, then file time.
func (s *fileStream) Poll(ctx context.Context, pos pipeline.Position) (pipeline.Batch, error) {
	scans, gap, err := s.p.finishedScans(ctx, pos.Floor, &s.notes)
	if err != nil {
		return pipeline.Batch{}, err
	}
	s.mu.Lock()
	if s.pending != nil && pos.Watermark.After(s.pendingFrom) && !pos.Watermark.Before(s.pendingMax) {
		for id, m := range s.pending {
			s.complete[id] = m
		}
	}
	s.pending = nil
	for id, m := range s.complete {
		if m.stopped.Before(pos.Floor) {
			delete(s.complete, id)
		}
	}
	settled := time.Now().Add(-s.p.cfg.Lookback)
	var todo []scanItem
	for _, sc := range scans {
		if _, ok := s.complete[sc.rec.ID]; ok && sc.rec.Stopped.Before(settled) {
			continue
		}
		todo = append(todo, sc)
	}
	s.mu.Unlock()

	var recs []pipeline.Record
	fileTimes := map[string]time.Time{}
	newComplete := map[string]scanMark{}
	pending := map[string]scanMark{}
	for _, sc := range todo {
		items, capped, err := s.p.listFiles(ctx, sc.rec.ID)
		if err != nil {
			return pipeline.Batch{}, err
		}
		gap += capped
		before := len(recs)
		broken := false
		for i, it := range items {
			f, err := s.p.dec.decodeFile(it)
			if err != nil {
				s.notes.skip(fmt.Errorf("scan %.80q file list item %d: %w", sc.rec.ID, i, err))
				broken = true
				continue
			}
			s.notes.problems(f.Problems)
			if !f.threat(s.p.cfg.ThreatResults) {
				continue
			}
			rec := s.p.fileRecord(f, []byte(it.Raw), s.id, sc.rec.ID, sc.rec.Name, *sc.rec.Stopped)
			fileTimes[rec.Key] = rec.Event.Time
			recs = append(recs, rec)
		}
		mark := scanMark{stopped: *sc.rec.Stopped}
		switch {
		case capped > 0 || broken:
			// read again while in the window
		case len(recs) == before:
			newComplete[sc.rec.ID] = mark
		case sc.rec.Stopped.After(pos.Watermark):
			pending[sc.rec.ID] = mark
		}
	}
	s.notes.flush(s.p, s.id)
	// Oldest first: by scan stop time (the records' Time), then file time.
	slices.SortStableFunc(recs, func(a, b pipeline.Record) int {
		return cmp.Or(a.Time.Compare(b.Time), fileTimes[a.Key].Compare(fileTimes[b.Key]), strings.Compare(a.Key, b.Key))
	})
	s.mu.Lock()
	for id, m := range newComplete {
		s.complete[id] = m
	}
	if len(pending) > 0 {
		s.pending, s.pendingFrom, s.pendingMax = pending, pos.Watermark, recs[len(recs)-1].Time
	}
	s.mu.Unlock()
	return pipeline.Batch{Records: recs, Gap: gap}, nil
}

// fileRecord builds the record and event of a threat file found by polling.
func (p *Poller) fileRecord(f *fileRec, raw []byte, streamID, scanID, scanName string, scanStopped time.Time) pipeline.Record {
	t := scanStopped
	if f.Completed != nil {
		t = *f.Completed
	}
	if f.ScanID == "" {
		f.ScanID = scanID
	}
	ev := fileEvent(f, scanName, t, p.name, streamID, p.publicURL)
	if p.cfg.Raw {
		ev.Raw = raw
	}
	return pipeline.Record{Key: f.ID, Time: scanStopped, Hash: FileHash(f.Verdict, f.Code, f.Result), Raw: raw, Event: ev}
}

// fileEvent is the mdss.file event of a file.
func fileEvent(f *fileRec, scanName string, t time.Time, instance, streamID, publicURL string) *pipeline.Event {
	ev := &pipeline.Event{
		Kind: pipeline.KindMDSSFile,
		Time: t,
		Source: pipeline.Source{Product: pipeline.ProductStorageSec, Instance: instance, Stream: streamID,
			URL: publicURL},
		File: &pipeline.File{ID: f.ID, Name: f.Name, Path: f.Path, Size: f.Size, MD5: f.MD5, SHA1: f.SHA1,
			SHA256: f.SHA256, Verdict: f.Verdict, ResultCode: f.Code, Result: f.Result, Threats: f.Threats,
			Engines: f.Engines, Remediation: f.Remediation},
	}
	if f.ScanID != "" || scanName != "" {
		ev.Scan = &pipeline.Scan{ID: f.ScanID, Name: scanName}
	}
	ev.Severity, ev.SeverityScore = FileSeverity(f.Code, f.Verdict)
	ev.Message = fileMessage(f, scanName)
	return ev
}

func fileMessage(f *fileRec, scanName string) string {
	subject := "File"
	if f.Result != "" && (f.Code == nil || *f.Code != 0) {
		subject = oneLine(f.Result, 60) + " file"
	}
	name := cmp.Or(f.Name, f.Path, f.ID)
	msg := subject + " " + oneLine(name, 160)
	switch f.Verdict {
	case VerdictBlocked, VerdictAllowed:
		msg += " " + strings.ToLower(f.Verdict)
	}
	if f.Storage != "" {
		msg += " in " + oneLine(f.Storage, 80)
	}
	if len(f.Threats) > 0 {
		th := f.Threats
		more := ""
		if len(th) > 3 {
			th, more = th[:3], fmt.Sprintf(" and %d more", len(f.Threats)-3)
		}
		msg += ": " + oneLine(strings.Join(th, ", "), 200) + more
	}
	if scanName != "" {
		msg += " (scan " + oneLine(scanName, 80) + ")"
	}
	return msg
}

// oneLine makes s fit on one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// notes collects, over one poll, the records a stream left out and the
// optional fields it dropped, and logs them without repeating itself every
// poll: a warning when what it saw changed, debug otherwise.
type notes struct {
	skipped  []error
	fields   map[string]*FieldError
	lastSkip string
	warned   map[string]bool // fields already warned about
}

func (n *notes) skip(err error) { n.skipped = append(n.skipped, err) }

func (n *notes) problems(ps []*FieldError) {
	for _, p := range ps {
		if n.fields == nil {
			n.fields = map[string]*FieldError{}
		}
		k := p.Record + "." + p.Field
		if _, ok := n.fields[k]; !ok {
			n.fields[k] = p
		}
	}
}

// flush logs what the poll noted and counts the skipped records.
func (n *notes) flush(p *Poller, stream string) {
	if len(n.skipped) > 0 {
		p.skipped.Add(int64(len(n.skipped)))
		first := make([]string, 0, 3)
		for _, e := range n.skipped[:min(3, len(n.skipped))] {
			first = append(first, e.Error())
		}
		sig := strconv.Itoa(len(n.skipped)) + "\x00" + strings.Join(first, "\x00")
		level := zap.WarnLevel
		if sig == n.lastSkip {
			level = zap.DebugLevel
		}
		p.log.Log(level, "broken records left out of this poll (they are read again next poll)",
			zap.String("stream", stream), zap.Int("count", len(n.skipped)), zap.Strings("first", first))
		n.lastSkip = sig
	} else {
		n.lastSkip = ""
	}
	for k, fe := range n.fields {
		if n.warned == nil {
			n.warned = map[string]bool{}
		}
		level := zap.WarnLevel
		if n.warned[k] {
			level = zap.DebugLevel
		}
		n.warned[k] = true
		p.log.Log(level, "record field of an unexpected type left out of the event", zap.String("stream", stream),
			zap.String("field", fe.Record+"."+fe.Field), zap.String("detail", fe.Error()))
	}
	n.skipped, n.fields = n.skipped[:0], nil
}
