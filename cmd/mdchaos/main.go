// Command mdchaos is the reliability suite of mdbridge: it runs the bridge
// as a process between a simulated OT Security Enterprise Manager and all
// four sinks for a while, and meanwhile a seeded chaos driver kills the
// bridge with SIGKILL, restarts nats-server, stops rsyslogd, makes the
// webhook receiver answer 503 and makes the upstream API fail. At the end it
// heals everything, waits for the sinks to catch up and checks that every
// upstream record reached every sink and that JetStream holds each event
// exactly once. It prints a block of figures and exits non-zero on any loss
// or JetStream duplicate.
//
//	go run ./cmd/mdchaos -duration 10m -kills 20
//	go run ./cmd/mdchaos -duration 1m -kills 5 -seed 42 -keep
//
// The upstream fake (package otsectest, as cmd/mdsim serves it), the
// nats-server (embedded, JetStream on file storage) and the webhook receiver
// run inside mdchaos on loopback; the bridge and rsyslogd are processes. See
// README.md for what each figure means.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
