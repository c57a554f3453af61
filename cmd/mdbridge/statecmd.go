package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/state"
)

// stateLockTimeout is how long the state commands wait for a bridge to
// release the file before saying it is in use.
const stateLockTimeout = time.Second

// cmdState runs `mdbridge state inspect|check|compact`: offline tools on the
// state file, refused while a bridge holds it.
func cmdState(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("state: want a subcommand: inspect, check or compact")
	}
	sub := args[0]
	switch sub {
	case "inspect", "check", "compact":
	default:
		return fmt.Errorf("state: unknown subcommand %q (inspect, check or compact)", sub)
	}
	fs := flag.NewFlagSet("state "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	statePath := fs.String("path", "", "the state file (default: state.path of the config)")
	asJSON := fs.Bool("json", false, "print JSON")
	var out *string
	if sub == "compact" {
		out = fs.String("out", "", "write the compacted copy to this new file instead of replacing the state file")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	path := *statePath
	if path == "" {
		if *cfgPath == "" {
			return fmt.Errorf("state %s: -c FILE or --path STATEFILE is required", sub)
		}
		cfg, err := configs.Load(*cfgPath, os.Environ())
		if err != nil {
			return fmt.Errorf("config %s:\n%w", *cfgPath, err)
		}
		path = cfg.State.Path
	}
	switch sub {
	case "inspect":
		return stateInspect(path, *asJSON, stdout)
	case "check":
		return stateCheck(path, *asJSON, stdout)
	}
	return stateCompact(path, *out, *asJSON, stdout)
}

// stateDeadLetterDir is the dead-letter directory of a state file, as the
// bridge uses it.
func stateDeadLetterDir(statePath string) string {
	return deadLetterDir(&configs.Config{State: configs.State{Path: statePath}})
}

func openStateReadOnly(path string) (*state.Store, error) {
	s, err := state.OpenReadOnly(path, state.Options{LockTimeout: stateLockTimeout})
	if err != nil {
		return nil, fmt.Errorf("the state tools need the bridge stopped: %w", err)
	}
	return s, nil
}

// deadLetterFile is one file of the dead-letter directory.
type deadLetterFile struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	Lines int    `json:"lines"`
	// Torn is set when the file ends in a line cut short (a crash during a
	// write).
	Torn bool `json:"torn,omitempty"`
}

// inspection is `state inspect --json`.
type inspection struct {
	state.Report
	DeadLetterDir string           `json:"dead_letter_dir"`
	DeadLetter    []deadLetterFile `json:"dead_letter"`
}

func stateInspect(path string, asJSON bool, stdout io.Writer) error {
	s, err := openStateReadOnly(path)
	if err != nil {
		return err
	}
	rep, err := s.Inspect()
	_ = s.Close()
	if err != nil {
		return err
	}
	in := inspection{Report: rep, DeadLetterDir: stateDeadLetterDir(path)}
	if in.DeadLetter, err = listDeadLetters(in.DeadLetterDir); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return renderInspection(stdout, in)
}

// listDeadLetters lists the sinks' dead-letter files (and those a replay
// has claimed), with their line counts; none when the directory is absent.
func listDeadLetters(dir string) ([]deadLetterFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter directory: %w", err)
	}
	var out []deadLetterFile
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.Contains(e.Name(), ".deadletter.jsonl") {
			continue
		}
		f, err := countDeadLetterLines(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		f.Name = e.Name()
		out = append(out, f)
	}
	return out, nil
}

func countDeadLetterLines(path string) (deadLetterFile, error) {
	var d deadLetterFile
	f, err := os.Open(path)
	if err != nil {
		return d, fmt.Errorf("dead-letter: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	last := byte('\n')
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c == '\n' {
				d.Lines++
			}
		}
		if n > 0 {
			last = buf[n-1]
			d.Bytes += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return d, fmt.Errorf("dead-letter: %s: %w", path, err)
		}
	}
	d.Torn = last != '\n'
	return d, nil
}

func renderInspection(w io.Writer, in inspection) error {
	r := in.Report
	j := r.Journal
	fmt.Fprintf(w, "state file:      %s\n", r.Path)
	fmt.Fprintf(w, "schema version:  %s\n", orDash(r.SchemaVersion))
	fmt.Fprintf(w, "file size:       %s (page size %s)\n", humanBytes(r.FileSize), humanBytes(int64(r.PageSize)))
	fmt.Fprintf(w, "journal:         %d entries, %s", j.Entries, humanBytes(int64(j.Bytes)))
	if j.Entries > 0 {
		fmt.Fprintf(w, ", seq %d to %d", j.FirstSeq, j.LastSeq)
	}
	fmt.Fprintf(w, "; last seq handed out %d\n", j.LastSeq)
	if j.Commits > 0 {
		fmt.Fprintf(w, "commits:         %d, %s to %s\n", j.Commits, j.Oldest.Format(time.RFC3339), j.Newest.Format(time.RFC3339))
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTREAM\tWATERMARK\tFLOOR\tSEQ\tGAPS\tSEEN")
	for _, s := range r.Streams {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", s.ID, timeOrDash(s.Watermark), timeOrDash(s.Floor), s.LastSeq, s.Gaps, s.Seen)
	}
	if len(r.Streams) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	fmt.Fprintln(tw, "\nSINK\tCURSOR\tBACKLOG")
	for _, s := range r.Sinks {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", s.Name, s.Cursor, s.Backlog)
	}
	if len(r.Sinks) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.DeadLetter) == 0 {
		_, err := fmt.Fprintf(w, "\ndead-letter:     none in %s\n", in.DeadLetterDir)
		return err
	}
	fmt.Fprintf(w, "\ndead-letter files in %s:\n", in.DeadLetterDir)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tLINES\tSIZE")
	for _, f := range in.DeadLetter {
		note := ""
		if f.Torn {
			note = "\t(last line cut short)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s%s\n", f.Name, f.Lines, humanBytes(f.Bytes), note)
	}
	return tw.Flush()
}

func stateCheck(path string, asJSON bool, stdout io.Writer) error {
	s, err := openStateReadOnly(path)
	if err != nil {
		return err
	}
	problems := s.Check()
	_ = s.Close()
	if asJSON {
		if problems == nil {
			problems = []state.Problem{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"path": path, "problems": problems}); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("state check: %s has %d problems", path, len(problems))
	}
	if !asJSON {
		fmt.Fprintf(stdout, "%s: no problems found\n", path)
	}
	return nil
}

func stateCompact(path, out string, asJSON bool, stdout io.Writer) error {
	before, after, err := state.Compact(path, out, state.Options{LockTimeout: stateLockTimeout})
	if err != nil {
		return err
	}
	dst := path
	if out != "" {
		dst = out
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"path": path, "out": dst, "bytes_before": before, "bytes_after": after})
	}
	_, err = fmt.Fprintf(stdout, "compacted %s into %s: %s -> %s (%d -> %d bytes)\n", path, dst, humanBytes(before), humanBytes(after), before, after)
	return err
}

// humanBytes renders a size with a binary unit and one decimal.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
