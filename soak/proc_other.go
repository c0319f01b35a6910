//go:build !linux

package main

import (
	"errors"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

// procStatus needs /proc; elsewhere only the children's own figures
// (heap, goroutines) are sampled.
func procStatus(int) (int64, int, error) {
	return 0, 0, errors.New("resident memory and open files are read from /proc, which this system does not have")
}
