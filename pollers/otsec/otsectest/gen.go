package otsectest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// This file makes up record content. Every record is rendered straight to
// JSON bytes with a small appender (no maps, no reflection) so that building
// a million-record backlog takes seconds, not minutes.

// timeFormat says how times are rendered.
type timeFormat int

const (
	tfRFC3339 timeFormat = iota
	tfEpochMS
	tfEpochS
)

// jw appends one JSON object's members, in the order they are written.
type jw struct {
	b  []byte
	n  int
	tf timeFormat
}

func (w *jw) begin() { w.b = append(w.b, '{'); w.n = 0 }
func (w *jw) end()   { w.b = append(w.b, '}') }

func (w *jw) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jw) str(k, v string) { w.key(k); w.b = appendJSONString(w.b, v) }

// open starts a string value that s and d then write piece by piece and
// shut ends: the alerts' messages, built without fmt.Sprintf (which,
// with the string it made and then escaped, was a fifth of the cost of
// making up a record).
func (w *jw) open(k string) *jw { w.key(k); w.b = append(w.b, '"'); return w }
func (w *jw) s(v string) *jw    { w.b = appendJSONContent(w.b, v); return w }
func (w *jw) d(v int) *jw       { w.b = strconv.AppendInt(w.b, int64(v), 10); return w }
func (w *jw) shut()             { w.b = append(w.b, '"') }
func (w *jw) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}
func (w *jw) flt(k string, v float64) {
	w.key(k)
	w.b = strconv.AppendFloat(w.b, v, 'f', -1, 64)
}
func (w *jw) null(k string) { w.key(k); w.b = append(w.b, "null"...) }
func (w *jw) tm(k string, t time.Time) {
	w.key(k)
	w.b = appendTime(w.b, t, w.tf)
}

// sortKey is the value a record time sorts by: milliseconds since the epoch,
// cut to the precision the time is rendered with, so that records the client
// sees as equal are ties here too.
func sortKey(t time.Time, tf timeFormat) int64 {
	if tf == tfEpochS {
		return t.Unix() * 1000
	}
	return t.UnixMilli()
}

func appendTime(b []byte, t time.Time, tf timeFormat) []byte {
	switch tf {
	case tfEpochMS:
		return strconv.AppendInt(b, t.UnixMilli(), 10)
	case tfEpochS:
		return strconv.AppendInt(b, t.Unix(), 10)
	}
	b = append(b, '"')
	b = t.UTC().Truncate(time.Millisecond).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	return append(appendJSONContent(b, s), '"')
}

// appendJSONContent appends s escaped for the inside of a JSON string.
func appendJSONContent(b []byte, s string) []byte {
	start := 0 // s[start:i] is still to be copied, as it is
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		if c < 0x20 {
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		} else {
			b = append(b, '\\', c)
		}
		start = i + 1
	}
	return append(b, s[start:]...)
}

// product is one kind of device found on OT networks.
type product struct {
	vendor, model, devType, firmware, newer, os, purdue, oui, prefix string
}

var products = []product{
	{"Siemens", "S7-1500", "PLC", "V2.9.4", "V3.1.0", "", "1", "E0:DC:A0", "PLC"},
	{"Siemens", "S7-1200", "PLC", "V4.5.2", "V4.6.1", "", "1", "00:1B:1B", "PLC"},
	{"Rockwell Automation", "ControlLogix 5580", "PLC", "33.011", "35.013", "", "1", "00:00:BC", "PLC"},
	{"Schneider Electric", "Modicon M580", "PLC", "SV3.20", "SV4.10", "", "1", "00:80:F4", "PLC"},
	{"ABB", "AC500 PM5650", "PLC", "3.5.0", "3.6.2", "", "1", "00:24:59", "PLC"},
	{"Omron", "NX1P2", "PLC", "1.50", "1.64", "", "1", "00:00:0A", "PLC"},
	{"Beckhoff", "CX9020", "PLC", "3.1.4024", "3.1.4026", "Windows Embedded Compact 7", "1", "00:01:05", "PLC"},
	{"Honeywell", "Experion C300", "Controller", "R511.5", "R520.2", "", "1", "00:40:84", "CTRL"},
	{"Siemens", "SIMATIC TP1200 Comfort", "HMI", "V17.0.0", "V18.0.0", "Windows CE 6.0", "2", "00:1B:1B", "HMI"},
	{"Moxa", "NPort 5150", "Serial Device Server", "3.9", "3.11", "", "2", "00:90:E8", "GW"},
	{"Hirschmann", "RSP35", "Switch", "09.0.04", "09.1.00", "HiOS", "2", "00:80:63", "SW"},
	{"Cisco", "IE-3400", "Switch", "17.9.4", "17.12.2", "IOS XE", "3", "00:1B:54", "SW"},
	{"Dell", "OptiPlex 7090", "Engineering Workstation", "1.21.0", "1.24.0", "Windows 10 Enterprise", "3", "F4:8E:38", "EWS"},
	{"Hewlett Packard Enterprise", "ProLiant DL360 Gen10", "Historian Server", "U32 2.90", "U32 3.10", "Windows Server 2019", "3", "94:40:C9", "SRV"},
}

// device is one member of a sensor's pool of devices that alerts name.
type device struct {
	id              int64
	name, ipv4, mac string
	p               *product
}

func randMAC(r *rand.Rand, oui string) string {
	return fmt.Sprintf("%s:%02X:%02X:%02X", oui, r.IntN(256), r.IntN(256), r.IntN(256))
}

// subnet is the /24 the devices of sensor number k (0-based, server-wide)
// live in.
func subnet(k int) string { return fmt.Sprintf("192.168.%d.", 10+k%240) }

func newDevice(r *rand.Rand, id int64, net string, host int, seq int) device {
	p := &products[r.IntN(len(products))]
	return device{
		id:   id,
		name: fmt.Sprintf("%s-%02d", p.prefix, seq),
		ipv4: net + strconv.Itoa(host),
		mac:  randMAC(r, p.oui),
		p:    p,
	}
}

func (w *jw) deviceFields(d *device) {
	w.int("deviceId", d.id)
	w.str("deviceName", d.name)
	w.str("ipv4", d.ipv4)
	w.str("mac", d.mac)
	w.str("vendor", d.p.vendor)
	w.str("model", d.p.model)
	w.str("deviceType", d.p.devType)
	w.str("firmware", d.p.firmware)
	w.str("os", d.p.os)
	w.str("purdueLevel", d.p.purdue)
}

var criticalities = []string{"Low", "Medium", "Medium", "High", "High", "Severe"}

func pickStatus(r *rand.Rand) string {
	switch x := r.IntN(100); {
	case x < 85:
		return "new"
	case x < 95:
		return "acknowledged"
	default:
		return "resolved"
	}
}

// alertEnd writes alertEnded: a time for resolved alerts, null otherwise.
func (w *jw) alertEnd(r *rand.Rand, status string, t time.Time) {
	if status == "resolved" {
		w.tm("alertEnded", t.Add(time.Duration(1+r.IntN(1800))*time.Second))
		return
	}
	w.null("alertEnded")
}

type alertType struct{ typ, name, what string }

var deviceAlertTypes = []alertType{
	{"dev-unauthorized", "Unauthorized device", "is not in the approved asset inventory of this site and was not onboarded by an administrator"},
	{"dev-baseline", "Device baseline deviation", "deviates from its learned communication baseline: new peers and function codes were observed outside the learning window"},
	{"dev-new-port", "New open port", "started listening on a port that was closed during the last active scan and is not allowed by the asset policy"},
	{"dev-firmware-change", "Firmware changed", "reports a firmware version that differs from the one recorded at onboarding; no approved patch request covers the change"},
	{"dev-offline", "Device offline", "has not been seen on the network for longer than the configured inactivity threshold of 15 minutes"},
	{"dev-vulnerable", "Vulnerable device", "runs a firmware version affected by one or more published vulnerabilities with a CVSS base score of 7.0 or higher"},
}

func genDeviceAlert(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	d := &st.devs[r.IntN(len(st.devs))]
	at := &deviceAlertTypes[r.IntN(len(deviceAlertTypes))]
	crit := criticalities[r.IntN(len(criticalities))]
	status := pickStatus(r)
	w.int("id", id)
	w.tm("alertStarted", t)
	w.alertEnd(r, status, t)
	w.str("criticality", crit)
	w.str("status", status)
	w.str("type", at.typ)
	w.str("name", at.name)
	w.open("message").s(at.name).s(": ").s(d.p.vendor).s(" ").s(d.p.model).s(" ").s(d.name).
		s(" (").s(d.ipv4).s(", ").s(d.mac).s(") ").s(at.what).s(".").shut()
	w.open("reason").s(`Policy "`).s(at.name).s(`" (criticality `).s(crit).s(") matched on sensor ").s(st.sensor).
		s(" at site ").s(st.site).s("; the ").s(d.p.devType).s(" was observed at Purdue level ").s(d.p.purdue).
		s(" talking to ").d(1 + r.IntN(12)).s(" peers.").shut()
	w.deviceFields(d)
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
	w.str("comment", "")
}

type protocol struct {
	name, transport string
	port            int
}

var protocols = []protocol{
	{"Modbus/TCP", "tcp", 502},
	{"S7comm", "tcp", 102},
	{"S7comm-plus", "tcp", 102},
	{"EtherNet/IP", "tcp", 44818},
	{"DNP3", "tcp", 20000},
	{"IEC 60870-5-104", "tcp", 2404},
	{"OPC UA", "tcp", 4840},
	{"BACnet/IP", "udp", 47808},
	{"PROFINET", "udp", 34964},
	{"HTTP", "tcp", 80},
	{"SMB", "tcp", 445},
	{"RDP", "tcp", 3389},
}

var connAlertTypes = []alertType{
	{"conn-unauthorized", "Unauthorized connection", "is not allowed by the connection policy between these zones"},
	{"conn-new-protocol", "New protocol", "uses a protocol that was never seen between these two devices during learning"},
	{"conn-plc-write", "PLC write request", "carries a write request to controller memory outside a maintenance window"},
	{"conn-plc-program", "PLC program download", "transferred a new program block to the controller"},
	{"conn-external", "Connection to external network", "reaches an address outside every network range defined for this site"},
	{"conn-scan", "Port scan", "is one of many short connections to different ports of the same destination"},
}

func (w *jw) flow(r *rand.Rand, src, dst *device, dstIP string, p *protocol) {
	w.str("srcIp", src.ipv4)
	w.int("srcPort", int64(49152+r.IntN(16384)))
	w.str("srcMac", src.mac)
	w.str("dstIp", dstIP)
	w.int("dstPort", int64(p.port))
	w.str("dstMac", dst.mac)
	w.str("protocol", p.name)
	w.str("transport", p.transport)
}

func genConnAlert(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	src := &st.devs[r.IntN(len(st.devs))]
	dst := &st.devs[r.IntN(len(st.devs))]
	at := &connAlertTypes[r.IntN(len(connAlertTypes))]
	p := &protocols[r.IntN(len(protocols))]
	dstIP := dst.ipv4
	if at.typ == "conn-external" {
		dstIP = fmt.Sprintf("203.0.113.%d", 1+r.IntN(254))
	}
	crit := criticalities[r.IntN(len(criticalities))]
	status := pickStatus(r)
	w.int("id", id)
	w.tm("alertStarted", t)
	w.alertEnd(r, status, t)
	w.str("criticality", crit)
	w.str("status", status)
	w.str("type", at.typ)
	w.str("name", at.name)
	w.open("message").s(at.name).s(": ").s(p.name).s(" ").s(p.transport).s(" from ").s(src.name).s(" (").s(src.ipv4).
		s(") to ").s(dstIP).s(" port ").d(p.port).s(" ").s(at.what).s(".").shut()
	w.open("reason").s(`Connection policy "`).s(at.name).s(`" (criticality `).s(crit).s(") matched on sensor ").s(st.sensor).
		s("; ").d(2 + r.IntN(500)).s(" packets, ").d(64 + r.IntN(64000)).s(" bytes in the first ").d(1 + r.IntN(60)).s(" s.").shut()
	w.deviceFields(src)
	w.flow(r, src, dst, dstIP, p)
	w.int("duration", int64(r.IntN(120000)))
	w.int("dataLength", int64(64+r.IntN(1<<20)))
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
	w.str("comment", "")
}

type signature struct {
	id                      int64
	msg, category, severity string
	protocol, transport     string
	port                    int
}

var signatures = []signature{
	{2009582, "ET SCAN NMAP -sS window 1024", "Attempted Information Leak", "Medium", "TCP", "tcp", 502},
	{2001219, "ET SCAN Potential SSH Scan", "Attempted Information Leak", "Medium", "SSH", "tcp", 22},
	{2010935, "ET SCAN Suspicious inbound to MSSQL port 1433", "Potentially Bad Traffic", "High", "TCP", "tcp", 1433},
	{2027865, "ET INFO Observed DNS Query to .cloud TLD", "Potentially Bad Traffic", "Low", "DNS", "udp", 53},
	{2024792, "ET POLICY Cleartext WordPress Login", "Potential Corporate Privacy Violation", "Low", "HTTP", "tcp", 80},
	{2100498, "GPL ATTACK_RESPONSE id check returned root", "Potentially Bad Traffic", "High", "HTTP", "tcp", 80},
	{2012887, "ET POLICY Http Client Body contains pass= in cleartext", "Potential Corporate Privacy Violation", "Medium", "HTTP", "tcp", 80},
	{2030387, "ET EXPLOIT Possible SMBv3 Remote Code Execution Attempt (CVE-2020-0796)", "Attempted Administrator Privilege Gain", "Severe", "SMB", "tcp", 445},
	{2101411, "GPL SNMP public access udp", "Attempted Information Leak", "Medium", "SNMP", "udp", 161},
	{2035465, "ET SCADA Modbus TCP Unauthorized Write Request to a PLC", "Attempted Administrator Privilege Gain", "Severe", "Modbus/TCP", "tcp", 502},
}

func genSuricataAlert(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	src := &st.devs[r.IntN(len(st.devs))]
	dst := &st.devs[r.IntN(len(st.devs))]
	sg := &signatures[r.IntN(len(signatures))]
	p := &protocol{sg.protocol, sg.transport, sg.port}
	status := pickStatus(r)
	w.int("id", id)
	w.tm("alertStarted", t)
	w.alertEnd(r, status, t)
	w.str("criticality", sg.severity)
	w.str("status", status)
	w.str("type", "suricata")
	w.str("name", sg.msg)
	w.int("signatureId", sg.id)
	w.str("signature", sg.msg)
	w.str("category", sg.category)
	w.int("rev", int64(1+r.IntN(9)))
	w.open("message").s("Suricata rule ").d(int(sg.id)).s(` "`).s(sg.msg).s(`" fired for `).s(p.name).s(" traffic from ").
		s(src.name).s(" (").s(src.ipv4).s(") to ").s(dst.name).s(" (").s(dst.ipv4).s(").").shut()
	w.open("reason").s("Classification: ").s(sg.category).s("; action: alert; rule set ET Open on sensor ").s(st.sensor).
		s(" at site ").s(st.site).s(".").shut()
	w.flow(r, src, dst, dst.ipv4, p)
	w.int("deviceId", src.id)
	w.str("deviceName", src.name)
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
	w.str("comment", "")
}

func genDevice(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	p := &products[r.IntN(len(products))]
	status := "active"
	if r.IntN(10) == 0 {
		status = "inactive"
	}
	w.int("id", id)
	w.str("name", fmt.Sprintf("%s-%d", p.prefix, id%10000))
	w.str("ipv4", st.net+strconv.Itoa(2+r.IntN(252)))
	w.str("mac", randMAC(r, p.oui))
	w.str("vendor", p.vendor)
	w.str("model", p.model)
	w.str("deviceType", p.devType)
	w.str("firmware", p.firmware)
	w.str("os", p.os)
	w.str("purdueLevel", p.purdue)
	w.tm("discovTime", t)
	w.tm("lastSeen", t.Add(time.Duration(r.IntN(600_000))*time.Millisecond))
	w.str("status", status)
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
}

type cve struct {
	id, vector, published, description string
	cvss                               float64
}

var cves = []cve{
	{"CVE-2019-10929", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:N", "2020-03-10", "Cryptographic weakness in the PLC communication protocol allows a man-in-the-middle to modify traffic.", 5.9},
	{"CVE-2020-15782", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2021-05-28", "Memory protection bypass lets an attacker with network access write arbitrary data and code to protected memory areas.", 8.1},
	{"CVE-2022-38465", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2022-10-11", "A global private key embedded in the firmware can be recovered, allowing decryption of protected configuration data.", 9.3},
	{"CVE-2021-22681", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "2021-03-03", "Insufficiently protected credentials allow a remote attacker to bypass authentication and connect to the controller.", 10.0},
	{"CVE-2021-22779", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2021-07-14", "Authentication bypass by spoofing in the engineering protocol allows unauthorized reads and writes.", 9.8},
	{"CVE-2020-6998", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "2020-03-24", "Improper input validation in the Ethernet interface can be triggered to cause a denial of service.", 7.5},
	{"CVE-2023-3595", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2023-07-12", "Out-of-bounds write in the communication module allows remote code execution via crafted CIP messages.", 9.8},
	{"CVE-2019-6575", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "2019-04-17", "Specially crafted packets sent to the OPC UA service can cause a denial of service condition.", 7.5},
}

func cvssSeverity(s float64) string {
	switch {
	case s >= 9:
		return "Critical"
	case s >= 7:
		return "High"
	case s >= 4:
		return "Medium"
	}
	return "Low"
}

func genCVE(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	d := &st.devs[r.IntN(len(st.devs))]
	c := &cves[r.IntN(len(cves))]
	w.int("id", id)
	w.int("deviceId", d.id)
	w.str("deviceName", d.name)
	w.str("ipv4", d.ipv4)
	w.str("mac", d.mac)
	w.str("vendor", d.p.vendor)
	w.str("model", d.p.model)
	w.str("firmware", d.p.firmware)
	w.str("cveId", c.id)
	w.str("name", c.id)
	w.flt("cvss", c.cvss)
	w.str("cvssVector", c.vector)
	w.str("severity", cvssSeverity(c.cvss))
	w.str("description", c.description)
	w.str("published", c.published)
	w.tm("firstSeen", t)
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
}

var patchStatuses = []string{"pending", "pending", "approved", "rejected", "completed"}
var requesters = []string{"api-client", "ot.engineer", "maint.lead", "j.doe"}

func genPatchRequest(st *store, w *jw, id int64, t time.Time) {
	r := st.rng
	d := &st.devs[r.IntN(len(st.devs))]
	status := patchStatuses[r.IntN(len(patchStatuses))]
	updated := t
	if status != "pending" {
		updated = t.Add(time.Duration(1+r.IntN(86400)) * time.Second)
	}
	w.int("id", id)
	w.str("status", status)
	w.int("deviceId", d.id)
	w.str("deviceName", d.name)
	w.str("ipv4", d.ipv4)
	w.str("mac", d.mac)
	w.str("vendor", d.p.vendor)
	w.str("model", d.p.model)
	w.str("firmwareFrom", d.p.firmware)
	w.str("firmwareTo", d.p.newer)
	w.str("requestedBy", requesters[r.IntN(len(requesters))])
	w.str("comment", "")
	w.tm("createdAt", t)
	w.tm("updatedAt", updated)
	w.str("siteIp", st.site)
	w.str("sensorIp", st.sensor)
}
