package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdbridge/mdbridge/configs"
)

func TestLayout(t *testing.T) {
	for _, c := range []struct{ streams, kinds, sites, sensors int }{
		{4, 4, 1, 1}, {8, 4, 1, 2}, {100, 4, 5, 5}, {48, 4, 3, 4}, {400, 4, 10, 10}, {4 * 84 * 84, 4, 84, 84},
		{100, 2, 5, 10}, {3, 3, 1, 1}, {7, 1, 1, 7},
	} {
		s, m, err := layout(c.streams, c.kinds)
		if err != nil || s != c.sites || m != c.sensors {
			t.Errorf("layout(%d, %d) = %d, %d, %v; want %d, %d", c.streams, c.kinds, s, m, err, c.sites, c.sensors)
		}
		if err == nil && s*m*c.kinds != c.streams {
			t.Errorf("layout(%d, %d): %d x %d x %d != streams", c.streams, c.kinds, s, m, c.kinds)
		}
	}
	for _, c := range []struct{ streams, kinds int }{{0, 4}, {3, 4}, {10, 4}, {4 * 89, 4}, {100, 3}, {5, 0}} { // 89 sensors: prime, more than 84
		if _, _, err := layout(c.streams, c.kinds); err == nil {
			t.Errorf("layout(%d, %d): no error", c.streams, c.kinds)
		}
	}
}

func TestCountingBody(t *testing.T) {
	body := []byte(`{"error":false,"errors":[],"data":{"items":[` + strings.Repeat(`{"id":1,"x":"y"},`, 99) + `{"id":2}],"total":100}}`)
	for _, chunk := range []int{1, 2, 3, 5, 6, 7, 64, len(body)} {
		c := &counter{}
		b := &countingBody{ReadCloser: io.NopCloser(&chunkReader{data: body, n: chunk}), c: c}
		if _, err := io.ReadAll(b); err != nil {
			t.Fatal(err)
		}
		if got := c.records.Load(); got != 100 {
			t.Errorf("chunks of %d: %d records, want 100", chunk, got)
		}
		if got := c.bytes.Load(); got != int64(len(body)) {
			t.Errorf("chunks of %d: %d bytes, want %d", chunk, got, len(body))
		}
	}
}

func TestBridgeConfigListsEverySensor(t *testing.T) {
	sink := (&fileReceiver{lc: &lineCounter{path: "/o/e.jsonl"}}).yaml()
	cfg := string(bridgeConfig("http://127.0.0.1:1", "/s/db", sink, knownKinds, 2, 3, 500, 10*time.Second))
	if _, err := configs.Parse([]byte(cfg), nil); err != nil {
		t.Fatalf("the bridge would not take this config: %v\n%s", err, cfg)
	}
	if n := strings.Count(cfg, "sensor_ip:"); n != 6 {
		t.Errorf("%d sensors in the config, want 6:\n%s", n, cfg)
	}
	if !bytes.Contains([]byte(cfg), []byte(`site_ip: "10.40.173.144", sensor_ip: "10.40.173.174"`)) {
		t.Errorf("mdsim's layout not repeated:\n%s", cfg)
	}
}

// chunkReader returns data at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// TestLineCounter grows a file in steps that end mid-line, mid-block and
// past the counter's 4 MiB buffer, and checks the count after each step
// against the lines really written; with O_DIRECT reads starting at an
// aligned offset, a byte counted twice or skipped would show here.
func TestLineCounter(t *testing.T) {
	for _, c := range []struct {
		name  string
		steps []int // bytes appended before each count
	}{
		{"empty file", []int{0, 0}},
		{"mid-line steps", []int{1, 17, 4095, 1, 4097, 100}},
		{"block sized", []int{4096, 4096, 8192}},
		{"past the buffer", []int{5 << 20, 3, 9 << 20}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			lc := &lineCounter{path: path}
			defer lc.close()
			if n, err := lc.update(); err != nil || n != 0 {
				t.Fatalf("before the file exists: %d, %v; want 0, nil", n, err)
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Short lines: every stretch read twice holds a line end.
			line := []byte(`{"i":123}` + "\n")
			var want int64
			pos := 0
			for i, n := range c.steps {
				chunk := make([]byte, n)
				for j := range chunk {
					chunk[j] = line[(pos+j)%len(line)]
				}
				pos += n
				want += int64(bytes.Count(chunk, []byte{'\n'}))
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
				got, err := lc.update()
				if err != nil || got != want {
					t.Fatalf("step %d (%d bytes in all): counted %d, %v; want %d", i, pos, got, err, want)
				}
			}
		})
	}
}

// TestParseFlags checks that bad combinations are refused, each naming the
// flag, and that good ones come through.
func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for no error
	}{
		{nil, ""},
		{[]string{"-rate", "50000", "-duration", "30s", "-compete", "0.8"}, ""},
		{[]string{"-compete", "1"}, ""},
		{[]string{"-compete", "1.5"}, "-compete 1.5"},
		{[]string{"-compete", "-0.1"}, "-compete -0.1"},
		{[]string{"-rate", "100"}, "-rate and -duration go together"},
		{[]string{"-kinds", "device_alerts,bogus", "-streams", "2"}, `unknown stream kind "bogus"`},
		{[]string{"-sinks", "file,kafka"}, `unknown sink "kafka"`},
	} {
		o, err := parseFlags(c.args, io.Discard)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
		case c.want == "" && o == nil:
			t.Errorf("%q: no options", c.args)
		}
	}
}

// TestPercentile checks the nearest-rank percentiles the lag line reports.
func TestPercentile(t *testing.T) {
	tests := []struct {
		samples []float64
		p, want float64
	}{
		{nil, 50, 0},
		{[]float64{0.7}, 90, 0.7},
		{[]float64{0.9, 0.5, 0.8, 0.6}, 50, 0.6},
		{[]float64{0.9, 0.5, 0.8, 0.6}, 90, 0.9},
		{[]float64{3, 1, 2, 5, 4, 6, 7, 8, 9, 10}, 90, 9},
		{[]float64{3, 1, 2, 5, 4, 6, 7, 8, 9, 10}, 50, 5},
		{[]float64{2, 1}, 100, 2},
	}
	for _, tc := range tests {
		if got := percentile(append([]float64(nil), tc.samples...), tc.p); got != tc.want {
			t.Errorf("percentile(%v, %g) = %g, want %g", tc.samples, tc.p, got, tc.want)
		}
	}
}
