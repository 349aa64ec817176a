package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// profiles are the --cpuprofile and --memprofile flags of the sim commands.
type profiles struct {
	cpu, mem string
}

func (p *profiles) flags(f *pflag.FlagSet) {
	f.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.StringVar(&p.mem, "memprofile", "", "write a heap profile, taken while the network is still up, to this file")
}

// check refuses, before the run, a profile path that cannot be written (the run used to end without it).
func (p *profiles) check() error {
	for _, f := range []struct{ flag, path string }{{"--cpuprofile", p.cpu}, {"--memprofile", p.mem}} {
		if f.path == "" {
			continue
		}
		if err := checkOutputPath(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// start starts the CPU profile if asked; the returned function stops it.
func (p *profiles) start() (func(), error) {
	if p.cpu == "" {
		return func() {}, nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// heap writes the heap profile if asked; failures are reported on stderr (the run's figures still count).
func (p *profiles) heap(stderr io.Writer) {
	if p.mem == "" {
		return
	}
	f, err := os.Create(p.mem)
	if err != nil {
		fmt.Fprintf(stderr, "--memprofile: %v\n", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintf(stderr, "--memprofile: %v\n", err)
	}
}
