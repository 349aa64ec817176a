//go:build race

package main

// buildFlags are the flags the tests build binaries with: -race when the tests run with it, so that the build
// reuses the packages the test build compiled.
var buildFlags = []string{"-race"}
