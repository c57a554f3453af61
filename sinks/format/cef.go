package format

import (
	"fmt"
	"strconv"

	"github.com/mdbridge/mdbridge/pipeline"
)

// cefFormat renders an event as one ArcSight CEF rev 25 line:
//
//	CEF:0|OPSWAT|<product>|1|<signature id>|<name>|<severity>|<extension>
//
// The mapping of every field is in README.md.
type cefFormat struct{}

func (cefFormat) Name() string { return CEF }
func (cefFormat) JSON() bool   { return false }

func (cefFormat) Append(dst, data []byte) ([]byte, error) {
	var ev event
	if err := ev.decode(data); err != nil {
		return dst, fmt.Errorf("cef: %w", err)
	}
	return appendCEF(dst, &ev), nil
}

// cefPrefix starts the keys of fields that have no key in the CEF
// dictionary (a custom dictionary extension, as the standard asks).
const cefPrefix = "mdbridge"

func appendCEF(dst []byte, ev *event) []byte {
	var used [numFields]bool
	dst = append(dst, "CEF:0|OPSWAT|"...)
	dst = appendEscaped(dst, productName(text(ev.product)), modeHeader)
	dst = append(dst, "|1|"...)
	sig := ev.kind
	if text(ev.kind) == pipeline.KindSuricataAlert && !empty(ev.f[fRuleID]) {
		sig = ev.f[fRuleID]
	}
	dst = appendValue(dst, sig, modeHeader)
	dst = append(dst, '|')
	name := ev.message
	if empty(name) {
		name = ev.kind
	}
	dst = appendValue(dst, name, modeHeader)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(min(max(ev.score, 0), 10)), 10)
	dst = append(dst, '|')

	w := kvWriter{b: dst, sep: ' ', mode: modeCEFValue}
	field := func(k string, f int) {
		if w.raw(k, ev.f[f]) {
			used[f] = true
		}
	}
	label := func(k, lk, label, raw string) {
		if empty(raw) {
			return
		}
		w.str(lk, label)
		w.raw(k, raw)
	}
	// timeField writes the first of fs that is a time, as milliseconds.
	timeField := func(k string, fs ...int) {
		for _, f := range fs {
			if ms, ok := rawTimeMillis(ev.f[f]); ok {
				w.int(k, ms)
				used[f] = true
				return
			}
		}
	}

	w.raw("externalId", ev.id)
	w.int("rt", ev.time.UnixMilli())
	w.raw("cat", ev.kind)
	w.raw("msg", ev.message)
	w.raw("deviceExternalId", ev.instance)
	w.str("dvchost", urlHost(text(ev.url)))
	w.raw("dvc", ev.sensorIP)
	label("cs1", "cs1Label", "stream", ev.stream)
	label("cs2", "cs2Label", "siteIp", ev.siteIP)
	label("cs3", "cs3Label", "sensorIp", ev.sensorIP)
	if f := ev.statusField(); f >= 0 {
		label("cs4", "cs4Label", "status", ev.f[f])
		used[f] = true
	}
	if !empty(ev.f[fVulnCVE]) {
		label("cs5", "cs5Label", "cve", ev.f[fVulnCVE])
		used[fVulnCVE] = true
	}
	if k1, k2 := ev.entityKey(); k1 != "" || k2 != "" {
		w.str("cs6Label", "entityId")
		w.key("cs6")
		w.b = appendEscaped(w.b, k1, modeCEFValue)
		if k2 != "" {
			w.b = append(w.b, '/')
			w.b = appendEscaped(w.b, k2, modeCEFValue)
		}
	}
	label("cn1", "cn1Label", "seq", ev.seqRaw)
	label("cn2", "cn2Label", "revision", ev.revisionRaw)
	if !empty(ev.f[fVulnCVSS]) {
		label("cfp1", "cfp1Label", "cvss", ev.f[fVulnCVSS])
		used[fVulnCVSS] = true
	}
	if !ev.observed.IsZero() {
		w.str("deviceCustomDate1Label", "observed")
		w.int("deviceCustomDate1", ev.observed.UnixMilli())
	}
	if f := ev.actField(); f >= 0 {
		field("act", f)
	}
	timeField("start", fAlertStarted, fScanStarted)
	timeField("end", fAlertEnded, fScanStopped)
	field("reason", fAlertReason)

	// The network block gives both ends; the device is the end whose IP it
	// has (the source of a connection alert), else the destination: the
	// asset an alert or inventory event is about.
	srcIP, dstIP := text(ev.f[fNetSrcIP]), text(ev.f[fNetDstIP])
	devIP := text(ev.f[fDeviceIP])
	devSrc := devIP != "" && devIP == srcIP
	devDst := !devSrc && (devIP == "" || devIP == dstIP || dstIP == "" && srcIP == "")
	field("src", fNetSrcIP)
	field("spt", fNetSrcPort)
	cefEnd(&w, &used, ev, "smac", fNetSrcMAC, devSrc)
	if devSrc {
		field("shost", fDeviceName)
		used[fDeviceIP] = true
	}
	cefEnd(&w, &used, ev, "dst", fNetDstIP, devDst)
	field("dpt", fNetDstPort)
	cefEnd(&w, &used, ev, "dmac", fNetDstMAC, devDst)
	if devDst {
		field("dhost", fDeviceName)
	}
	field("proto", fNetTransport)
	field("app", fNetProtocol)

	field("fileId", fFileID)
	field("fname", fFileName)
	field("filePath", fFilePath)
	field("fsize", fFileSize)
	field("fileHash", fFileSHA256)
	field("suser", fPatchRequestedBy)

	if ev.changes != "" {
		w.key(cefPrefix + "Changed")
		w.b = appendChangedKeys(w.b, ev.changes, modeCEFValue)
		w.key(cefPrefix + "Changes")
		w.b = appendEscaped(w.b, ev.changes, modeCEFValue)
	}
	w.raw(cefPrefix+"SourceUrl", ev.url)

	for i := range ev.nb {
		b := ev.blk[i].name
		for _, m := range ev.members(i) {
			if m.field >= 0 && used[m.field] {
				continue
			}
			w.generic(cefGenericKeys, cefPrefix, b, m)
		}
	}
	return w.b
}

// cefEnd writes the network field f under key k; when the network has none
// and the device is this end, the device's IP or MAC stands in.
func cefEnd(w *kvWriter, used *[numFields]bool, ev *event, k string, f int, dev bool) {
	if w.raw(k, ev.f[f]) {
		used[f] = true
	}
	if !dev {
		return
	}
	df := fDeviceIP
	if f == fNetSrcMAC || f == fNetDstMAC {
		df = fDeviceMAC
	}
	switch d := text(ev.f[df]); {
	case d == "":
	case used[f] && d == text(ev.f[f]):
		used[df] = true
	case !used[f] && w.raw(k, ev.f[df]):
		used[df] = true
	}
}

// appendChangedKeys appends the member names of the changes object,
// separated by commas.
func appendChangedKeys(dst []byte, changes string, mode int) []byte {
	n := 0
	forEachMember(changes, func(k, _ string) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendUnescaped(dst, k, mode)
		return true
	})
	return dst
}
