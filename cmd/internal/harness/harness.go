// Package harness holds what the load command (mdload) and the reliability
// suite (mdchaos) both need around the bridge they drive: building the
// module's commands, starting children that die with their parent, reading
// the end of a log, a child's collected output, and a syslog receiver on
// loopback.
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
)

// ModuleRoot finds the mdbridge module around the working directory.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "cmd", "mdbridge")); err == nil {
				return d, nil
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("not inside the mdbridge module: run from it, or name the binaries to run")
		}
		d = parent
	}
}

// GoBuild compiles the module's packages (./cmd/mdbridge, ...) into dir,
// each binary named after its package.
func GoBuild(ctx context.Context, dir string, pkgs ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Tail returns the last n bytes of a file, or the error reading it.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// OctetServer receives syslog over TCP with octet-counting framing (RFC
// 6587, "LEN MSG") and hands every message to a function; a connection
// that breaks the framing is dropped.
type OctetServer struct {
	ln     net.Listener
	handle func(msg []byte)

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// maxOctetMessage bounds one framed message.
const maxOctetMessage = 1 << 20

// ListenOctets listens on addr and calls handle with each message, from
// one goroutine per connection; msg is valid only during the call.
func ListenOctets(addr string, handle func(msg []byte)) (*OctetServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &OctetServer{ln: ln, handle: handle}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	return s, nil
}

func (s *OctetServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 1<<20)
	var msg []byte
	for {
		head, err := br.ReadSlice(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(string(head[:len(head)-1]))
		if err != nil || n <= 0 || n > maxOctetMessage {
			return
		}
		if cap(msg) < n {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		s.handle(msg)
	}
}

// Addr is the address it listens on.
func (s *OctetServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening, closes every connection and waits for them.
func (s *OctetServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// Output collects a child's output: safe for the goroutine that writes it
// and for readers at the same time. With Max set it keeps only the first
// Max bytes and drops the rest, so a chatty child cannot fill memory.
type Output struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// Write implements io.Writer; it never fails.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Max > 0 && len(o.b)+len(p) > o.Max {
		o.b = append(o.b, p[:max(0, o.Max-len(o.b))]...)
		return len(p), nil
	}
	o.b = append(o.b, p...)
	return len(p), nil
}

// String returns what was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.b)
}
