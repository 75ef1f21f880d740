//go:build !linux

package cpuprio

import "errors"

func lower() error { return errors.New("cpuprio: no idle scheduling class on this system") }

func current() (uint32, error) { return 0, errors.New("cpuprio: not supported") }
