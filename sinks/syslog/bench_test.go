package syslog

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

// benchBatch is 1000 realistic events of about 1.2 KB of JSON.
func benchBatch(b *testing.B) ([]pipeline.Entry, int) {
	const batchSize = 1000
	batch := make([]pipeline.Entry, batchSize)
	size := 0
	for i := range batch {
		e := testEvent(uint64(i + 1))
		e.Vulnerability = nil
		e.Raw = []byte(`{"id":"al-1","alertType":"device","criticality":"High","alertStarted":"2026-03-07T09:05:04Z","acknowledged":false}`)
		batch[i] = pipeline.Entry{Seq: e.Seq, Data: marshal(b, e)}
		size += len(batch[i].Data)
	}
	return batch, size
}

// discardServer accepts stream connections and reads them to io.Discard.
func discardServer(b *testing.B, tlsConf *tls.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// discardUDP reads datagrams and drops them. Over loopback a datagram
// stays charged to the sender's socket until the receiver reads it, so the
// receiver gets a large buffer and reads without allocating.
func discardUDP(b *testing.B) string {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = pc.SetReadBuffer(4 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, err := pc.Read(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func benchDeliver(b *testing.B, cfg Config) {
	batch, size := benchBatch(b)
	s, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Deliver(ctx, batch); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Deliver(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(batch))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(size)/float64(len(batch)), "B/event")
}

// BenchmarkDeliverTCP sends batches of 1000 events (json, rfc5424, octet
// counting) to a loopback TCP receiver; one op is one batch.
func BenchmarkDeliverTCP(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Address = "tcp://" + discardServer(b, nil)
	benchDeliver(b, cfg)
}

// BenchmarkDeliverTLS is BenchmarkDeliverTCP over TLS.
func BenchmarkDeliverTLS(b *testing.B) {
	pki := newPKI(b)
	cfg := DefaultConfig()
	cfg.Address = "tls://" + discardServer(b, pki.serverTLS(b, false))
	cfg.TLS.CAFile = pki.caFile
	benchDeliver(b, cfg)
}

// BenchmarkDeliverUDP sends the same batches as one datagram per event.
func BenchmarkDeliverUDP(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Address = "udp://" + discardUDP(b)
	benchDeliver(b, cfg)
}
