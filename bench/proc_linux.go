package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the program in a process group of its own, so that a
// kill reaches anything it starts, and has the kernel kill it if bench
// dies: a peer left running would keep sending into a lab being torn down.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killProc(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
