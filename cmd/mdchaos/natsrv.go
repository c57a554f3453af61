package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamName is the JetStream stream the bridge publishes into.
const streamName = "MDCHAOS"

// dupWindow is the stream's duplicate window: the nats sink's documented
// default. An event sent again later than this after its first copy is
// stored twice, which the check reports.
const dupWindow = 2 * time.Minute

// natsServer is a real nats-server with JetStream on file storage, embedded,
// that the driver stops and starts again on the same port with the same
// store directory, as an operator restarting it would.
type natsServer struct {
	storeDir string
	port     int
	srv      *server.Server
}

func (n *natsServer) options() *server.Options {
	return &server.Options{Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.storeDir,
		NoLog: true, NoSigs: true, MaxPayload: 8 << 20}
}

func (n *natsServer) start() error {
	srv, err := server.NewServer(n.options())
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats-server on port %d did not start", n.port)
	}
	n.srv = srv
	return nil
}

// startNATS starts the server on a free port and creates the stream.
func startNATS(ctx context.Context, storeDir string) (*natsServer, error) {
	n := &natsServer{storeDir: storeDir, port: -1}
	if err := n.start(); err != nil {
		return nil, err
	}
	tcp, ok := n.srv.Addr().(*net.TCPAddr)
	if !ok {
		n.stop()
		return nil, errors.New("nats-server has no TCP address")
	}
	n.port = tcp.Port
	nc, err := nats.Connect(n.url())
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("connect to nats-server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"mdbridge.>"},
			Storage: jetstream.FileStorage, Duplicates: dupWindow})
	}
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("create stream %s: %w", streamName, err)
	}
	return n, nil
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// stop shuts the server down and waits until it has.
func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// jsContents is what the stream holds, read back message by message.
type jsContents struct {
	msgs       []delivery
	streamMsgs uint64 // the stream's own count
	badHeader  int    // messages whose Nats-Msg-Id is not the body's id
}

// readStream reads every message of the stream with an ordered consumer.
// A message's arrival is the time JetStream stored it.
func (n *natsServer) readStream(ctx context.Context) (*jsContents, error) {
	nc, err := nats.Connect(n.url())
	if err != nil {
		return nil, fmt.Errorf("connect to nats-server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", streamName, err)
	}
	out := &jsContents{streamMsgs: info.State.Msgs}
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", streamName, err)
	}
	for {
		batch, err := cons.Fetch(2000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch from %s: %w", streamName, err)
		}
		got, last := 0, uint64(0)
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("message metadata: %w", err)
			}
			d, err := parseEvent(m.Data())
			if err != nil {
				d = delivery{EventID: "unparsable:" + m.Headers().Get("Nats-Msg-Id")}
			} else if m.Headers().Get(nats.MsgIdHdr) != d.EventID {
				out.badHeader++
			}
			d.At = meta.Timestamp
			out.msgs = append(out.msgs, d)
			last = meta.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("fetch from %s: %w", streamName, err)
		}
		if got > 0 && last == 0 {
			return out, nil
		}
		if got == 0 {
			return nil, fmt.Errorf("stream %s: read %d of %d messages, then nothing more", streamName, len(out.msgs), info.State.Msgs)
		}
	}
}
