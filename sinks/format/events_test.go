package format

import (
	"encoding/json"
	"time"

	"github.com/mdbridge/mdbridge/pipeline"
)

// The events the tests render: one per kind the bridge produces today, a
// revision with changes and one with awkward strings. testdata/events holds
// them as JSON (regenerated with -update), next to hand-written events of
// the kinds issue 4 adds (mdss.scan, mdss.file, ot.patch_request,
// bridge.heartbeat), whose blocks pipeline.Event does not have yet.

var (
	t0       = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	t1       = t0.Add(90 * time.Second)
	observed = t0.Add(2 * time.Minute)
	cvss98   = 9.8
)

func otSource(stream string) pipeline.Source {
	return pipeline.Source{Product: pipeline.ProductOTSecurity, Instance: "plant-a", Stream: stream,
		SiteIP: "10.0.0.5", SensorIP: "10.0.1.7", URL: "https://10.0.0.5:3003"}
}

func envelope(id, kind string, seq uint64, sev string, score int, msg string, src pipeline.Source) pipeline.Event {
	return pipeline.Event{ID: id, Schema: pipeline.Schema, Kind: kind, Seq: seq, Time: t0, Observed: observed,
		Severity: sev, SeverityScore: score, Message: msg, Source: src}
}

// testEvents returns the Go-built test events by name.
func testEvents() map[string]*pipeline.Event {
	deviceAlert := envelope("9f1c2e4b7a3d5f60", pipeline.KindDeviceAlert, 41, "high", 7,
		"Unauthorized device PLC-7 joined the network", otSource("plant-a/10.0.0.5/10.0.1.7/device_alerts"))
	deviceAlert.Alert = &pipeline.Alert{ID: "a-1001", Type: "dev-unauthorized", Name: "Unauthorized device",
		Status: "new", Started: &t0, Reason: "MAC not in baseline"}
	deviceAlert.Device = &pipeline.Device{ID: "d-77", Name: "PLC-7", IP: "10.0.2.17", MAC: "00:1d:9c:aa:bb:cc",
		Vendor: "Rockwell", Model: "1756-L73", Type: "PLC", Firmware: "33.011", OS: "VxWorks", PurdueLevel: "1", Site: "Line 3"}
	deviceAlert.Network = &pipeline.Network{SrcIP: "10.0.2.17", SrcMAC: "00:1d:9c:aa:bb:cc", DstIP: "10.0.2.1",
		DstPort: 44818, Protocol: "ENIP", Transport: "TCP"}
	deviceAlert.Raw = json.RawMessage(`{"id":"a-1001","criticality":"High","alertStarted":"2026-11-23T10:00:00.123Z"}`)

	connAlert := envelope("1b2c3d4e5f607182", pipeline.KindConnAlert, 42, "medium", 5,
		"New connection from HMI-2 to PLC-7 over Modbus", otSource("plant-a/10.0.0.5/10.0.1.7/conn_alerts"))
	connAlert.Alert = &pipeline.Alert{ID: "c-2002", Type: "conn-new", Name: "New connection", Status: "acknowledged",
		Started: &t0, Ended: &t1}
	connAlert.Network = &pipeline.Network{SrcIP: "10.0.3.2", SrcPort: 50432, SrcMAC: "00:50:56:01:02:03",
		DstIP: "10.0.2.17", DstPort: 502, DstMAC: "00:1d:9c:aa:bb:cc", Protocol: "Modbus", Transport: "TCP"}
	connAlert.Device = &pipeline.Device{ID: "d-12", Name: "HMI-2", IP: "10.0.3.2", MAC: "00:50:56:01:02:03"}

	suricata := envelope("aa00bb11cc22dd33", pipeline.KindSuricataAlert, 43, "critical", 9,
		"ET EXPLOIT Modbus write to coil from external host", otSource("plant-a/10.0.0.5/10.0.1.7/suricata_alerts"))
	suricata.Alert = &pipeline.Alert{ID: "s-3003", Status: "new", Started: &t0}
	suricata.Rule = &pipeline.Rule{ID: "2029145", Name: "ET EXPLOIT Modbus write to coil", Category: "Attempted Administrator Privilege Gain"}
	suricata.Network = &pipeline.Network{SrcIP: "203.0.113.9", SrcPort: 40001, DstIP: "10.0.2.17", DstPort: 502, Transport: "TCP"}

	device := envelope("0d0e0f1011121314", pipeline.KindDevice, 7, "info", 1,
		"Device PLC-7 added", otSource("plant-a/10.0.0.5/10.0.1.7/devices"))
	device.Device = &pipeline.Device{ID: "d-77", Name: "PLC-7", IP: "10.0.2.17", MAC: "00:1d:9c:aa:bb:cc",
		Vendor: "Rockwell", Model: "1756-L73", Type: "PLC", Firmware: "33.011", PurdueLevel: "1", Site: "Line 3", Action: "added"}

	cve := envelope("c0ffee0000000001", pipeline.KindCVE, 3, "critical", 9,
		"CVE-2022-1161 on PLC-7", otSource("plant-a/10.0.0.5/10.0.1.7/cves"))
	cve.Device = &pipeline.Device{ID: "d-77", Name: "PLC-7", IP: "10.0.2.17"}
	cve.Vulnerability = &pipeline.Vulnerability{CVE: "CVE-2022-1161", CVSS: &cvss98,
		CVSSVector:  "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		Description: "Logix controllers allow modified code to be executed"}

	revision := envelope("77aa88bb99cc0011", pipeline.KindDeviceAlert, 44, "high", 7,
		"Unauthorized device PLC-7 resolved", otSource("plant-a/10.0.0.5/10.0.1.7/device_alerts"))
	revision.Revision = 2
	revision.Changes = map[string]pipeline.Change{
		"status":     {Old: "acknowledged", New: "resolved"},
		"alertEnded": {Old: nil, New: "2026-11-23T10:01:30Z"},
	}
	revision.Alert = &pipeline.Alert{ID: "a-1001", Type: "dev-unauthorized", Name: "Unauthorized device",
		Status: "resolved", Started: &t0, Ended: &t1}
	revision.Device = &pipeline.Device{ID: "d-77", Name: "PLC-7", IP: "10.0.2.17"}

	awkward := envelope(`id|with\pipe=eq`, pipeline.KindDeviceAlert, 45, "low", 3,
		"pipe | backslash \\ equals = newline\nreturn\rtab\tquote \" ünïcödé ✓ 中文 \u2028 end",
		pipeline.Source{Product: "odd|product\\name", Instance: "inst=1 two", Stream: "s\tx", SiteIP: "10.0.0.5",
			SensorIP: "10.0.1.7", URL: "https://user@[fe80::1]:3003/path"})
	awkward.Alert = &pipeline.Alert{}
	awkward.Device = &pipeline.Device{Name: "name with = and | and \\", IP: "10.0.2.99", Firmware: "v1\nv2",
		Site: "Zürich \"north\" hall", Vendor: "a=b c=d"}
	awkward.Rule = &pipeline.Rule{}
	awkward.Network = &pipeline.Network{}
	awkward.Raw = json.RawMessage(`{"x":"y"}`)

	return map[string]*pipeline.Event{
		"device_alert":   &deviceAlert,
		"conn_alert":     &connAlert,
		"suricata_alert": &suricata,
		"device":         &device,
		"cve":            &cve,
		"revision":       &revision,
		"awkward":        &awkward,
	}
}
