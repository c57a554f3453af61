package format

import "fmt"

// leefFormat renders an event as one IBM QRadar LEEF 2.0 line:
//
//	LEEF:2.0|OPSWAT|<product>|1|<kind>|x09|<attributes>
//
// Attributes are separated by a tab, declared in the header in the hex form
// `x09` that the LEEF 2.0 guide documents (a literal tab in the header is
// easily lost to whitespace handling on the way). The mapping of every
// field is in README.md.
type leefFormat struct{}

func (leefFormat) Name() string { return LEEF }
func (leefFormat) JSON() bool   { return false }

func (leefFormat) Append(dst, data []byte) ([]byte, error) {
	var ev event
	if err := ev.decode(data); err != nil {
		return dst, fmt.Errorf("leef: %w", err)
	}
	return appendLEEF(dst, &ev), nil
}

// LEEF time attributes: devTime is written in the devTimeFormat pattern
// (Java SimpleDateFormat, one of the patterns the LEEF guide suggests), in
// UTC.
const (
	leefTimeFormat = "MMM dd yyyy HH:mm:ss.SSS z"
	leefTimeLayout = "Jan 02 2006 15:04:05.000"
)

func appendLEEF(dst []byte, ev *event) []byte {
	var used [numFields]bool
	dst = append(dst, "LEEF:2.0|OPSWAT|"...)
	dst = appendEscaped(dst, productName(text(ev.product)), modeHeader)
	dst = append(dst, "|1|"...)
	dst = appendValue(dst, ev.kind, modeHeader)
	dst = append(dst, "|x09|"...)

	w := kvWriter{b: dst, sep: '\t', mode: modeLEEFValue}
	field := func(k string, f int) {
		if w.raw(k, ev.f[f]) {
			used[f] = true
		}
	}

	w.key("devTime")
	w.b = ev.time.UTC().AppendFormat(w.b, leefTimeLayout)
	w.b = append(w.b, " GMT"...)
	w.str("devTimeFormat", leefTimeFormat)
	w.int("sev", int64(min(max(ev.score, 1), 10)))
	switch {
	case !empty(ev.f[fAlertType]):
		field("cat", fAlertType)
	case !empty(ev.f[fRuleCategory]):
		field("cat", fRuleCategory)
	default:
		w.raw("cat", ev.kind)
	}
	field("src", fNetSrcIP)
	field("srcPort", fNetSrcPort)
	field("srcMAC", fNetSrcMAC)
	field("dst", fNetDstIP)
	field("dstPort", fNetDstPort)
	field("dstMAC", fNetDstMAC)
	field("proto", fNetTransport)
	field("identSrc", fDeviceIP)
	field("identHostName", fDeviceName)
	field("identMAC", fDeviceMAC)
	field("usrName", fPatchRequestedBy)

	w.raw("mdbridgeId", ev.id)
	w.raw("seq", ev.seqRaw)
	w.raw("revision", ev.revisionRaw)
	w.raw("instance", ev.instance)
	w.raw("stream", ev.stream)
	w.raw("siteIp", ev.siteIP)
	w.raw("sensorIp", ev.sensorIP)
	if f := ev.statusField(); f >= 0 {
		field("status", f)
	}
	if k1, k2 := ev.entityKey(); k1 != "" || k2 != "" {
		w.key("entityId")
		w.b = appendEscaped(w.b, k1, modeLEEFValue)
		if k2 != "" {
			w.b = append(w.b, '/')
			w.b = appendEscaped(w.b, k2, modeLEEFValue)
		}
	}
	w.raw("msg", ev.message)
	w.raw("observed", ev.observedRaw)
	if ev.changes != "" {
		w.key("changed")
		w.b = appendChangedKeys(w.b, ev.changes, modeLEEFValue)
		w.key("changes")
		w.b = appendEscaped(w.b, ev.changes, modeLEEFValue)
	}
	w.raw("sourceUrl", ev.url)

	for i := range ev.nb {
		b := ev.blk[i].name
		for _, m := range ev.members(i) {
			if m.field >= 0 && used[m.field] {
				continue
			}
			w.generic(leefGenericKeys, "", b, m)
		}
	}
	return w.b
}
