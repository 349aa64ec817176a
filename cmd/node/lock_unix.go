//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes the exclusive lock of a data directory (DIR/LOCK, holding the pid of its holder) for the life of
// the process; release gives it back. Two nodes on one directory shared its identity and peer store: their peers
// replaced one's connection with the other's for as long as both ran, and the copy's record sent the network to
// the wrong port after it stopped (as go-ethereum's datadir lock, and the repo lock of go-libp2p's tools, prevent).
func lockDataDir(dir string) (release func(), err error) {
	path := dir + string(os.PathSeparator) + dataDirLockFile
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
			return nil, fmt.Errorf("data directory %s is in use by another node process%s", dir, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// lockKeyFile takes the exclusive lock of a key file for the life of the process: two nodes with one identity
// replace each other's connections wherever they meet.
func lockKeyFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("lock key file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("key file %s is in use by another node process", path)
		}
		return nil, fmt.Errorf("lock key file %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
