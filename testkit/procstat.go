package testkit

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used so far.
func processCPU() time.Duration { return readUsage().cpu() }

// usage is what getrusage says of the process so far: CPU time in user and kernel mode, and how often its
// threads gave up the CPU, to wait (voluntary: a thread parked for want of work) or preempted.
type usage struct {
	user, system         time.Duration
	voluntary, preempted int64
}

// cpu is the CPU time in both modes.
func (u usage) cpu() time.Duration { return u.user + u.system }

// readUsage reads the process's usage, zero where getrusage fails.
func readUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{
		user:      time.Duration(ru.Utime.Nano()),
		system:    time.Duration(ru.Stime.Nano()),
		voluntary: ru.Nvcsw, preempted: ru.Nivcsw,
	}
}

// hostTicks reads the machine's CPU time in clock ticks from /proc/stat (parseStatCPU), zeros where unreadable.
func hostTicks() (total, steal uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads the first line of /proc/stat: the machine's CPU time in clock ticks, all of it and the part
// stolen (the hypervisor running something else while a virtual CPU of this machine wanted to run). Zeros when the
// line is not the "cpu" line with at least its eight times.
func parseStatCPU(stat string) (total, steal uint64) {
	line, _, _ := strings.Cut(stat, "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal, then guest times already counted in user.
	for i, f := range fields[1:9] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0
		}
		total += v
		if i == 7 {
			steal = v
		}
	}
	return total, steal
}

// heapAllocs is the process's heap allocations so far: bytes, objects and completed GC cycles.
type heapAllocs struct{ bytes, objects, cycles uint64 }

// readHeapAllocs reads heapAllocs from runtime/metrics.
func readHeapAllocs() heapAllocs {
	v := readMetrics("/gc/heap/allocs:bytes", "/gc/heap/allocs:objects", "/gc/cycles/total:gc-cycles")
	return heapAllocs{bytes: v[0], objects: v[1], cycles: v[2]}
}

// readMetrics reads the named uint64 metrics of runtime/metrics, 0 for any this Go does not have.
func readMetrics(names ...string) []uint64 {
	samples := make([]metrics.Sample, len(names))
	for i, name := range names {
		samples[i].Name = name
	}
	metrics.Read(samples)
	v := make([]uint64, len(samples))
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return v
}

// peakRSSMiB returns the process's peak resident set size (VmHWM of /proc/self/status), 0 where unavailable.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}

// raiseFileLimit lifts the soft limit on open files to the hard one and returns it (0 when unknown). Every
// connection of an in-process network costs two descriptors, one per end.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
		}
	}
	return l.Cur
}

// MemoryBreakdown is where a process's memory is, from runtime/metrics, in MiB.
type MemoryBreakdown struct {
	// HeapLiveMiB is the heap the last garbage collection found live; the heap grows to about twice that
	// (GOGC = 100) before the next one.
	HeapLiveMiB float64 `json:"heap_live_mib"`
	// HeapMiB is the memory of heap objects, live or not yet collected.
	HeapMiB float64 `json:"heap_mib"`
	// HeapFreeMiB is heap memory held by the runtime with nothing in it, not yet returned to the OS.
	HeapFreeMiB float64 `json:"heap_free_mib"`
	// StacksMiB is the memory of goroutine stacks.
	StacksMiB float64 `json:"stacks_mib"`
	// HeapUnusedMiB is memory of heap spans in use that holds no object: mostly slots the last garbage collection
	// freed (the heap's headroom until the next one), and the rounding of size classes.
	HeapUnusedMiB float64 `json:"heap_unused_mib"`
	// MetadataMiB is the runtime's bookkeeping of the heap (span structures, GC bitmaps and work buffers).
	MetadataMiB float64 `json:"metadata_mib"`
	// OtherMiB is the rest the runtime holds: profiling buckets, OS thread stacks and its own buffers.
	OtherMiB float64 `json:"other_mib"`
	// Goroutines is the number of goroutines.
	Goroutines int `json:"goroutines"`
}

// memoryBreakdown reads the process's MemoryBreakdown.
func memoryBreakdown() MemoryBreakdown {
	raw := readMetrics(
		"/gc/heap/live:bytes",
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/total:bytes",
		"/memory/classes/heap/released:bytes",
		"/sched/goroutines:goroutines",
		"/memory/classes/heap/unused:bytes",
		"/memory/classes/metadata/mcache/free:bytes",
		"/memory/classes/metadata/mcache/inuse:bytes",
		"/memory/classes/metadata/mspan/free:bytes",
		"/memory/classes/metadata/mspan/inuse:bytes",
		"/memory/classes/metadata/other:bytes",
	)
	v := make([]float64, len(raw))
	for i, x := range raw {
		v[i] = float64(x) / (1 << 20)
	}
	metadata := v[8] + v[9] + v[10] + v[11] + v[12]
	return MemoryBreakdown{
		HeapLiveMiB: v[0], HeapMiB: v[1], HeapFreeMiB: v[2], StacksMiB: v[3],
		HeapUnusedMiB: v[7],
		MetadataMiB:   metadata,
		OtherMiB:      v[4] - v[5] - v[1] - v[2] - v[3] - v[7] - metadata,
		Goroutines:    int(raw[6]),
	}
}

// ProcessCPU returns the CPU time (user and system) the process has used so far, for benchmarks that report CPU
// per operation across the goroutines of several nodes.
func ProcessCPU() time.Duration { return processCPU() }
