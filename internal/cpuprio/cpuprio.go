// Package cpuprio runs a goroutine's work at the operating system's lowest
// CPU priority, so that on a machine with few cores background work (the
// ledger's batch commits, the SQLite checkpointer) yields the CPU to the
// requests being answered instead of sharing it with them.
package cpuprio

import "runtime"

// Background locks the calling goroutine to its OS thread and lowers that
// thread to the idle scheduling class (Linux SCHED_IDLE): the kernel runs
// it only when nothing of normal priority is waiting, yet it is never
// starved outright. Call it first thing in a goroutine that does only
// background work until it returns: the thread is never unlocked, so it
// ends with the goroutine rather than carrying the low priority to other
// work. Where the class is not available it only locks the thread and
// returns an error saying so; the caller may go on at normal priority.
func Background() error {
	runtime.LockOSThread()
	return lower()
}
