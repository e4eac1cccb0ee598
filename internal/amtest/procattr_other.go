//go:build !linux

package amtest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
