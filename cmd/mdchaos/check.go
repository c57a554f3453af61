package main

import (
	"fmt"
	"slices"
	"time"
)

// sinkCheck is what the check found at one sink.
type sinkCheck struct {
	Name       string
	Messages   int           // events received, repeats included
	Distinct   int           // distinct event ids
	Lost       []string      // upstream record ids that never arrived, sorted
	Duplicates int           // Messages - Distinct
	Unknown    int           // events whose record the upstream does not hold
	MaxLag     time.Duration // largest first arrival - creation, over live records
	MaxLagID   string        // the record with that lag
}

// checkResult is the check over every sink.
type checkResult struct {
	Records   int // upstream records
	Live      int // of which the generator made while the run went on
	Sinks     []sinkCheck
	Conflicts []string // records that reached sinks under different event ids
}

// lost reports whether any sink misses a record.
func (c *checkResult) lost() bool {
	for _, s := range c.Sinks {
		if len(s.Lost) > 0 {
			return true
		}
	}
	return false
}

// check compares what each sink received with every record the upstream
// holds. Sinks are checked in the order of names.
func check(up []upRecord, names []string, got map[string][]delivery) *checkResult {
	res := &checkResult{Records: len(up)}
	byID := make(map[string]upRecord, len(up))
	for _, r := range up {
		byID[r.ID] = r
		if r.Live {
			res.Live++
		}
	}
	eventOf := make(map[string]string, len(up)) // record id -> event id, over all sinks
	conflicted := map[string]bool{}
	for _, name := range names {
		sc := sinkCheck{Name: name, Messages: len(got[name])}
		seenEvent := map[string]bool{}
		first := map[string]time.Time{} // record id -> first arrival
		for _, d := range got[name] {
			if !seenEvent[d.EventID] {
				seenEvent[d.EventID] = true
				sc.Distinct++
			}
			if _, ok := byID[d.RawID]; !ok {
				sc.Unknown++
				continue
			}
			if ev, ok := eventOf[d.RawID]; ok && ev != d.EventID && !conflicted[d.RawID] {
				conflicted[d.RawID] = true
				res.Conflicts = append(res.Conflicts, fmt.Sprintf("record %s: event %s at %s, %s elsewhere", d.RawID, d.EventID, name, ev))
			} else if !ok {
				eventOf[d.RawID] = d.EventID
			}
			if t, ok := first[d.RawID]; !ok || d.At.Before(t) {
				first[d.RawID] = d.At
			}
		}
		sc.Duplicates = sc.Messages - sc.Distinct
		for _, r := range up {
			at, ok := first[r.ID]
			if !ok {
				sc.Lost = append(sc.Lost, r.ID)
				continue
			}
			if lag := at.Sub(r.Created); r.Live && lag > sc.MaxLag {
				sc.MaxLag, sc.MaxLagID = lag, r.ID
			}
		}
		slices.Sort(sc.Lost)
		res.Sinks = append(res.Sinks, sc)
	}
	return res
}

// complete reports whether every sink has every record, without the cost
// of a full check.
func complete(up []upRecord, got []delivery) bool {
	have := make(map[string]struct{}, len(got))
	for _, d := range got {
		have[d.RawID] = struct{}{}
	}
	for _, r := range up {
		if _, ok := have[r.ID]; !ok {
			return false
		}
	}
	return true
}
