//go:build linux

package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Do runs fn with the calling goroutine's thread inside the host's
// namespace. Sockets fn creates stay in the namespace after Do returns, so
// a session opened in fn lives on the host.
func (h *Host) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + h.NS)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: enter %s: %w", h.NS, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with the goroutine instead of
		// serving others in the wrong namespace.
		return fmt.Errorf("lab: leave %s: %w", h.NS, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// machineLock makes labs take turns across processes: go test runs
// packages in parallel, and two labs pushing real traffic on a 2-core
// machine starve each other's timing (receivers falling behind, peers
// missing a stream). Labs within one process share the lock.
var machineLock struct {
	sync.Mutex
	n int
	f *os.File
}

func lockMachine() error {
	machineLock.Lock()
	defer machineLock.Unlock()
	if machineLock.n == 0 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "shoal-lab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return err
		}
		machineLock.f = f
	}
	machineLock.n++
	return nil
}

func unlockMachine() {
	machineLock.Lock()
	defer machineLock.Unlock()
	machineLock.n--
	if machineLock.n == 0 {
		_ = unix.Flock(int(machineLock.f.Fd()), unix.LOCK_UN)
		machineLock.f.Close()
		machineLock.f = nil
	}
}
