package cpuprio

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBackgroundLowersOnlyItsGoroutine: the goroutine that asks runs in the
// idle class; once it returns its thread is gone, so no other goroutine
// ever runs at that priority.
func TestBackgroundLowersOnlyItsGoroutine(t *testing.T) {
	type seen struct {
		policy uint32
		err    error
	}
	got := make(chan seen)
	for range 3 {
		go func() {
			if err := Background(); err != nil {
				got <- seen{err: err}
				return
			}
			p, err := current()
			got <- seen{p, err}
		}()
		s := <-got
		if s.err != nil {
			t.Fatal(s.err)
		}
		if s.policy != unix.SCHED_IDLE {
			t.Fatalf("policy after Background = %d, want SCHED_IDLE (%d)", s.policy, unix.SCHED_IDLE)
		}
	}
	// Other goroutines, on whatever threads the runtime has, stay normal.
	for range 2 * runtime.GOMAXPROCS(0) {
		go func() {
			p, err := current()
			got <- seen{p, err}
		}()
		if s := <-got; s.err != nil || s.policy != 0 { // SCHED_OTHER
			t.Fatalf("an ordinary goroutine runs with policy %d (err %v), want SCHED_OTHER (0)", s.policy, s.err)
		}
	}
}
