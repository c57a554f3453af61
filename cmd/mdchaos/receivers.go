package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
)

// delivery is one event as a sink's far end received it: the event id, the
// id of the upstream record in its raw field, and when it arrived.
type delivery struct {
	EventID string
	RawID   string
	At      time.Time
}

// parseEvent reads the event id and the upstream record's id from an event
// in schema-v1 JSON.
func parseEvent(b []byte) (delivery, error) {
	var ev struct {
		ID  string `json:"id"`
		Raw struct {
			ID json.Number `json:"id"`
		} `json:"raw"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return delivery{}, fmt.Errorf("not an event: %w", err)
	}
	if ev.ID == "" {
		return delivery{}, errors.New("not an event: no id")
	}
	return delivery{EventID: ev.ID, RawID: ev.Raw.ID.String()}, nil
}

// tailer reads the complete lines appended to a file, from where it left
// off: a line without its newline yet is read again next time.
type tailer struct {
	path  string
	off   int64
	parse func(line []byte, now time.Time) (delivery, error)
	got   []delivery
	bad   []string // lines that did not parse (the first few)
	nBad  int
}

func (t *tailer) update() error {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return err
	}
	now := time.Now()
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // a partial line stays for next time
		}
		if err != nil {
			return err
		}
		t.off += int64(len(line))
		d, perr := t.parse(bytes.TrimSuffix(line, []byte{'\n'}), now)
		if perr != nil {
			t.nBad++
			if len(t.bad) < 3 {
				t.bad = append(t.bad, fmt.Sprintf("%v: %.120s", perr, line))
			}
			continue
		}
		t.got = append(t.got, d)
	}
}

// parseFileLine reads one line of the file sink; it arrived when read.
func parseFileLine(line []byte, now time.Time) (delivery, error) {
	d, err := parseEvent(line)
	d.At = now
	return d, err
}

// parseSyslogLine reads one line of the syslog receiver's output: the time
// the receiver got the message (RFC 3339), a space, and the message's MSG,
// which is the event JSON.
func parseSyslogLine(line []byte, _ time.Time) (delivery, error) {
	ts, msg, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return delivery{}, errors.New("no time and message")
	}
	at, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return delivery{}, fmt.Errorf("receive time: %w", err)
	}
	d, err := parseEvent(bytes.TrimSpace(msg))
	d.At = at
	return d, err
}

// webhookReceiver takes the webhook sink's POSTs (JSON arrays of events) and
// answers 204, or 503 while failing is set.
type webhookReceiver struct {
	srv      *http.Server
	ln       net.Listener
	failing  atomic.Bool
	refused  atomic.Int64 // requests answered 503
	mu       sync.Mutex
	got      []delivery
	badBody  int
	lastBody string
}

func startWebhook() (*webhookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &webhookReceiver{ln: ln}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(r.serve)}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.failing.Load() {
		r.refused.Add(1)
		http.Error(w, "chaos: unavailable", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		r.mu.Lock()
		r.badBody++
		r.lastBody = fmt.Sprintf("%v: %.120s", err, body)
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ds := make([]delivery, 0, len(events))
	for _, e := range events {
		d, err := parseEvent(e)
		if err != nil {
			d = delivery{EventID: "unparsable"}
		}
		d.At = now
		ds = append(ds, d)
	}
	r.mu.Lock()
	r.got = append(r.got, ds...)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *webhookReceiver) url() string { return "http://" + r.ln.Addr().String() + "/hook" }

func (r *webhookReceiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// rejected returns how many bodies were not JSON arrays of events, and the
// last of them.
func (r *webhookReceiver) rejected() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badBody, r.lastBody
}

func (r *webhookReceiver) close() { _ = r.srv.Close() }

// syslogReceiver is the far end of the syslog sink: a real rsyslogd, or an
// in-process stand-in when rsyslogd is not installed. Either writes one
// line per message to out: the receive time (RFC 3339), a space, the MSG.
type syslogReceiver interface {
	// kind says which one it is, for the figures.
	kind() string
	addr() string
	out() string
	start() error
	stop() error
}

const rsyslogPath = "/usr/sbin/rsyslogd"

// rsyslogd runs the Debian rsyslog daemon in the foreground with its own
// configuration: one imtcp input on a fixed loopback port, every message
// written to a file with the time rsyslog received it.
type rsyslogd struct {
	dir, port string
	cmd       *exec.Cmd
	exited    chan struct{}
	stderr    *harness.Output
}

func newRsyslogd(dir string) (*rsyslogd, error) {
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o700); err != nil {
		return nil, err
	}
	port, err := freeStaticPort()
	if err != nil {
		return nil, err
	}
	r := &rsyslogd{dir: dir, port: port, stderr: &harness.Output{Max: 1 << 20}}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp" maxSessions="32")
template(name="t_chaos" type="string" string="%%timegenerated:::date-rfc3339%% %%msg%%\n")
ruleset(name="r_chaos") { action(type="omfile" file=%q template="t_chaos") }
input(type="imtcp" address="127.0.0.1" port=%q ruleset="r_chaos")
`, filepath.Join(dir, "work"), r.out(), port)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rsyslogd) kind() string { return "rsyslogd " + rsyslogPath }
func (r *rsyslogd) addr() string { return "127.0.0.1:" + r.port }
func (r *rsyslogd) out() string  { return filepath.Join(r.dir, "received.log") }

func (r *rsyslogd) start() error {
	cmd := exec.Command(rsyslogPath, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	cmd.SysProcAttr = harness.ChildAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", r.addr(), time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("rsyslogd exited at start:\n%s", strings.TrimSpace(r.stderr.String()))
		default:
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return fmt.Errorf("rsyslogd does not accept on %s: %w\n%s", r.addr(), err, strings.TrimSpace(r.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends rsyslogd as an init system would: SIGTERM, and SIGKILL if it
// has not exited within 10 s.
func (r *rsyslogd) stop() error {
	if r.cmd == nil {
		return nil
	}
	defer func() { r.cmd = nil }()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
		return errors.New("rsyslogd did not stop within 10s of SIGTERM; killed")
	}
}

// freeStaticPort returns a free loopback port below the ephemeral range, so
// that an outgoing connection does not take it while rsyslogd is down.
func freeStaticPort() (string, error) {
	for range 200 {
		port := strconv.Itoa(20000 + rand.IntN(12000))
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err == nil {
			_ = ln.Close()
			return port, nil
		}
	}
	return "", errors.New("no free port between 20000 and 32000")
}

// tcpSyslog is the in-process stand-in for rsyslogd: it reads octet-counted
// RFC 5424 messages over TCP and writes their MSG part the way the rsyslogd
// configuration above does.
type tcpSyslog struct {
	dir, address string
	srv          *harness.OctetServer
	mu           sync.Mutex // guards the output file
	f            *os.File
}

func newTCPSyslog(dir string) (*tcpSyslog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freeStaticPort()
	if err != nil {
		return nil, err
	}
	return &tcpSyslog{dir: dir, address: "127.0.0.1:" + port}, nil
}

func (s *tcpSyslog) kind() string { return "in-process TCP receiver (rsyslogd not installed)" }
func (s *tcpSyslog) addr() string { return s.address }
func (s *tcpSyslog) out() string  { return filepath.Join(s.dir, "received.log") }

func (s *tcpSyslog) start() error {
	f, err := os.OpenFile(s.out(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.f = f
	srv, err := harness.ListenOctets(s.address, s.write)
	if err != nil {
		f.Close()
		return fmt.Errorf("syslog receiver: %w", err)
	}
	s.srv = srv
	return nil
}

// write records one message's MSG part, as the rsyslogd configuration does.
func (s *tcpSyslog) write(msg []byte) {
	// MSG follows the structured data; the header and the structured data
	// of the bridge's messages hold no '{'.
	if i := bytes.IndexByte(msg, '{'); i >= 0 {
		msg = msg[i:]
	}
	line := append([]byte(time.Now().UTC().Format(time.RFC3339Nano)+" "), msg...)
	line = append(line, '\n')
	s.mu.Lock()
	_, _ = s.f.Write(line)
	s.mu.Unlock()
}

func (s *tcpSyslog) stop() error {
	if s.srv == nil {
		return nil
	}
	s.srv.Close()
	err := s.f.Close()
	s.srv, s.f = nil, nil
	return err
}
