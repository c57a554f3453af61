package pipeline

import (
	"testing"
	"time"
)

// TestSeenTimeOrdersLikeTime holds the 12-byte seen-index time to
// time.Time's own order, around a second boundary, before 1970 and far out.
func TestSeenTimeOrdersLikeTime(t *testing.T) {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	times := []time.Time{
		base, base.Add(time.Nanosecond), base.Add(-time.Nanosecond), base.Add(999999999), base.Add(time.Second),
		time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), time.Unix(0, 0), time.Unix(-1, 999999999),
		time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, a := range times {
		for _, b := range times {
			if got, want := toSeenTime(a).before(b), a.Before(b); got != want {
				t.Errorf("%s before %s: got %v, want %v", a, b, got, want)
			}
		}
	}
}
