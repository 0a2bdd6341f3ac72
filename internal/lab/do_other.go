//go:build !linux

package lab

import "errors"

// Do is Linux-only; New skips before a test can get here.
func (h *Host) Do(fn func() error) error { return errors.New("lab: network namespaces need Linux") }

func lockMachine() error { return nil }
func unlockMachine()     {}
