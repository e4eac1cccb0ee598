package amtest

import "syscall"

// procAttr makes the kernel stop Alertmanager when the test binary dies
// without running its cleanups (a -timeout panic, a kill).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
