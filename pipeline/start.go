package pipeline

import (
	"fmt"
	"time"
)

// ParseStart turns a source's `start` setting into the oldest record time a
// stream wants on its first run: zero for "all" (or ""), now for "now", and
// now minus the duration for a positive duration such as 24h.
func ParseStart(s string, now time.Time) (time.Time, error) {
	switch s {
	case "", "all":
		return time.Time{}, nil
	case "now":
		return now, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("want all, now or a positive duration such as 24h, got %q", s)
	}
	return now.Add(-d), nil
}
