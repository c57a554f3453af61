package mdsstest

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// ScanSpec describes a scan for AddScan. The zero value is a scan on a
// random storage that has just completed, with generated files.
type ScanSpec struct {
	// Name is the scan's name; default generated from its type and storage.
	Name string
	// Storage is the name or id of one of the server's storages; default
	// one chosen at random.
	Storage string
	// ScanType is one of the ScanType constants (default 0, Instant).
	ScanType int
	// Outcome is the status the scan finishes with: ScanCompleted,
	// ScanCancelled or ScanFailed; ScanInProgress (the zero value) means
	// ScanCompleted.
	Outcome ScanStatus
	// Start is when the scan starts; default now minus Duration, so that
	// the scan has just finished when it is added.
	Start time.Time
	// Duration is how long the scan runs; default generated (up to
	// Options.MaxScanDuration). A scan whose Start+Duration is after the
	// clock's now is InProgress until a Tick finds it due.
	Duration time.Duration
	// Files is how many files the scan processes; 0 generates a number
	// around Options.FilesPerScan, negative means none.
	Files int
	// Threats are the Core result codes of the scan's Blocked files, one
	// file each, placed at random among Files (raised to len(Threats) if
	// smaller); nil draws threats at Options.ThreatRate, empty means none.
	Threats []int
}

// AddScan adds one scan and returns it and every file it will have. A scan
// that is finished on arrival sends its webhooks before AddScan returns;
// otherwise Tick finishes it when the clock reaches its stop time. It
// panics on a spec that names an unknown storage or outcome.
func (s *Server) AddScan(spec ScanSpec) (Scan, []File) {
	if spec.Storage != "" && s.storageIndex(spec.Storage) < 0 {
		panic(fmt.Sprintf("mdsstest: AddScan: no storage %q", spec.Storage))
	}
	if spec.Outcome != ScanInProgress && !spec.Outcome.Finished() {
		panic(fmt.Sprintf("mdsstest: AddScan: outcome %v is not a final status", spec.Outcome))
	}
	now := s.now()
	s.mu.Lock()
	sc := s.buildLocked(spec, now, false)
	var out []File
	for _, fr := range sc.files {
		out = append(out, cloneFile(fr.f))
	}
	snap, note := s.placeLocked(sc, now, true)
	s.mu.Unlock()
	s.deliver(note)
	return snap, out
}

// Generate starts n generated scans now (each up to a second early); they are InProgress until Tick
// finds them due. It returns their snapshots.
func (s *Server) Generate(n int) []Scan {
	now := s.now()
	var out []Scan
	for range n {
		s.mu.Lock()
		sc := s.buildLocked(ScanSpec{Start: now}, now, true)
		snap, t := s.placeLocked(sc, now, true)
		s.mu.Unlock()
		s.deliver(t) // only when MaxScanDuration is too short to notice
		out = append(out, snap)
	}
	return out
}

// Backfill adds n generated scans started at even steps over the span that
// ends now (each up to a second early, as every generated scan), the history
// a server has when a client first connects. Those
// finished by now send no webhooks; the others are InProgress until Tick
// finds them due.
func (s *Server) Backfill(n int, span time.Duration) []Scan {
	now := s.now()
	var out []Scan
	for i := range n {
		start := now.Add(-span + time.Duration(i)*span/time.Duration(max(n, 1)))
		s.mu.Lock()
		sc := s.buildLocked(ScanSpec{Start: start}, now, true)
		snap, _ := s.placeLocked(sc, now, false)
		s.mu.Unlock()
		out = append(out, snap)
	}
	return out
}

// Tick brings every InProgress scan up to the clock: files whose scan has
// completed by now become listed, and scans whose stop time has come
// finish, in stop-time order, each sending its webhooks before Tick
// returns. It returns the scans it finished.
func (s *Server) Tick() []Scan {
	now := s.now()
	s.mu.Lock()
	var fin []*scanRec
	keep := s.running[:0]
	for _, sc := range s.running {
		if !now.Before(sc.stop) {
			fin = append(fin, sc)
			continue
		}
		sc.progressLocked(now)
		keep = append(keep, sc)
	}
	clear(s.running[len(keep):])
	s.running = keep
	slices.SortFunc(fin, func(a, b *scanRec) int {
		return cmp.Or(a.stop.Compare(b.stop), cmp.Compare(a.scan.ID, b.scan.ID))
	})
	var out []Scan
	var notes []notification
	for _, sc := range fin {
		s.finishLocked(sc)
		out = append(out, sc.scan)
		notes = append(notes, s.notesLocked(sc)...)
	}
	t := s.ticketLocked(notes)
	s.mu.Unlock()
	s.deliver(t)
	return out
}

// Scans returns a snapshot of every scan, in the order they were added.
func (s *Server) Scans() []Scan {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Scan, len(s.scans))
	for i, sc := range s.scans {
		out[i] = sc.scan
	}
	return out
}

// Scan returns the scan with id, and whether there is one.
func (s *Server) Scan(id string) (Scan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scanByID[strings.ToLower(id)]
	if sc == nil {
		return Scan{}, false
	}
	return sc.scan, true
}

// Files returns the files of a scan that the file list shows now (all of
// them once the scan finished), in processing order; nil for an unknown
// scan.
func (s *Server) Files(scanID string) []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scanByID[strings.ToLower(scanID)]
	if sc == nil {
		return nil
	}
	var out []File
	for _, fr := range sc.files[:sc.visible] {
		out = append(out, cloneFile(fr.f))
	}
	return out
}

// ThreatFiles returns the files of finished scans that become mdss.file
// events under the contract's defaults (IsThreat), scan by scan in the
// order the scans finished: what a client should deliver.
func (s *Server) ThreatFiles() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, sc := range s.finishedOrder {
		for _, fr := range sc.files {
			if IsThreat(fr.f) {
				out = append(out, cloneFile(fr.f))
			}
		}
	}
	return out
}

// FinishedScans returns the finished scans in the order they finished:
// what a client should deliver as mdss.scan events.
func (s *Server) FinishedScans() []Scan {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Scan, len(s.finishedOrder))
	for i, sc := range s.finishedOrder {
		out[i] = sc.scan
	}
	return out
}

// StartGenerator keeps the server busy like a live MDSS: every 100 ms it
// calls Tick and starts generated scans at scansPerSec (on average, by the
// wall clock). stop ends it and waits; Close stops every generator.
func (s *Server) StartGenerator(scansPerSec float64) (stop func()) {
	select {
	case <-s.done:
		return func() {}
	default:
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	s.genWG.Add(1)
	s.genN.Add(1)
	go func() {
		defer s.genWG.Done()
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		begin := time.Now()
		var started int64
		for {
			select {
			case <-quit:
				return
			case <-s.done:
				return
			case <-tick.C:
			}
			s.Tick()
			due := int64(scansPerSec * time.Since(begin).Seconds())
			if behind := due - started; behind > int64(scansPerSec)+1 {
				started = due - int64(scansPerSec) - 1 // do not burst after a stall
			}
			if n := due - started; n > 0 {
				s.Generate(int(n))
				started = due
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}

// placeLocked stores a built scan and brings it up to now. A scan finished
// on arrival is finished here; with notify its webhooks are queued, and the
// returned ticket must be delivered after s.mu is released.
func (s *Server) placeLocked(sc *scanRec, now time.Time, notify bool) (Scan, *ticket) {
	s.scans = append(s.scans, sc)
	s.scanByID[sc.scan.ID] = sc
	for _, fr := range sc.files {
		s.fileByID[strings.ToLower(fr.f.ID)] = fr
	}
	i, _ := slices.BinarySearchFunc(s.byStart, sc, func(a, b *scanRec) int {
		return cmp.Or(b.scan.StartTime.Compare(a.scan.StartTime), cmp.Compare(b.scan.ID, a.scan.ID))
	})
	s.byStart = slices.Insert(s.byStart, i, sc)
	if now.Before(sc.stop) {
		sc.progressLocked(now)
		s.running = append(s.running, sc)
		return sc.scan, nil
	}
	s.finishLocked(sc)
	if !notify {
		return sc.scan, nil
	}
	return sc.scan, s.ticketLocked(s.notesLocked(sc))
}

func (sc *scanRec) progressLocked(now time.Time) {
	n := sc.visible
	for n < len(sc.files) && !sc.files[n].f.ScanCompletedTime.After(now) {
		n++
	}
	sc.setVisible(n)
}

func (sc *scanRec) setVisible(n int) {
	sc.visible = n
	sc.scan.TotalFiles, sc.scan.BlockedFiles, sc.scan.InfectedFiles = n, 0, 0
	for _, fr := range sc.files[:n] {
		if fr.f.Result == ResultBlocked {
			sc.scan.BlockedFiles++
		}
		if fr.f.ScanAllResultI == 1 {
			sc.scan.InfectedFiles++
		}
	}
}

func (s *Server) finishLocked(sc *scanRec) {
	sc.setVisible(len(sc.files))
	sc.scan.Status = sc.outcome
	sc.scan.StopTime = sc.stop
	s.finishedOrder = append(s.finishedOrder, sc)
}

// buildLocked makes up a scan and its files. s.mu is held (for the
// generator's sequence).
func (s *Server) buildLocked(spec ScanSpec, now time.Time, generated bool) *scanRec {
	s.scanN++
	rng := rand.New(rand.NewPCG(uint64(s.seed), 0x5ca0_0000_0000+uint64(s.scanN)))
	var st Storage
	if spec.Storage == "" {
		st = s.storages[rng.IntN(len(s.storages))]
	} else {
		st = s.storages[s.storageIndex(spec.Storage)] // AddScan checked it
	}
	outcome := spec.Outcome
	if generated {
		switch x := rng.IntN(100); {
		case x < 80:
			outcome = ScanCompleted
		case x < 90:
			outcome = ScanCancelled
		default:
			outcome = ScanFailed
		}
		spec.ScanType = ScanTypeScheduled
		if rng.IntN(10) < 3 {
			spec.ScanType = ScanTypeInstant
		}
	}
	if outcome == ScanInProgress {
		outcome = ScanCompleted
	}
	dur := spec.Duration
	if dur <= 0 {
		dur = s.maxDur/10 + time.Duration(rng.Int64N(int64(s.maxDur-s.maxDur/10)+1))
	}
	start := spec.Start
	if generated { // a scheduler is not that punctual: up to a second early
		start = start.Add(-time.Duration(rng.Int64N(int64(time.Second))))
	}
	if start.IsZero() {
		start = now.Add(-dur - 20*time.Microsecond) // jitter adds up to 10 µs, twice
	}
	start = jitter(start, rng)
	stop := jitter(start.Add(dur), rng)
	if !stop.After(start) {
		stop = start.Add(time.Millisecond)
	}
	name := spec.Name
	if name == "" {
		switch {
		case spec.ScanType == ScanTypeScheduled && rng.IntN(2) == 0:
			name = "Nightly " + st.Name
		case spec.ScanType == ScanTypeScheduled:
			name = "Weekly full scan " + st.Name
		default:
			name = fmt.Sprintf("On-demand %s %d", st.Name, s.scanN)
		}
	}
	sc := &scanRec{
		scan: Scan{ID: uuid7(start, rng), Name: name, Status: ScanInProgress, ScanType: spec.ScanType,
			StorageID: st.ID, StorageName: st.Name, StartTime: start},
		outcome: outcome,
		stop:    stop,
	}

	n := spec.Files
	if n == 0 {
		n = max(1, s.filesMean/2+rng.IntN(s.filesMean+1))
	}
	n = max(n, len(spec.Threats), 0)
	kinds := make([]int, n) // -1 clean, else a threat's code (0 for a generated one)
	for i := range kinds {
		kinds[i] = -1
		if spec.Threats == nil && s.threatRate > 0 && rng.Float64() < s.threatRate {
			kinds[i] = 0
		}
	}
	for j, i := range rng.Perm(n)[:len(spec.Threats)] {
		kinds[i] = spec.Threats[j]
	}
	// A Cancelled or Failed scan's last clean file was canceled or failed.
	broken := -1
	if outcome != ScanCompleted {
		for i := n - 1; i >= 0; i-- {
			if kinds[i] < 0 {
				broken = i
				break
			}
		}
	}
	engines := pickEngines(rng, 4+rng.IntN(len(engineList)-3))
	defTime := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	span := stop.Sub(start)
	prev := start
	for i := range n {
		t := jitter(start.Add(span*time.Duration(i+1)/time.Duration(n+1)), rng)
		if t.Before(prev) {
			t = prev
		}
		if !t.Before(stop) {
			t = stop.Add(-time.Microsecond)
		}
		prev = t
		f := s.genFile(rng, sc, t, kinds[i], i == broken, engines, defTime, spec.Threats != nil)
		sc.files = append(sc.files, &fileRec{f: f, scan: sc, idx: i})
	}
	return sc
}

// storageIndex finds a storage by name or id; -1 when there is none.
func (s *Server) storageIndex(nameOrID string) int {
	return slices.IndexFunc(s.storages, func(x Storage) bool {
		return x.Name == nameOrID || strings.EqualFold(x.ID, nameOrID)
	})
}

// engine is one anti-malware engine of MetaDefender Core.
type engine struct{ name, id string }

var engineList = []engine{
	{"Ahnlab", "ahnlab_1_linux"}, {"Avira", "avira_1_linux"}, {"Bitdefender", "bitdefender_1_linux"},
	{"ClamAV", "clamav_1_linux"}, {"Cyren", "cyren_1_linux"}, {"ESET", "eset_1_linux"},
	{"Ikarus", "ikarus_1_linux"}, {"K7", "k7_1_linux"},
}

func pickEngines(rng *rand.Rand, k int) []engine {
	out := make([]engine, 0, k)
	for _, i := range rng.Perm(len(engineList))[:k] {
		out = append(out, engineList[i])
	}
	return out
}

var (
	folders    = []string{"", "in", "archive/2026", "shared/hr", "projects/alpha", "uploads/partners", "finance/invoices"}
	cleanNames = []string{"Q3-report.xlsx", "invoice-10023.pdf", "contract_signed.docx", "team-photo.jpg",
		"backup-2026-11.zip", "meeting-notes.txt", "floorplan.dwg", "presentation.pptx", "readme.md",
		"budget.xlsx", "logo.png", "minutes.pdf"}
	// threatKinds: name choices and engine threat names per Core result code.
	threatNames = map[int][]string{
		1:  {"invoice.pdf.exe", "setup_crack.exe", "payment-advice.js", "resume.scr"},
		2:  {"macro_invoice.docm", "update.hta"},
		8:  {"blocked-tool.exe", "psexec.exe"},
		12: {"secret.zip", "archive-protected.7z"},
		18: {"old-openssl.dll", "jre-installer.exe"},
		20: {"customers.csv", "payroll-export.xlsx"},
		21: {"payload.ps1", "loader.bin"},
		22: {"toolbar-installer.msi", "free-converter.exe"},
	}
	engineThreats = map[int][]string{
		1:  {"Trojan.GenericKD.71234", "EICAR-Test-File (not a virus)", "Win32.Emotet.AB", "Ransom.LockBit.C", "Backdoor.CobaltStrike.B"},
		2:  {"Suspicious.Packed.UPX", "Heur.Macro.Downloader"},
		22: {"PUA.Win32.Toolbar", "Adware.OpenCandy"},
	}
)

// genFile makes up one file. kind is -1 for a clean file, otherwise the
// Core result code of a threat (0: draw one). exact keeps a given code
// Blocked.
func (s *Server) genFile(rng *rand.Rand, sc *scanRec, t time.Time, kind int, broken bool, engines []engine, defTime time.Time, exact bool) File {
	f := File{
		ID: uuid7(t, rng), ScanID: sc.scan.ID, StorageID: sc.scan.StorageID, StorageName: sc.scan.StorageName,
		ProcessingState: StateAvailable, Result: ResultAllowed, ScanCompletedTime: t,
		WorkflowName: "Default Workflow",
		Size:         int64(1)<<(10+rng.IntN(16)) + rng.Int64N(1024),
		MD5:          randHex(rng, 16), SHA1: randHex(rng, 20), SHA256: randHex(rng, 32),
	}
	code := 0
	name := cleanNames[rng.IntN(len(cleanNames))]
	switch {
	case broken && sc.outcome == ScanCancelled:
		f.ProcessingState, code, engines = StateCanceled, 19, nil
	case broken:
		f.ProcessingState, code, engines = StateFailed, 3, nil
		f.ExceptionDetails = "Timed out waiting for MetaDefender Core"
	case kind < 0:
		switch x := rng.IntN(100); {
		case x < 85:
		case x < 90:
			code = 7
		case x < 95:
			code = 10
		default:
			code = 23
		}
		switch x := rng.IntN(10); {
		case x == 0:
			f.Remediations = []Remediation{RemediationTagging}
		case x == 1:
			f.Remediations = []Remediation{RemediationAllowedCopied}
		}
	default:
		code = kind
		f.Result = ResultBlocked
		if !exact {
			switch x := rng.IntN(100); {
			case x < 35:
				code = 1
			case x < 45:
				code = 2
			case x < 55:
				code = 8
			case x < 65:
				code = 18
			case x < 73:
				code = 20
			case x < 78: // sensitive data the workflow lets through
				code, f.Result = 20, ResultAllowed
			case x < 86:
				code = 21
			case x < 95:
				code = 22
			default: // blocked, though not a threat code
				code = 12
			}
		}
		if names := threatNames[code]; len(names) > 0 {
			name = names[rng.IntN(len(names))]
		}
		if f.Result == ResultBlocked {
			f.Remediations = [][]Remediation{
				{RemediationBlockedMoved}, {RemediationBlockedDelete}, {RemediationBlockedCopied},
				{RemediationTagging, RemediationBlockedMoved},
			}[rng.IntN(4)]
		}
	}
	f.ScanAllResultI, f.ScanAllResultA = code, CoreResultName(code)
	detect := 0
	threats := engineThreats[code]
	if len(threats) > 0 && len(engines) > 0 {
		detect = 1 + rng.IntN(min(3, len(engines)))
	}
	for i, e := range engines {
		er := EngineResult{EngineName: e.name, EngID: e.id, DefTime: defTime, ScanTime: 1 + rng.IntN(40)}
		if i < detect {
			er.ScanResultI, er.ThreatFound = code, threats[rng.IntN(len(threats))]
		} else if code == 10 || code == 23 {
			er.ScanResultI = code
		}
		f.Engines = append(f.Engines, er)
	}
	f.TotalAvs = len(f.Engines)
	f.Name = name
	f.Path = name
	if dir := folders[rng.IntN(len(folders))]; dir != "" {
		f.Path = dir + "/" + name
	}
	return f
}

func randHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

// jitter cuts t to one of the precisions MDSS times have: a whole
// millisecond (3 digits), ten microseconds (5 digits) or a microsecond (6).
func jitter(t time.Time, rng *rand.Rand) time.Time {
	t = t.UTC().Truncate(time.Microsecond)
	switch rng.IntN(3) {
	case 0:
		return t.Truncate(time.Millisecond)
	case 1:
		t = t.Truncate(10 * time.Microsecond)
		if t.Nanosecond()%int(time.Millisecond) == 0 {
			t = t.Add(10 * time.Microsecond)
		}
	default:
		if t.Nanosecond()/1000%10 == 0 {
			t = t.Add(time.Microsecond)
		}
	}
	return t
}

// uuid7 makes a version 7 UUID for time t from rng.
func uuid7(t time.Time, rng *rand.Rand) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(t.UnixMilli())<<16|rng.Uint64()&0xffff)
	binary.BigEndian.PutUint64(b[8:16], rng.Uint64())
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func cloneFile(f File) File {
	f.Remediations = slices.Clone(f.Remediations)
	f.Engines = slices.Clone(f.Engines)
	return f
}
