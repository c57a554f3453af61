package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mdbridge/mdbridge/cmd/internal/harness"
)

// sinkNames are the sinks -sinks may list.
var sinkNames = []string{"file", "nats", "syslog", "webhook"}

// receiver is the far end of one bridge sink, run inside mdload on
// loopback: it counts the events that arrived.
type receiver interface {
	// name is the sink's name in the bridge config.
	name() string
	// yaml is the sink's entry under `sinks:` (indented by four spaces).
	yaml() string
	// count returns the events received so far.
	count() (int64, error)
	close()
}

func startReceivers(ctx context.Context, names []string, dir string) ([]receiver, error) {
	var out []receiver
	closeAll := func() {
		for _, r := range out {
			r.close()
		}
	}
	for _, n := range names {
		var r receiver
		var err error
		switch n {
		case "file":
			r = &fileReceiver{lc: &lineCounter{path: filepath.Join(dir, "out", "events.jsonl")}}
		case "nats":
			r, err = startNATS(ctx, filepath.Join(dir, "nats"))
		case "syslog":
			r, err = startSyslog()
		case "webhook":
			r, err = startWebhook()
		default:
			err = fmt.Errorf("unknown sink %q (known: %s)", n, strings.Join(sinkNames, ", "))
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s receiver: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// fileReceiver counts the lines of the file sink's output.
type fileReceiver struct{ lc *lineCounter }

func (r *fileReceiver) name() string { return "file" }
func (r *fileReceiver) yaml() string {
	return fmt.Sprintf(`  file:
    type: file
    path: %q
    sync: batch
    max_bytes: 1TiB    # one file, never rotated: the line count is the event count
`, r.lc.path)
}
func (r *fileReceiver) count() (int64, error) { return r.lc.update() }
func (r *fileReceiver) close()                { r.lc.close() }

// natsReceiver is an embedded nats-server with JetStream and a file-backed
// stream; its count is the stream's message count, which deduplicates by
// Nats-Msg-Id, so it is the number of distinct events.
type natsReceiver struct {
	srv    *server.Server
	nc     *nats.Conn
	stream jetstream.Stream
}

func startNATS(ctx context.Context, storeDir string) (*natsReceiver, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir,
		NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var st jetstream.Stream
		// allow_batched, as the sink sets it on a stream it creates
		// itself, so the sink publishes in fast batches.
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "MDLOAD", Subjects: []string{"mdbridge.>"},
			Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, AllowBatchPublish: true})
		if err == nil {
			return &natsReceiver{srv: srv, nc: nc, stream: st}, nil
		}
	}
	nc.Close()
	srv.Shutdown()
	return nil, err
}

func (r *natsReceiver) name() string { return "nats" }
func (r *natsReceiver) yaml() string {
	return fmt.Sprintf(`  nats:
    type: nats
    url: %q
    jetstream: true    # the stream MDLOAD (mdbridge.>) exists already
`, r.srv.ClientURL())
}
func (r *natsReceiver) count() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := r.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Msgs), nil
}
func (r *natsReceiver) close() { r.nc.Close(); r.srv.Shutdown(); r.srv.WaitForShutdown() }

// syslogReceiver counts the octet-counted frames (RFC 6587) it receives,
// without parsing them further.
type syslogReceiver struct {
	srv *harness.OctetServer
	n   atomic.Int64
}

func startSyslog() (*syslogReceiver, error) {
	r := &syslogReceiver{}
	srv, err := harness.ListenOctets("127.0.0.1:0", func([]byte) { r.n.Add(1) })
	if err != nil {
		return nil, err
	}
	r.srv = srv
	return r, nil
}

func (r *syslogReceiver) name() string { return "syslog" }
func (r *syslogReceiver) yaml() string {
	return fmt.Sprintf(`  syslog:
    type: syslog
    address: "tcp://%s"
`, r.srv.Addr())
}
func (r *syslogReceiver) count() (int64, error) { return r.n.Load(), nil }
func (r *syslogReceiver) close()                { r.srv.Close() }

// webhookReceiver answers 204 to every POST and counts the events by the
// Mdbridge-Events header the webhook sink sets.
type webhookReceiver struct {
	srv *http.Server
	ln  net.Listener
	n   atomic.Int64
}

func startWebhook() (*webhookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &webhookReceiver{ln: ln}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n, err := strconv.Atoi(req.Header.Get("Mdbridge-Events"))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.n.Add(int64(n))
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *webhookReceiver) name() string { return "webhook" }
func (r *webhookReceiver) yaml() string {
	return fmt.Sprintf(`  webhook:
    type: webhook
    url: "http://%s/hook"
    batch: 500
`, r.ln.Addr())
}
func (r *webhookReceiver) count() (int64, error) { return r.n.Load(), nil }
func (r *webhookReceiver) close()                { _ = r.srv.Close() }
