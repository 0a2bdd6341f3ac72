//go:build !linux

package main

import "os/exec"

// bench filecast needs Linux namespaces; elsewhere this only compiles.
func setProcAttr(cmd *exec.Cmd) {}

func killProc(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
