// Command mdload measures mdbridge end to end: it starts the OT Security
// simulator (cmd/mdsim) on 127.0.0.1 with a backlog, runs `mdbridge run` as a
// separate process with a file sink, waits until every record is in the
// output file, stops the bridge with SIGTERM and reports the bridge process's
// own resource usage.
//
//	go run ./cmd/mdload [-streams 100] [-per-stream 10000] [-json] [-keep]
//	go run ./cmd/mdload -rate 2000 -duration 60s [-backlog 100]
//
// The first form drains a backlog of streams x per-stream records (streams is
// sites x sensors x the stream kinds of -kinds, by default the three alert
// streams and the device inventory) and reports wall time, events/s, CPU per
// 1000 events, peak RSS and output bytes per event. The second runs the
// simulator's generator at -rate records/s for -duration and reports how far
// the output file lags behind what the simulator generated.
//
// Both binaries are built from the module (run mdload from inside it) unless
// -mdbridge and -mdsim name them. Everything runs on loopback in a new
// temporary directory, deleted at the end unless -keep.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
