package pipeline_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mdbridge/mdbridge/pipeline"
)

// TestOTSeverity follows EVENTS.md, "Severity": Low → low 3, Medium →
// medium 5, High → high 7, Severe or Critical → critical 9; a number 1–4 in
// the same order; anything else → info 1.
func TestOTSeverity(t *testing.T) {
	tests := []struct {
		js        string // JSON value; "" = missing
		wantSev   string
		wantScore int
	}{
		{`"Low"`, "low", 3},
		{`"low"`, "low", 3},
		{`"LOW"`, "low", 3},
		{`" Low "`, "low", 3},
		{`"Medium"`, "medium", 5},
		{`"medium"`, "medium", 5},
		{`"MEDIUM"`, "medium", 5},
		{`"mEdIuM"`, "medium", 5},
		{`"High"`, "high", 7},
		{`"high"`, "high", 7},
		{`"HIGH"`, "high", 7},
		{`"Severe"`, "critical", 9},
		{`"severe"`, "critical", 9},
		{`"SEVERE"`, "critical", 9},
		{`"Critical"`, "critical", 9},
		{`"critical"`, "critical", 9},
		{`"CRITICAL"`, "critical", 9},
		{`1`, "low", 3},
		{`2`, "medium", 5},
		{`3`, "high", 7},
		{`4`, "critical", 9},
		{`1.0`, "low", 3},
		{`"1"`, "low", 3},
		{`"2"`, "medium", 5},
		{`"3"`, "high", 7},
		{`"4"`, "critical", 9},
		{`" 4 "`, "critical", 9},
		// Anything else.
		{`0`, "info", 1},
		{`5`, "info", 1},
		{`-1`, "info", 1},
		{`1.5`, "info", 1},
		{`10`, "info", 1},
		{`"0"`, "info", 1},
		{`"5"`, "info", 1},
		{`"Info"`, "info", 1},
		{`"informational"`, "info", 1},
		{`"none"`, "info", 1},
		{`"lowest"`, "info", 1},
		{`"very high"`, "info", 1},
		{`""`, "info", 1},
		{`true`, "info", 1},
		{`false`, "info", 1},
		{`null`, "info", 1},
		{``, "info", 1},
		{`{"level":"High"}`, "info", 1},
		{`["High"]`, "info", 1},
	}
	for _, tc := range tests {
		r := gjson.Result{}
		if tc.js != "" {
			r = gjson.Parse(tc.js)
		}
		sev, score := pipeline.OTSeverity(r)
		if sev != tc.wantSev || score != tc.wantScore {
			t.Errorf("OTSeverity(%s) = %s %d; want %s %d", tc.js, sev, score, tc.wantSev, tc.wantScore)
		}
	}
}
