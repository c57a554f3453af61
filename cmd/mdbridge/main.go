// Command mdbridge carries security events out of OPSWAT MetaDefender OT
// Security into a SOC's tooling: it polls, journals durably, and delivers
// every event to every configured sink at least once.
//
// Usage:
//
//	mdbridge run -c FILE        run the bridge
//	mdbridge validate -c FILE   print the resolved config (secrets redacted) or every problem
//	mdbridge replay -c FILE --sink NAME [--since T] [--until T]
//	                            deliver a sink's dead-letter file, or a journal window, again
//	mdbridge backfill -c FILE --source S --stream X --since T [--until T] [--to SINK] [--format F]
//	                            fetch a time window from the API again; print it or deliver it to a sink
//	mdbridge status [-c FILE | --admin ADDR] [--json]   a running bridge's streams and sinks
//	mdbridge state inspect|check|compact [-c FILE | --path STATEFILE]
//	                            the state file, offline: contents, integrity, compaction
//	mdbridge demo [--dir D] [--for 30s]   run against a built-in simulator, no setup
//	mdbridge version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `mdbridge carries OPSWAT MetaDefender events to NATS, syslog, webhooks and files.

Usage:
  mdbridge run -c FILE                   run the bridge with a config file
  mdbridge validate -c FILE              check a config: print it resolved (secrets redacted) or list every problem
  mdbridge replay -c FILE --sink NAME    deliver the sink's dead-letter file again (works while the bridge runs)
  mdbridge replay -c FILE --sink NAME --since T [--until T]
                                         deliver the journal entries received in [T, until) again
                                         (T: RFC 3339 or a duration ago such as 2h; the bridge must be stopped)
  mdbridge backfill -c FILE --source S --stream X --since T [--until T] [--to SINK] [--format F]
                   [--site IP] [--sensor IP] [--timeout DUR]
                                         fetch stream X's records of [T, until) from the API again and print
                                         them (json, cef, leef or ocsf) or deliver them to SINK; never moves
                                         a watermark or cursor (works while the bridge runs)
  mdbridge status [-c FILE | --admin ADDR] [--json]
                                         a running bridge's streams and sinks, from its /status
  mdbridge state inspect [-c FILE | --path STATEFILE] [--json]
                                         watermarks, cursors, journal and dead-letter files (bridge stopped)
  mdbridge state check [-c FILE | --path STATEFILE] [--json]
                                         check the state file's integrity; exits 1 on any problem
  mdbridge state compact [-c FILE | --path STATEFILE] [--out FILE]
                                         rewrite the state file without its free pages (bridge stopped)
  mdbridge demo [--dir DIR] [--for DUR]  run against a built-in OT Security simulator, writing DIR/events.jsonl
  mdbridge version                       print the version

The config file may also be given as MDBRIDGE_CONFIG.
`

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "replay":
		err = cmdReplay(ctx, args[1:], stdout, stderr)
	case "backfill":
		err = cmdBackfill(ctx, args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout, stderr)
	case "state":
		err = cmdState(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mdbridge", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mdbridge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mdbridge:", err)
		return 1
	}
	return 0
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}
