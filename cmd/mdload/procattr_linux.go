package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// maxRSSMiB converts ru_maxrss, in KiB on Linux.
func maxRSSMiB(ru *syscall.Rusage) float64 { return float64(ru.Maxrss) / 1024 }

// procMem reads a process's resident memory from /proc: anonymous (heap,
// stacks) and file-backed (mapped files such as bbolt's), in bytes.
func procMem(pid int) (anon, file int64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, rest, found := strings.Cut(line, ":")
		if !found || (name != "RssAnon" && name != "RssFile") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "RssAnon" {
			anon = kb << 10
		} else {
			file = kb << 10
		}
		ok = true
	}
	return anon, file, ok
}
