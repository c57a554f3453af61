package harness

import "syscall"

// ChildAttr makes a child die with its parent, even when the parent is
// killed.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
