package otsec

import "github.com/mdbridge/mdbridge/pipeline"

// OverridableFields are the names a `fields` override may set for a stream.
var OverridableFields = []string{
	"id", "time", "name", "type", "status", "severity", "message", "reason", "ended",
	"device_id", "device_name", "ip", "mac", "vendor", "model", "device_type", "firmware", "os", "purdue_level", "site",
	"src_ip", "src_port", "src_mac", "dst_ip", "dst_port", "dst_mac", "protocol", "transport",
	"rule_id", "rule_name", "rule_category",
}

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
	newDeviceFields = pipeline.FieldPaths{
		"id":     {"id", "deviceId", "_id", "uuid"},
		"time":   {"discovTime", "discoveredAt", "firstSeen", "onboardedTime", "createdAt"},
		"name":   {"name", "deviceName", "hostname"},
		"status": {"status"},
	}
)

// volatileDeviceKeys change on every sighting of a device without the
// device changing; they are left out of its content hash.
var volatileDeviceKeys = map[string]bool{"lastSeen": true, "lastActive": true, "lastSeenTime": true, "lastSeenAt": true, "lastUpdate": true}

func merge(sets ...pipeline.FieldPaths) pipeline.FieldPaths {
	out := pipeline.FieldPaths{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}
