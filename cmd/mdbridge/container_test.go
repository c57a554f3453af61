package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction: its keyword upper-cased and
// its arguments with line continuations joined.
type instruction struct {
	cmd, args string
	line      int
}

// parseDockerfile splits a Dockerfile into stages (each starting at FROM) of
// instructions. It knows comments, blank lines and backslash continuations,
// which is all the project's Dockerfile uses.
func parseDockerfile(text string) [][]instruction {
	var stages [][]instruction
	var cur strings.Builder
	start := 0
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start}
		if in.cmd == "FROM" || len(stages) == 0 {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = i + 1
		} else if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// TestContainerRunsAsNonRoot reads the Dockerfile as `docker build` would
// and checks the image that runs: its last USER is the distroless nonroot
// user (uid 65532), not root; ENTRYPOINT and CMD are in exec (JSON) form, so
// no shell runs in front of mdbridge and signals reach it; the state
// directory is a declared volume owned by that user, and the state path
// points into it.
func TestContainerRunsAsNonRoot(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(string(b))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	last := func(cmd string) (instruction, bool) {
		for i := len(final) - 1; i >= 0; i-- {
			if final[i].cmd == cmd {
				return final[i], true
			}
		}
		return instruction{}, false
	}

	user, ok := last("USER")
	if !ok {
		t.Fatal("the final stage sets no USER: the image would run as the base image's user")
	}
	name, group, _ := strings.Cut(user.args, ":")
	nonRoot := []string{"65532", "nonroot"}
	if !slices.Contains(nonRoot, name) || (group != "" && !slices.Contains(nonRoot, group)) {
		t.Errorf("line %d: USER %s, want 65532 or nonroot (never root or 0)", user.line, user.args)
	}

	for _, cmd := range []string{"ENTRYPOINT", "CMD"} {
		in, ok := last(cmd)
		if !ok {
			if cmd == "ENTRYPOINT" {
				t.Error("the final stage has no ENTRYPOINT")
			}
			continue
		}
		var argv []string
		if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
			t.Errorf("line %d: %s %s is in shell form; want exec form such as [\"/usr/local/bin/mdbridge\"]", in.line, cmd, in.args)
			continue
		}
		if cmd == "ENTRYPOINT" && (argv[0] == "/bin/sh" || argv[0] == "sh" || argv[0] == "/bin/bash") {
			t.Errorf("line %d: ENTRYPOINT runs a shell: %s", in.line, in.args)
		}
	}

	const stateDir = "/var/lib/mdbridge"
	var volumes []string
	for _, in := range final {
		if in.cmd != "VOLUME" {
			continue
		}
		var list []string
		if json.Unmarshal([]byte(in.args), &list) != nil {
			list = strings.Fields(in.args)
		}
		volumes = append(volumes, list...)
	}
	if !slices.Contains(volumes, stateDir) {
		t.Errorf("VOLUME declares %q, want %s", volumes, stateDir)
	}
	owned := false
	for _, in := range final {
		if in.cmd == "COPY" && strings.Contains(in.args, "--chown=65532:65532") && strings.HasSuffix(in.args, " "+stateDir) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("no COPY --chown=65532:65532 ... %s: the nonroot user could not write its state", stateDir)
	}
	statePath := ""
	for _, in := range final {
		if in.cmd == "ENV" && strings.HasPrefix(in.args, "MDBRIDGE_STATE__PATH=") {
			statePath = strings.TrimPrefix(in.args, "MDBRIDGE_STATE__PATH=")
		}
	}
	if !strings.HasPrefix(statePath, stateDir+"/") {
		t.Errorf("ENV MDBRIDGE_STATE__PATH=%q, want a file in %s", statePath, stateDir)
	}
}
