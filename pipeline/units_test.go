package pipeline_test

import (
	"encoding/json"
	"testing"

	"github.com/mdbridge/mdbridge/pipeline"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    pipeline.ByteSize
		wantErr bool
	}{
		{in: "1GiB", want: 1 << 30},
		{in: "512MB", want: 512_000_000},
		{in: "4096", want: 4096},
		{in: "1.5GiB", want: 1610612736},
		{in: " 10 KiB ", want: 10240},
		{in: "64KiB", want: 64 << 10},
		{in: "2MiB", want: 2 << 20},
		{in: "3TiB", want: 3 << 40},
		{in: "1KB", want: 1000},
		{in: "1GB", want: 1_000_000_000},
		{in: "2TB", want: 2_000_000_000_000},
		{in: "64K", want: 64 << 10},
		{in: "8M", want: 8 << 20},
		{in: "1G", want: 1 << 30},
		{in: "100B", want: 100},
		{in: "100 B", want: 100},
		{in: "1gib", want: 1 << 30},
		{in: "5 mb", want: 5_000_000},
		{in: "0", want: 0},
		{in: "0GiB", want: 0},
		{in: "0.5KiB", want: 512},
		{in: "\t7\n", want: 7},
		// Bad ones.
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "GiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "-1GiB", wantErr: true},
		{in: "1 XB", wantErr: true},
		{in: "1.5.5GB", wantErr: true},
		{in: "1GiBs", wantErr: true},
		{in: "1 2 MB", wantErr: true},
		{in: "1e400", wantErr: true},
		// Not sizes, though strconv.ParseFloat reads them: they must not
		// turn into an arbitrary (even negative) size.
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
		{in: "+Inf GiB", wantErr: true},
		{in: "1e19", wantErr: true},
		{in: "10000000TiB", wantErr: true},
	}
	for _, tc := range tests {
		got, err := pipeline.ParseByteSize(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseByteSize(%q) = %d, nil; want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		// UnmarshalText is the same parser.
		var u pipeline.ByteSize
		if err := u.UnmarshalText([]byte(tc.in)); err != nil || u != tc.want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", tc.in, u, err, tc.want)
		}
	}
}

func TestByteSizeUnmarshalTextKeepsValueOnError(t *testing.T) {
	b := pipeline.ByteSize(42)
	if err := b.UnmarshalText([]byte("lots")); err == nil {
		t.Fatalf("UnmarshalText(lots) = nil; want an error")
	}
	if b != 42 {
		t.Errorf("after a failed UnmarshalText the value is %d; want 42 unchanged", b)
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   pipeline.ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1023, "1023"},
		{1024, "1KiB"},
		{1536, "1536"},
		{10 << 10, "10KiB"},
		{1 << 20, "1MiB"},
		{1536 << 10, "1536KiB"},
		{1 << 30, "1GiB"},
		{1610612736, "1536MiB"},
		{512_000_000, "500000KiB"},
		{1 << 40, "1TiB"},
		{5 << 40, "5TiB"},
		{1024 << 40, "1024TiB"},
	}
	for _, tc := range tests {
		s := tc.in.String()
		if s != tc.want {
			t.Errorf("ByteSize(%d).String() = %q; want %q", int64(tc.in), s, tc.want)
		}
		back, err := pipeline.ParseByteSize(s)
		if err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d (round trip)", s, back, err, int64(tc.in))
		}
		txt, err := tc.in.MarshalText()
		if err != nil || string(txt) != tc.want {
			t.Errorf("MarshalText(%d) = %q, %v; want %q", int64(tc.in), txt, err, tc.want)
		}
	}
	// In a config struct, JSON uses the text form both ways.
	type cfg struct {
		Max pipeline.ByteSize `json:"max"`
	}
	b, err := json.Marshal(cfg{Max: 256 << 20})
	if err != nil || string(b) != `{"max":"256MiB"}` {
		t.Errorf("json.Marshal = %s, %v; want {\"max\":\"256MiB\"}", b, err)
	}
	var c cfg
	if err := json.Unmarshal([]byte(`{"max":"1.5GiB"}`), &c); err != nil || c.Max != 1610612736 {
		t.Errorf("json.Unmarshal 1.5GiB = %d, %v; want 1610612736", c.Max, err)
	}
}
