package configs

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/mdbridge/mdbridge/pipeline"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[pipeline.ByteSize]()
	secretType   = reflect.TypeFor[pipeline.Secret]()
)

// envText is a string that came from the environment (a ${VAR} expansion or
// an MDBRIDGE_* override). Unlike a YAML string it converts to the type of
// the key it lands in: "500" to an int, "true" to a bool, "a,b" to a list.
type envText string

// fieldError is one decoding problem: the key path below the section
// (e.g. "tls.ca_file", "sites[0].site_ip", "" for the section itself).
type fieldError struct{ key, msg string }

// valueError is the message of a decode hook failure; it never holds a value.
type valueError string

func (e valueError) Error() string { return string(e) }

// decode decodes raw onto out with mapstructure and returns every problem.
// Keys match koanf tags exactly; unknown keys are left to checkKeys. The
// hook does all type checking, so every mapstructure error carries a
// valueError, and its DecodeError.Name() is the key path.
func decode(raw, out any) []fieldError {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:    "koanf",
		Result:     out,
		DecodeHook: mapstructure.DecodeHookFuncType(decodeHook),
		MatchName:  func(mapKey, fieldName string) bool { return mapKey == fieldName },
	})
	if err != nil {
		return []fieldError{{"", err.Error()}}
	}
	var errs []fieldError
	var walk func(error)
	walk = func(err error) {
		if de, ok := err.(*mapstructure.DecodeError); ok {
			if j, ok := de.Unwrap().(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					walk(e)
				}
				return
			}
			msg := "has a value of the wrong type"
			var ve valueError
			if errors.As(de.Unwrap(), &ve) {
				msg = string(ve)
			}
			errs = append(errs, fieldError{keyPath(de.Name()), msg})
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if inner := errors.Unwrap(err); inner != nil { // Decode wraps the joined errors
			walk(inner)
			return
		}
		errs = append(errs, fieldError{"", "has a value of the wrong type"})
	}
	if err := d.Decode(raw); err != nil {
		walk(err)
	}
	// mapstructure visits map keys in random order.
	slices.SortStableFunc(errs, func(a, b fieldError) int { return strings.Compare(a.key, b.key) })
	return errs
}

var mapIndex = regexp.MustCompile(`\[([^\]]*)\]`)

// keyPath turns mapstructure's field name ("fields[suricata_alerts][id]")
// into a config path ("fields.suricata_alerts.id"); list indexes stay.
func keyPath(name string) string {
	return mapIndex.ReplaceAllStringFunc(name, func(s string) string {
		inner := s[1 : len(s)-1]
		if _, err := strconv.Atoi(inner); err == nil {
			return s
		}
		return "." + inner
	})
}

// decodeHook checks that data fits the target type and converts what needs
// converting: durations ("30s"), sizes ("1GiB" or a number) and envText.
func decodeHook(_, to reflect.Type, data any) (any, error) {
	if data == nil {
		return nil, nil
	}
	text, fromEnv := data.(envText)
	switch to {
	case durationType:
		if s, ok := asText(data); ok {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return nil, valueError("must be a duration such as 30s, 10m or 1h30m")
			}
			return d, nil
		}
		if n, ok := asInt(data); ok && n == 0 {
			return time.Duration(0), nil
		}
		return nil, valueError("must be a duration such as 30s, 10m or 1h30m, got " + kindOf(data))
	case byteSizeType:
		if s, ok := asText(data); ok {
			b, err := pipeline.ParseByteSize(s)
			if err != nil {
				return nil, valueError("must be a size such as 512MiB, 1GiB or a number of bytes")
			}
			return b, nil
		}
		if n, ok := asInt(data); ok && n >= 0 {
			return pipeline.ByteSize(n), nil
		}
		return nil, valueError("must be a size such as 512MiB, 1GiB or a number of bytes, got " + kindOf(data))
	}
	switch to.Kind() {
	case reflect.String:
		if s, ok := asText(data); ok {
			return s, nil
		}
		hint := ""
		switch data.(type) {
		case bool, int, int64, uint64, float64, time.Time:
			hint = " (put it in quotes)"
		}
		return nil, valueError("must be a string, got " + kindOf(data) + hint)
	case reflect.Bool:
		if fromEnv {
			b, err := strconv.ParseBool(strings.TrimSpace(string(text)))
			if err != nil {
				return nil, valueError("must be true or false")
			}
			return b, nil
		}
		if _, ok := data.(bool); !ok {
			return nil, valueError("must be true or false, got " + kindOf(data))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := asInt(data)
		if fromEnv {
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64); err != nil {
				return nil, valueError("must be an integer")
			}
		} else if !ok {
			return nil, valueError("must be an integer, got " + kindOf(data))
		}
		if reflect.Zero(to).OverflowInt(n) {
			return nil, valueError("is out of range")
		}
		return n, nil
	case reflect.Slice:
		if fromEnv && isScalar(to.Elem()) {
			var items []any
			for _, item := range strings.Split(string(text), ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, envText(item))
				}
			}
			return items, nil
		}
		if reflect.TypeOf(data).Kind() != reflect.Slice {
			return nil, valueError("must be a list, got " + kindOf(data))
		}
	case reflect.Map, reflect.Struct:
		if _, ok := data.(map[string]any); !ok {
			return nil, valueError("must be a mapping of keys, got " + kindOf(data))
		}
	}
	return data, nil
}

func isScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// asText returns the text of a YAML string or of envText.
func asText(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case envText:
		return string(s), true
	}
	return "", false
}

// asInt returns a YAML number as an int64 when it is a whole number.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), true
		}
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt64 && n < math.MaxInt64 {
			return int64(n), true
		}
	}
	return 0, false
}

// kindOf names the YAML kind of a value, never the value itself.
func kindOf(v any) string {
	switch v.(type) {
	case string, envText:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case time.Time:
		return "a date"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
}

// checkKeys reports every key in raw that has no koanf field in t, naming
// its parent path. Values of the wrong kind are left to decode.
func (l *loader) checkKeys(path string, raw any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return
		}
		known := structKeys(t)
		for _, key := range sortedKeys(m) {
			f, ok := fieldByKey(t, key)
			if !ok {
				l.addf("%s: unknown key %q%s", path, key, suggest(key, known))
				continue
			}
			l.checkKeys(join(path, key), m[key], f.Type)
		}
	case reflect.Map:
		if m, ok := raw.(map[string]any); ok {
			for _, key := range sortedKeys(m) {
				l.checkKeys(join(path, key), m[key], t.Elem())
			}
		}
	case reflect.Slice:
		if s, ok := raw.([]any); ok {
			for i, v := range s {
				l.checkKeys(fmt.Sprintf("%s[%d]", path, i), v, t.Elem())
			}
		}
	}
}

// structKeys lists the koanf keys of a struct type in field order.
func structKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k, ok := koanfKey(t.Field(i)); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if k, ok := koanfKey(t.Field(i)); ok && k == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// when it is close enough to be a typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		d := editDistance(strings.ToLower(key), k)
		if len(key) >= 3 && strings.HasPrefix(k, strings.ToLower(key)) {
			d = min(d, 1) // a shortened key: "sensor" for "sensor_ip"
		}
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist >= len(key) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
