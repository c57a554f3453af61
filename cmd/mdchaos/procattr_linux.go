package main

import "syscall"

// sysProcAttr makes a child die with mdchaos, even if mdchaos is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
