package pipeline

import (
	"strings"

	"github.com/tidwall/gjson"
)

// OTSeverity maps an OT Security criticality to a severity and score
// (EVENTS.md): Low → low 3, Medium → medium 5, High → high 7, Severe or
// Critical → critical 9; the numbers 1–4 in the same order; anything else,
// including a missing value, → info 1 (the original stays in raw).
func OTSeverity(r gjson.Result) (string, int) {
	if n, ok := Int(r); ok {
		switch n {
		case 1:
			return SeverityLow, 3
		case 2:
			return SeverityMedium, 5
		case 3:
			return SeverityHigh, 7
		case 4:
			return SeverityCritical, 9
		}
		return SeverityInfo, 1
	}
	switch strings.ToLower(strings.TrimSpace(Str(r))) {
	case "low":
		return SeverityLow, 3
	case "medium":
		return SeverityMedium, 5
	case "high":
		return SeverityHigh, 7
	case "severe", "critical":
		return SeverityCritical, 9
	}
	return SeverityInfo, 1
}
