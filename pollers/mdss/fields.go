package mdss

import "github.com/mdbridge/mdbridge/pipeline"

// Field names of a scan record; each can be moved with fields.scans.
const (
	fID       = "id"
	fName     = "name"
	fStatus   = "status"
	fTime     = "time"
	fStart    = "start"
	fStorage  = "storage"
	fFiles    = "files"
	fBlocked  = "blocked"
	fInfected = "infected"
)

// Field names of a file record; each can be moved with fields.files.
const (
	fScanID        = "scan_id"
	fPath          = "path"
	fSize          = "size"
	fMD5           = "md5"
	fSHA1          = "sha1"
	fSHA256        = "sha256"
	fVerdict       = "verdict"
	fResultCode    = "result_code"
	fResult        = "result"
	fEnginesTotal  = "engines_total"
	fEngineDetails = "engine_details"
	fRemediation   = "remediation"
)

// The default places each field is looked for, most likely spelling first.
// The camelCase names are the wire contract (README); the PascalCase ones
// are the webhook payloads' (research §2.7), so one table decodes a polled
// record and a pushed one alike. The other spellings are guesses for
// versions that differ; an operator's `fields` override replaces a field's
// whole list with one exact path.
var (
	scanFields = pipeline.FieldPaths{
		fID:       {"id", "scanId", "ScanId", "_id"},
		fName:     {"name", "scanName", "ScanName"},
		fStatus:   {"status", "scanStatus", "Status", "state"},
		fTime:     {"stopTime", "StopTime", "stoppedAt", "endTime", "finishedTime", "completedTime"},
		fStart:    {"startTime", "StartTime", "startedAt"},
		fStorage:  {"storageName", "StorageName", "storage.name", "storageId"},
		fFiles:    {"totalFiles", "filesCount", "fileCount", "processedFiles"},
		fBlocked:  {"blockedFiles", "blockedCount"},
		fInfected: {"infectedFiles", "infectedCount"},
	}
	fileFields = pipeline.FieldPaths{
		fID:            {"id", "fileId", "FileId", "_id"},
		fScanID:        {"scanId", "ScanId"},
		fName:          {"name", "fileName", "FileName"},
		fPath:          {"path", "filePath", "FilePath"},
		fStorage:       {"storageName", "StorageName", "storageId"},
		fSize:          {"size", "fileSize"},
		fMD5:           {"md5", "fileInfo.md5", "hash"},
		fSHA1:          {"sha1", "fileInfo.sha1"},
		fSHA256:        {"sha256", "fileInfo.sha256"},
		fVerdict:       {"result", "FileStatus", "fileStatus"},
		fResultCode:    {"scanAllResultI", "scanResult.scanResults.scanAllResultI", "scanResult.scanAllResultI"},
		fResult:        {"scanAllResultA", "scanResult.scanResults.scanAllResultA", "scanResult.scanAllResultA", "CoreScanResult", "coreScanResult"},
		fTime:          {"scanCompletedTime", "ScanCompletedTimeStamp", "scanCompletedTimeStamp", "completedTime"},
		fEnginesTotal:  {"totalAvs", "scanResult.scanResults.totalAvs", "scanResult.totalAvs"},
		fEngineDetails: {"scanDetails", "scanResult.scanResults.scanDetails", "scanResult.scanDetails"},
		fRemediation:   {"remediations", "RemediationResult", "remediationResult"},
	}
)

// overridable lists the field names `fields.<stream>` may set.
var overridable = map[string][]string{
	StreamScans: sortedNames(scanFields),
	StreamFiles: sortedNames(fileFields),
}

func sortedNames(p pipeline.FieldPaths) []string {
	x := pipeline.NewExtractor(p) // sorts the names
	out := make([]string, x.Len())
	for name := range p {
		out[x.Index(name)] = name
	}
	return out
}
