//go:build !race

package main

// buildFlags are the flags the tests build binaries with (see race_test.go).
var buildFlags []string
