//go:build !linux

package harness

import "syscall"

// ChildAttr is empty where there is no parent-death signal: children
// outlive a killed parent.
func ChildAttr() *syscall.SysProcAttr { return nil }
