package otsec

import (
	"maps"
	"slices"

	"github.com/mdbridge/mdbridge/pipeline"
)

// The default places each field is looked for, most likely spelling first.
// Only alertStarted and discovTime are confirmed by the vendor document (as
// sort keys); the rest follow the product's UI labels in camelCase and are
// assumptions an operator can override with `fields`.
var (
	deviceFields = pipeline.FieldPaths{
		"device_id":    {"deviceId", "device.id", "assetId"},
		"device_name":  {"deviceName", "device.name", "assetName", "hostname"},
		"ip":           {"ipv4", "ip", "deviceIp", "ipAddress", "device.ipv4"},
		"mac":          {"mac", "macAddress", "deviceMac", "device.mac"},
		"vendor":       {"vendor", "manufacturer", "device.vendor"},
		"model":        {"model", "hardwareModel", "device.model"},
		"device_type":  {"deviceType", "assetType", "device.type"},
		"firmware":     {"firmware", "firmwareVersion", "device.firmware"},
		"os":           {"os", "osName", "operatingSystem"},
		"purdue_level": {"purdueLevel", "purdue", "purdueModelLevel"},
		"site":         {"siteName", "site"},
	}
	alertFields = pipeline.FieldPaths{
		"id":       {"id", "alertId", "_id", "uuid"},
		"time":     {"alertStarted", "alert_started", "startedAt", "startTime"},
		"ended":    {"alertEnded", "alert_ended", "endedAt", "endTime"},
		"name":     {"name", "alertName", "title"},
		"type":     {"type", "alertType"},
		"status":   {"status", "alertStatus", "state"},
		"severity": {"criticality", "alertCriticality", "severity", "level"},
		"message":  {"message", "description", "msg"},
		"reason":   {"reason", "alertReason"},
	}
	networkFields = pipeline.FieldPaths{
		"src_ip":    {"srcIp", "sourceIp", "srcIP", "src.ip"},
		"src_port":  {"srcPort", "sourcePort", "src.port"},
		"src_mac":   {"srcMac", "sourceMac", "src.mac"},
		"dst_ip":    {"dstIp", "destinationIp", "destIp", "dstIP", "dst.ip"},
		"dst_port":  {"dstPort", "destinationPort", "destPort", "dst.port"},
		"dst_mac":   {"dstMac", "destinationMac", "destMac", "dst.mac"},
		"protocol":  {"protocol", "appProtocol", "l7Protocol"},
		"transport": {"transport", "transportProtocol", "l4Protocol"},
	}
	ruleFields = pipeline.FieldPaths{
		"rule_id":       {"signatureId", "signature_id", "sid", "ruleId"},
		"rule_name":     {"signature", "signatureName", "ruleName"},
		"rule_category": {"category", "classtype", "ruleCategory"},
	}
	// The device list: the record is the device, so its id and name are
	// the record's own.
	inventoryFields = pipeline.FieldPaths{
		"id":     {"id", "deviceId", "_id", "uuid"},
		"time":   {"discovTime", "discoveredAt", "firstSeen", "onboardedTime", "createdAt"},
		"name":   {"name", "deviceName", "hostname"},
		"status": {"status"},
		"sensor": {"sensorIp", "sensorIP", "sensor_ip"},
	}
	// A device CVE: one vulnerability of one device. The device is named
	// by deviceFields (device_id, ip, mac, ...).
	cveFields = pipeline.FieldPaths{
		"cve":         {"cveId", "cve", "cveName", "cve_id", "vulnerability.id", "name"},
		"time":        {"firstSeen", "detectedAt", "discoveredAt", "createdAt", "firstDetected"},
		"cvss":        {"cvss", "cvssScore", "baseScore", "score", "cvss3.baseScore", "cvssV3.baseScore"},
		"cvss_vector": {"cvssVector", "vector", "vectorString", "cvss3.vectorString", "cvssV3.vectorString"},
		"description": {"description", "summary", "desc"},
	}
	// A patch (firmware update) request.
	patchFields = pipeline.FieldPaths{
		"id":            {"id", "requestId", "_id", "uuid"},
		"time":          {"createdAt", "created", "requestedAt", "createdTime", "createTime"},
		"updated":       {"updatedAt", "updated", "modifiedAt", "updatedTime", "updateTime"},
		"status":        {"status", "requestStatus", "state"},
		"firmware_from": {"firmwareFrom", "currentFirmware", "fromVersion", "firmware", "currentVersion"},
		"firmware_to":   {"firmwareTo", "targetFirmware", "toVersion", "newFirmware", "targetVersion"},
		"requested_by":  {"requestedBy", "requester", "createdBy", "userName", "username"},
	}
)

// overridable lists, per stream, the fields a `fields` override may set:
// every field the stream reads.
var overridable = func() map[string][]string {
	out := map[string][]string{}
	for name, sp := range specs {
		out[name] = slices.Sorted(maps.Keys(sp.fields))
	}
	for name, sp := range setSpecs {
		out[name] = slices.Sorted(maps.Keys(sp.fields))
	}
	return out
}()

// OverridableFields returns the fields a `fields` override may set for a
// stream (nil for an unknown stream).
func OverridableFields(stream string) []string { return slices.Clone(overridable[stream]) }

// volatileKeys change on every sighting of a device (or of a CVE on it)
// without the record changing; they are left out of the content hash of
// set-stream records, so they alone never make a revision.
var volatileKeys = map[string]bool{"lastSeen": true, "lastActive": true, "lastSeenTime": true, "lastSeenAt": true, "lastUpdate": true}

func merge(sets ...pipeline.FieldPaths) pipeline.FieldPaths {
	out := pipeline.FieldPaths{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}
