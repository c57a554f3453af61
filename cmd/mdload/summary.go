package main

import (
	"fmt"
	"io"
	"strings"
)

// printSummary writes one human-readable block.
func printSummary(w io.Writer, r *result) {
	var b strings.Builder
	p := func(label, format string, a ...any) {
		fmt.Fprintf(&b, "  %-16s "+format+"\n", append([]any{label}, a...)...)
	}
	status := "complete"
	switch {
	case r.Interrupted:
		status = "INTERRUPTED"
	case !r.Complete:
		status = "INCOMPLETE"
	}
	if r.Mode == "rate" {
		fmt.Fprintf(&b, "mdload: rate mode, %d streams (%d sites x %d sensors x %s), backlog %d per stream, %g records/s for %gs, %d CPUs: %s\n",
			r.Streams, r.Sites, r.SensorsPerSite, strings.Join(r.Kinds, "+"), r.Backlog, r.Rate, r.DurationSec, r.CPUs, status)
	} else {
		fmt.Fprintf(&b, "mdload: backlog mode, %d streams (%d sites x %d sensors x %s) x %d records = %d events, %d CPUs: %s\n",
			r.Streams, r.Sites, r.SensorsPerSite, strings.Join(r.Kinds, "+"), r.PerStream, r.Target, r.CPUs, status)
	}
	p("simulator", "backlog filled in %.1f s; CPU %d ms over its life (fill included), peak RSS %.1f MiB", r.SimFillSec, r.SimCPUMS, r.SimPeakRSSMiB)
	if r.Requests != nil {
		p("upstream", "%d requests, %d records served, %.1f MiB of bodies (counted by mdload's proxy)",
			*r.Requests, *r.RecordsServed, float64(*r.ResponseBytes)/(1<<20))
	} else {
		p("upstream", "requests and records served: not measured (mdsim does not report them; -count-requests adds a counting proxy)")
	}
	if r.Mode == "rate" {
		p("events", "%d in the output after %.1f s (simulator generated about %d by then, backlog included)", r.Events, r.WallSec, r.Expected)
		if r.WarmupSec > 0 || r.Backlog == 0 {
			p("warm-up", "%.1f s until the backlog was out", r.WarmupSec)
		} else {
			p("warm-up", "the backlog was never out")
		}
		p("lag", "max %.1f s after warm-up (median %.1f s, p90 %.1f s), final %.1f s (%d one-second samples; lag = (generated - in file) / rate)",
			r.MaxLagSec, r.MedianLagSec, r.P90LagSec, r.FinalLagSec, r.Samples)
	} else {
		p("wall", "%.2f s from bridge start to the last event (first event after %.2f s; sampled every 100 ms)", r.WallSec, r.FirstEventSec)
		p("events", "%d of %d", r.Events, r.Target)
	}
	if len(r.Sinks) > 1 {
		var per []string
		for _, n := range r.Sinks {
			per = append(per, fmt.Sprintf("%s %d", n, r.PerSink[n]))
		}
		p("sinks", "%s (events count once every sink has them)", strings.Join(per, ", "))
	}
	p("throughput", "%.0f events/s", r.EventsPerSec)
	p("bridge CPU", "user %d ms + sys %d ms = %.1f ms per 1000 events", r.CPUUserMS, r.CPUSysMS, r.CPUMSPer1000)
	if r.PeakAnonMiB > 0 || r.PeakFileMiB > 0 {
		p("bridge RSS", "peak %.1f MiB (rusage); sampled peaks: anonymous %.1f MiB, mapped files %.1f MiB", r.PeakRSSMiB, r.PeakAnonMiB, r.PeakFileMiB)
	} else {
		p("bridge RSS", "peak %.1f MiB", r.PeakRSSMiB)
	}
	p("output", "%.1f MiB, %.0f bytes per event", float64(r.OutputBytes)/(1<<20), r.BytesPerEvent)
	p("state file", "%.1f MiB", float64(r.StateBytes)/(1<<20))
	p("bridge stop", "exit %d, %.2f s after SIGTERM; log: %d warnings, %d errors; %d dead-lettered", r.BridgeExit, r.BridgeStopSec, r.LogWarnings, r.LogErrors, r.DeadLettered)
	if r.LogSample != "" {
		for _, l := range strings.Split(r.LogSample, "\n") {
			p("", "%.300s", l)
		}
	}
	if r.Compete > 0 {
		p("competing load", "%.2f of one CPU busy-looped in mdload during the run (-compete)", r.Compete)
	}
	p("mdload CPU", "%d ms (line counting, sampling, proxy if any, -compete if any)", r.SelfCPUMS)
	if r.Dir != "" {
		p("kept", "%s", r.Dir)
	}
	_, _ = io.WriteString(w, b.String())
}
