// Package cpuprio runs a goroutine's work at the operating system's lowest
// CPU priority, so that on a machine with few cores background work (the
// ledger's batch commits, the SQLite checkpointer) yields the CPU to the
// requests being answered instead of sharing it with them.
package cpuprio

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// lowered counts the goroutines running in the idle class now.
var lowered atomic.Int32

// Background locks the calling goroutine to its OS thread and lowers that
// thread to the idle scheduling class (Linux SCHED_IDLE): the kernel runs
// it only when nothing of normal priority is waiting, yet it is never
// starved outright. Call it first thing in a goroutine that does only
// background work until it returns, and call end (defer it) when that
// work ends: the thread is never unlocked, so it ends with the goroutine
// rather than carrying the low priority to other work.
//
// A goroutine in the idle class keeps its P (one of GOMAXPROCS) while the
// kernel, busy with other work, does not run its thread: with every P
// held that way the whole process would wait for idle CPU. So Background
// refuses, leaving the goroutine at normal priority and unlocked, when it
// would leave no P to the rest of the process. Where the class is not
// available it only locks the thread and returns an error saying so. In
// both cases the caller may go on at normal priority; end is never nil.
func Background() (end func(), err error) {
	procs := runtime.GOMAXPROCS(0)
	if n := lowered.Add(1); int(n) >= procs {
		lowered.Add(-1)
		return func() {}, fmt.Errorf("cpuprio: with GOMAXPROCS %d and %d goroutines in the idle class, one more would leave the process no processor while the machine is busy: staying at normal priority", procs, n-1)
	}
	runtime.LockOSThread()
	if err := lower(); err != nil {
		lowered.Add(-1)
		return func() {}, err
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			lowered.Add(-1)
		}
	}, nil
}
