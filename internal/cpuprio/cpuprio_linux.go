package cpuprio

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func lower() error {
	// Lowering one's own priority needs no privilege.
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("cpuprio: set SCHED_IDLE: %w", err)
	}
	return nil
}

// current reports the calling thread's scheduling policy (for tests).
func current() (uint32, error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, err
	}
	return attr.Policy, nil
}
