package nats

import (
	"strings"
	"testing"

	"github.com/mdbridge/mdbridge/sinks/format"
)

func meta(kind, instance string) format.Meta {
	return format.Meta{ID: "id1", Kind: kind, Instance: instance, Product: "metadefender-ot-security",
		Stream: "plant-a/alerts", Severity: "high", SiteIP: "10.40.172.144", SensorIP: "10.40.172.172"}
}

func TestRenderSubject(t *testing.T) {
	tests := []struct {
		name     string
		template string
		meta     format.Meta
		want     string
	}{
		{"default", DefaultSubject, meta("ot.device_alert", "plant-a"), "mdbridge.ot.device_alert.plant-a"},
		{"kind without a dot", DefaultSubject, meta("bridge_heartbeat", "plant-a"), "mdbridge.bridge_heartbeat.plant-a"},
		{"space", DefaultSubject, meta("ot.device", "plant a"), "mdbridge.ot.device.plant_a"},
		{"tab, newline and DEL", DefaultSubject, meta("ot.device", "a\tb\nc\x7fd"), "mdbridge.ot.device.a_b_c_d"},
		{"wildcards", DefaultSubject, meta("ot.device", "a*b>c"), "mdbridge.ot.device.a_b_c"},
		{"a wildcard token", DefaultSubject, meta("*", ">"), "mdbridge._._"},
		{"empty value", DefaultSubject, meta("ot.device", ""), "mdbridge.ot.device._"},
		{"leading dot", DefaultSubject, meta("ot.device", ".x"), "mdbridge.ot.device._.x"},
		{"trailing dot", DefaultSubject, meta("ot.device", "x."), "mdbridge.ot.device.x._"},
		{"doubled dot", DefaultSubject, meta("ot..device", "x"), "mdbridge.ot._.device.x"},
		{"only dots", DefaultSubject, meta("..", "x"), "mdbridge._._._.x"},
		{"UTF-8 kept", DefaultSubject, meta("ot.device", "werk-köln"), "mdbridge.ot.device.werk-köln"},
		{"IPs add levels", "ot.{site_ip}.{sensor_ip}", meta("ot.device", "x"), "ot.10.40.172.144.10.40.172.172"},
		{"placeholders inside a token", "e.{kind}-{severity}", meta("ot.device", "x"), "e.ot.device-high"},
		{"placeholder at the start", "{source}.events", meta("ot.device", "plant-a"), "plant-a.events"},
		{"empty value at the start", "{source}.events", meta("ot.device", ""), "_.events"},
		{"dot-leading value after literal text", "e.x{source}", meta("ot.device", ".y"), "e.x.y"},
		{"fixed subject", "all.events", meta("ot.device", "x"), "all.events"},
		{"product and stream", "{product}.{stream}", meta("ot.device", "x"), "metadefender-ot-security.plant-a/alerts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(tmpl.render(nil, &tt.meta)); got != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		template string
		wantErr  string // "" for valid
		capture  string
	}{
		{template: DefaultSubject, capture: "mdbridge.>"},
		{template: "a.b.{kind}.{source}.{stream}.{severity}.{product}.{site_ip}.{sensor_ip}", capture: "a.b.>"},
		{template: "a.b{kind}", capture: "a.>"},
		{template: "fixed.subject", capture: "fixed.subject"},
		{template: "{kind}", capture: ">"},
		{template: "x{kind}.y", capture: ">"},
		{template: "{kind}{kind}.{kind}", capture: ">"},
		{template: "", wantErr: "is required"},
		{template: "mdbridge.{nope}", wantErr: "unknown placeholder {nope} (known: {kind}, {source}"},
		{template: "mdbridge.{Kind}", wantErr: "unknown placeholder {Kind}"},
		{template: "mdbridge.{}", wantErr: "unknown placeholder {}"},
		{template: "mdbridge.{kind", wantErr: "without its }"},
		{template: "mdbridge.{{kind}}", wantErr: "without its }"},
		{template: "mdbridge.kind}", wantErr: "} without its {"},
		{template: "mdbridge..{kind}", wantErr: "empty token"},
		{template: ".{kind}", wantErr: "empty token"},
		{template: "{kind}.", wantErr: "empty token"},
		{template: "mdbridge.*.{kind}", wantErr: "wildcard"},
		{template: "mdbridge.{kind}.>", wantErr: "wildcard"},
		{template: "md bridge.{kind}", wantErr: "whitespace"},
		{template: "md\tbridge.{kind}", wantErr: "whitespace"},
		{template: strings.Repeat("a", maxTemplate+1), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			tmpl, err := parseTemplate(tt.template)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tmpl.capture(); got != tt.capture {
				t.Errorf("capture = %q, want %q", got, tt.capture)
			}
		})
	}
}

func TestCoversAndOverlaps(t *testing.T) {
	tests := []struct {
		filter, pattern string
		covers, overlap bool
	}{
		{"mdbridge.>", "mdbridge.>", true, true},
		{">", "mdbridge.>", true, true},
		{"mdbridge.>", "mdbridge.ot.device.x", true, true},
		{"mdbridge.*.*", "mdbridge.>", false, true},
		{"mdbridge.*.*", "mdbridge.a.b", true, true},
		{"mdbridge.*", "mdbridge.a.b", false, false},
		{"mdbridge.ot.>", "mdbridge.>", false, true},
		{"other.>", "mdbridge.>", false, false},
		{"mdbridge", "mdbridge.>", false, false},
		{"mdbridge.>", "mdbridge", false, false},
		{"a.*.c", "a.*.c", true, true},
		{"a.b.c", "a.*.c", false, true},
	}
	for _, tt := range tests {
		if got := covers(tt.filter, tt.pattern); got != tt.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.filter, tt.pattern, got, tt.covers)
		}
		if got := overlaps(tt.filter, tt.pattern); got != tt.overlap {
			t.Errorf("overlaps(%q, %q) = %v, want %v", tt.filter, tt.pattern, got, tt.overlap)
		}
	}
}

// FuzzSubjectTemplate: whatever the template and the event's values, a
// template that parses renders a subject one can publish to, which its
// capture filter covers, and events with equal cache keys get equal
// subjects.
func FuzzSubjectTemplate(f *testing.F) {
	f.Add(DefaultSubject, "ot.device_alert", "plant-a", "x", "y")
	f.Add("e.{site_ip}.{sensor_ip}", "10.0.0.1", "", "..", "a b")
	f.Add("{source}{kind}.{stream}", "*", ">", ".", "\x00")
	f.Add("a.{severity}-{product}", "", "\t", "x.", ".y")
	f.Add("{kind", "a", "b", "c", "d")
	f.Fuzz(func(t *testing.T, template, v1, v2, v3, v4 string) {
		tmpl, err := parseTemplate(template)
		if err != nil {
			return
		}
		m := format.Meta{Kind: v1, Instance: v2, Stream: v3, Severity: v4, Product: v1 + v2, SiteIP: v3 + "." + v4, SensorIP: v4}
		subj := string(tmpl.render(nil, &m))
		if err := checkPublishSubject(subj); err != nil {
			t.Fatalf("template %q gives subject %q: %v", template, subj, err)
		}
		if c := tmpl.capture(); !covers(c, subj) {
			t.Fatalf("capture %q of template %q does not cover %q", c, template, subj)
		}
		// Swapped values: equal keys must mean equal subjects.
		m2 := format.Meta{Kind: v2, Instance: v1, Stream: v4, Severity: v3, Product: v1 + v2, SiteIP: v3 + "." + v4, SensorIP: v4}
		if string(tmpl.key(nil, &m)) == string(tmpl.key(nil, &m2)) {
			if s2 := string(tmpl.render(nil, &m2)); s2 != subj {
				t.Fatalf("equal cache keys, subjects %q and %q", subj, s2)
			}
		}
	})
}
