package main

import (
	"os"
	"strings"
	"testing"
)

// TestMain clears every MDBRIDGE_* variable before the tests run. Those
// variables are configuration overrides, and the bridge rejects ones that
// name no key, so a stray one in the developer's or CI's environment would
// otherwise fail tests that have nothing to do with it.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), "MDBRIDGE_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
