//go:build linux

package syslog

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestReceiverResetLosesNothing plays rsyslogd stopping with a batch in its
// socket buffer that it never read: it closes with SO_LINGER 0, so the
// bytes are gone and the sink sees a reset. The write of that batch had
// succeeded; the sink writes it again on the next connection, so the
// restarted receiver gets every event (before, the reliability suite lost
// a 17-event batch exactly like this).
//
// With resend_bytes: 0 the first batch is lost, as the setting says.
func TestReceiverResetLosesNothing(t *testing.T) {
	for _, resend := range []pipeline.ByteSize{DefaultConfig().ResendBytes, 0} {
		t.Run(fmt.Sprint("resend_bytes=", resend), func(t *testing.T) { resetCase(t, resend) })
	}
}

func resetCase(t *testing.T, resend pipeline.ByteSize) {
	addr := freeAddr(t)
	ln := listenOn(t, addr)
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c.(*net.TCPConn)
		}
	}()
	cfg := testConfig("tcp://" + addr)
	cfg.ResendBytes = resend
	s := mustNew(t, cfg)
	if got := s.RedeliverBytes(); got != int(resend) {
		t.Errorf("RedeliverBytes() = %d, want resend_bytes %d", got, resend)
	}
	first := entriesOf(t, seqEvents(1, 5)...)
	if err := s.Deliver(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	var c *net.TCPConn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink never connected")
	}
	// Wait until the batch sits in the receiver's socket, unread, then
	// close with a reset: those bytes are discarded.
	for deadline := time.Now().Add(5 * time.Second); unreadBytes(t, c) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the batch never reached the receiver's socket")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.SetLinger(0)
	_ = c.Close()
	_ = ln.Close()
	waitDead(t, s)

	rcv := newStreamReceiverAt(t, addr)
	second := entriesOf(t, seqEvents(6, 3)...)
	if err := s.Deliver(context.Background(), second); err != nil {
		t.Fatalf("Deliver after the reset: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := parseStream(t, RFC5424, OctetCounting, rcv.wait(t))
	want := seqStrings(slices.Concat(first, second))
	if resend == 0 {
		want = seqStrings(second)
	}
	if !slices.Equal(seqsOf(got), want) {
		t.Fatalf("the restarted receiver got seqs %v, want %v", seqsOf(got), want)
	}
}

// unreadBytes is how many bytes wait in c's receive buffer (SIOCINQ).
func unreadBytes(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	return n
}
