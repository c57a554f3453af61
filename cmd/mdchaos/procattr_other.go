//go:build !linux

package main

import "syscall"

// sysProcAttr is empty where there is no parent-death signal: children
// outlive a killed mdchaos.
func sysProcAttr() *syscall.SysProcAttr { return nil }
