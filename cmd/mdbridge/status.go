package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
)

// maxStatusBytes bounds the /status body read.
const maxStatusBytes = 16 << 20

// cmdStatus asks a running bridge for its /status and prints it as tables,
// or passes the JSON through.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	admin := fs.String("admin", "", "the bridge's admin address (host:port); default: admin.listen of the config")
	asJSON := fs.Bool("json", false, "print /status as the bridge serves it (JSON)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up on the bridge after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr := *admin
	if addr == "" {
		if *path == "" {
			return errors.New("status: -c FILE or --admin ADDR is required")
		}
		cfg, err := configs.Load(*path, os.Environ())
		if err != nil {
			return fmt.Errorf("config %s:\n%w", *path, err)
		}
		if addr, err = dialAddr(cfg.Admin.Listen); err != nil {
			return fmt.Errorf("status: admin.listen of %s %w; pass --admin ADDR", *path, err)
		}
	}
	body, err := fetchStatus(ctx, addr, *timeout)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var snap pipeline.Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return fmt.Errorf("status: %s/status is not a bridge's status: %w", addr, err)
	}
	return renderStatus(stdout, snap, time.Now())
}

// dialAddr turns a listen address into one to connect to: a wildcard host
// is reached on loopback.
func dialAddr(listen string) (string, error) {
	if listen == "" {
		return "", errors.New(`is "" (the admin server is off)`)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", listen)
	}
	if port == "0" {
		return "", errors.New("has port 0, chosen anew at every start")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// fetchStatus GETs http://addr/status within timeout.
func fetchStatus(ctx context.Context, addr string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no bridge answers on %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	if err != nil {
		return nil, fmt.Errorf("status: reading %s/status: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: the bridge on %s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return body, nil
}

// renderStatus prints the streams, the sinks and the journal as aligned
// tables.
func renderStatus(w io.Writer, s pipeline.Snapshot, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tWATERMARK\tLAG\tPOLLS\tERRORS\tEVENTS\tGAPS\tSTATE")
	for _, st := range s.Streams {
		wm, lag := "-", "-"
		if !st.Watermark.IsZero() {
			wm = st.Watermark.UTC().Format(time.RFC3339)
			lag = max(now.Sub(st.Watermark), 0).Round(time.Second).String()
		}
		state := "ok"
		switch {
		case st.Failing:
			state = "failing: " + st.LastError
		case st.LastError != "":
			state = "ok (last error: " + st.LastError + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", st.ID, wm, lag, st.Polls, st.Errors, st.Events, st.Gaps, oneLine(state))
	}
	if len(s.Streams) == 0 {
		fmt.Fprintln(tw, "(none yet)")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SINK\tSTATE\tCURSOR\tBACKLOG\tDELIVERED\tRETRIES\tDEAD-LETTERED")
	for _, k := range s.Sinks {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", k.Name, k.State, k.Cursor, k.Lag, k.Delivered, k.Retries, k.DeadLettered)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\njournal: last seq %d\n", s.LastSeq)
	kinds := make([]string, 0, len(s.Kinds))
	for _, k := range sortedKeys(s.Kinds) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.Kinds[k]))
	}
	if len(kinds) == 0 {
		kinds = append(kinds, "none yet")
	}
	_, err := fmt.Fprintf(w, "events by kind: %s\n", strings.Join(kinds, ", "))
	return err
}

// oneLine keeps an error message on its row of the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
