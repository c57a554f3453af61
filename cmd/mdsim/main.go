// Command mdsim runs a fake MetaDefender OT Security Enterprise Manager
// (package otsectest) on a loopback port, for demos and load tests of the
// bridge. It creates a backlog of records at start, keeps adding records at
// a steady rate, can inject faults, and serves until SIGINT or SIGTERM.
//
//	mdsim -listen 127.0.0.1:3003 -sites 2 -sensors 3 -backlog 10000 -rate 50
//
// With -mdss-listen it also serves a fake MetaDefender Storage Security
// (package mdsstest) beside it: a backlog of finished scans, new scans at
// -mdss-rate, an API key and a user, and optionally webhooks:
//
//	mdsim -mdss-listen 127.0.0.1:8005 -mdss-rate 0.2 -mdss-webhook http://127.0.0.1:9000/mdss
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mdsim:", err)
		os.Exit(1)
	}
}
