package otsec

// OverridableFields are the names a `fields` override may set for a stream.
var OverridableFields = []string{"id", "time", "name", "type", "status", "severity", "message", "reason", "ended", "ip", "mac", "device_id", "device_name", "vendor", "model", "firmware", "os", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "rule_id", "rule_name", "rule_category"}
