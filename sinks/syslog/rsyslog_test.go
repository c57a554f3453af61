package syslog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

const rsyslogPath = "/usr/sbin/rsyslogd"

// syncBuffer collects a child's stderr for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rsyslogInput is one imtcp listener of the test daemon and the file its
// messages are written to.
type rsyslogInput struct {
	name     string
	tls      bool
	template string
	port     string
	out      string
}

// startRsyslog runs a real rsyslogd in the foreground with a config of its
// own in a temp dir: one imtcp input per entry (TLS ones with the gtls
// driver in mode 1, anonymous auth, the test PKI's server certificate),
// each writing with its template to its own file. It returns once every
// port accepts connections, and kills the daemon at cleanup. A port that
// another process took first makes it start again on new ports.
func startRsyslog(t *testing.T, pki *testPKI, inputs []*rsyslogInput) {
	t.Helper()
	if _, err := os.Stat(rsyslogPath); err != nil {
		if os.Getenv("MDBTEST_REQUIRE_RSYSLOG") == "1" {
			t.Fatalf("rsyslogd is required (MDBTEST_REQUIRE_RSYSLOG=1) but missing: %v", err)
		}
		t.Skipf("rsyslogd not installed (%v); install the Debian packages rsyslog and rsyslog-gnutls", err)
	}
	var err error
	for attempt := range 3 {
		if err = tryRsyslog(t, pki, inputs); err == nil {
			return
		}
		t.Logf("rsyslogd attempt %d: %v", attempt+1, err)
	}
	t.Fatal(err)
}

func tryRsyslog(t *testing.T, pki *testPKI, inputs []*rsyslogInput) error {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, `global(workDirectory=%q maxMessageSize="64k"
  defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" maxSessions="32")
`, work, pki.caFile, pki.certFile, pki.keyFile)
	for _, in := range inputs {
		in.port = staticPort(t)
		in.out = filepath.Join(dir, in.name+".log")
		fmt.Fprintf(&conf, "template(name=%q type=\"string\" string=%q)\n", "t_"+in.name, in.template)
		fmt.Fprintf(&conf, "ruleset(name=%q) { action(type=\"omfile\" file=%q template=%q) }\n", "r_"+in.name, in.out, "t_"+in.name)
		fmt.Fprintf(&conf, `input(type="imtcp" address="127.0.0.1" port=%q ruleset=%q`, in.port, "r_"+in.name)
		if in.tls {
			conf.WriteString(` streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"`)
		}
		conf.WriteString(")\n")
	}
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return err
	}
	stderr := &syncBuffer{}
	cmd := exec.Command(rsyslogPath, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	for _, in := range inputs {
		addr := net.JoinHostPort("127.0.0.1", in.port)
		for deadline := time.Now().Add(15 * time.Second); ; {
			if strings.Contains(stderr.String(), "Could not create tcp listener") {
				stop()
				return fmt.Errorf("rsyslogd could not listen (port taken?):\n%s", stderr.String())
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case err := <-exited:
				return fmt.Errorf("rsyslogd exited: %v\n%s", err, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				stop()
				return fmt.Errorf("rsyslogd does not accept on %s: %v\n%s", addr, err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s\nconfig:\n%s", stderr.String(), conf.String())
		}
	})
	return nil
}

// staticPort returns a free loopback port below the ephemeral range
// (32768 and up on Linux), which outgoing connections and other tests'
// listeners on port 0 take from, so that it is still free when rsyslogd
// binds it.
func staticPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		port := strconv.Itoa(20000 + rand.IntN(12000))
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err == nil {
			_ = ln.Close()
			return port
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

var (
	sdIDRe  = regexp.MustCompile(`\[mdbridge@32473 id="([^"]*)" seq="([0-9]+)"`)
	tagIDRe = regexp.MustCompile(`^mdbridge\[([0-9a-f]+)\.([0-9]+)\]:`)
)

// TestRsyslogEndToEnd delivers a few thousand events through a real
// rsyslogd, over plain TCP and over TLS with octet counting (RFC 5424) and
// over TCP with newline framing (RFC 3164), and reads rsyslog's output
// until every event ID is there.
func TestRsyslogEndToEnd(t *testing.T) {
	const (
		events    = 3000
		batchSize = 500
	)
	pki := newPKI(t)
	inputs := []*rsyslogInput{
		{name: "tcp5424", template: "%msgid% %structured-data% %msg%\n"},
		{name: "tls5424", tls: true, template: "%msgid% %structured-data% %msg%\n"},
		{name: "tcp3164", template: "%syslogtag% %msg%\n"},
	}
	startRsyslog(t, pki, inputs)
	cases := []struct {
		in       *rsyslogInput
		protocol string
		framing  string
	}{
		{inputs[0], RFC5424, OctetCounting},
		{inputs[1], RFC5424, OctetCounting},
		{inputs[2], RFC3164, Newline},
	}
	all := entriesOf(t, seqEvents(1, events)...)
	wantIDs := make(map[string]uint64, events)
	for _, e := range all {
		var ev pipeline.Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		wantIDs[ev.ID] = ev.Seq
	}
	for _, c := range cases {
		t.Run(c.in.name, func(t *testing.T) {
			scheme := SchemeTCP
			if c.in.tls {
				scheme = SchemeTLS
			}
			cfg := testConfig(scheme + "://127.0.0.1:" + c.in.port)
			cfg.Protocol, cfg.Framing = c.protocol, c.framing
			if c.in.tls {
				cfg.TLS.CAFile = pki.caFile
			}
			s := mustNew(t, cfg)
			for i := 0; i < len(all); i += batchSize {
				if err := s.Deliver(context.Background(), all[i:min(i+batchSize, len(all))]); err != nil {
					t.Fatalf("Deliver batch at %d: %v", i, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			var counts map[string]int
			var problems []string
			for deadline := time.Now().Add(60 * time.Second); ; {
				counts, problems = readRsyslogOutput(t, c.in.out, c.protocol)
				if len(counts) >= len(wantIDs) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, p := range problems[:min(len(problems), 5)] {
				t.Errorf("%s", p)
			}
			missing, dups := 0, 0
			for id := range wantIDs {
				switch n := counts[id]; {
				case n == 0:
					missing++
				case n > 1:
					dups += n - 1
				}
			}
			for id := range counts {
				if _, ok := wantIDs[id]; !ok {
					t.Errorf("rsyslog wrote an unknown id %q", id)
				}
			}
			if missing > 0 {
				t.Fatalf("%d of %d event ids never reached rsyslog's output", missing, len(wantIDs))
			}
			t.Logf("%d events through rsyslogd, %d duplicates; first line: %s", len(wantIDs), dups, short(firstLine(t, c.in.out)))
		})
	}
}

func firstLine(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// readRsyslogOutput counts the event ids in rsyslog's output file and
// checks each line: the ID and seq where the protocol puts them, and a MSG
// that is the event's JSON with the same id and seq.
func readRsyslogOutput(t *testing.T, path, protocol string) (map[string]int, []string) {
	counts := map[string]int{}
	var problems []string
	f, err := os.Open(path)
	if err != nil {
		return counts, nil // not written yet
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var id, seq, msg string
		if protocol == RFC5424 {
			kind, rest, _ := strings.Cut(line, " ")
			if kind != pipeline.KindDeviceAlert {
				problems = append(problems, fmt.Sprintf("msgid %q, want %s: %s", kind, pipeline.KindDeviceAlert, short(line)))
			}
			m := sdIDRe.FindStringSubmatch(rest)
			if m == nil {
				problems = append(problems, "no mdbridge structured data: "+short(line))
				continue
			}
			id, seq = m[1], m[2]
			_, msg, _ = strings.Cut(rest, "] ")
		} else {
			m := tagIDRe.FindStringSubmatch(line)
			if m == nil {
				problems = append(problems, "no mdbridge[ID.SEQ]: tag: "+short(line))
				continue
			}
			id, seq = m[1], m[2]
			msg = strings.TrimPrefix(line[len(m[0]):], " ")
		}
		var ev pipeline.Event
		if err := json.Unmarshal([]byte(msg), &ev); err != nil {
			problems = append(problems, fmt.Sprintf("MSG is not the event JSON (%v): %s", err, short(msg)))
		} else if ev.ID != id || fmt.Sprint(ev.Seq) != seq {
			problems = append(problems, fmt.Sprintf("header id %s seq %s, body id %s seq %d", id, seq, ev.ID, ev.Seq))
		}
		counts[id]++
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, "read output: "+err.Error())
	}
	return counts, problems
}
