//go:build !unix

package main

// lockDataDir does nothing where flock is not available: two nodes on one data directory are not caught.
func lockDataDir(string) (func(), error) { return func() {}, nil }

// lockKeyFile does nothing where flock is not available.
func lockKeyFile(string) (func(), error) { return func() {}, nil }
