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
	// A P to spare for the idle class, on a one-core machine too.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	type seen struct {
		policy uint32
		err    error
	}
	got := make(chan seen)
	for range 3 {
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			end, err := Background()
			defer end()
			if err != nil {
				got <- seen{err: err}
				return
			}
			p, err := current()
			got <- seen{p, err}
		}()
		s := <-got
		<-ended
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

// TestBackgroundLeavesAProcessor: a goroutine in the idle class holds its P
// while the kernel does not run it, so Background lowers at most
// GOMAXPROCS-1 goroutines at a time; the one refused stays at normal
// priority, and a slot freed by end is taken again.
func TestBackgroundLeavesAProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	type result struct {
		policy uint32
		err    error
	}
	release := make(chan struct{})
	try := func() (chan result, chan struct{}) {
		got, ended := make(chan result, 1), make(chan struct{})
		go func() {
			defer close(ended)
			end, err := Background()
			defer end()
			p, perr := current()
			if err == nil {
				err = perr
			}
			got <- result{p, err}
			<-release
		}()
		return got, ended
	}
	first, firstEnded := try()
	if r := <-first; r.err != nil || r.policy != unix.SCHED_IDLE {
		t.Fatalf("first: policy %d, err %v; want SCHED_IDLE", r.policy, r.err)
	}
	second, secondEnded := try()
	if r := <-second; r.err == nil || r.policy != 0 {
		t.Fatalf("second with GOMAXPROCS 2: policy %d, err %v; want a refusal at SCHED_OTHER", r.policy, r.err)
	}
	close(release)
	<-firstEnded
	<-secondEnded
	release = make(chan struct{})
	third, thirdEnded := try()
	if r := <-third; r.err != nil || r.policy != unix.SCHED_IDLE {
		t.Fatalf("after the first ended: policy %d, err %v; want SCHED_IDLE", r.policy, r.err)
	}
	close(release)
	<-thirdEnded

	runtime.GOMAXPROCS(1)
	release = make(chan struct{})
	alone, aloneEnded := try()
	if r := <-alone; r.err == nil || r.policy != 0 {
		t.Fatalf("GOMAXPROCS 1: policy %d, err %v; want a refusal at SCHED_OTHER", r.policy, r.err)
	}
	close(release)
	<-aloneEnded
}
