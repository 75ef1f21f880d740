package kv

import (
	"context"
	"sync"
	"time"

	"tollgate"
)

// DefaultSweepEvery is how often Memory removes expired entries unless
// MemoryOptions says otherwise.
const DefaultSweepEvery = time.Minute

// MemoryOptions configures NewMemory. The zero value is ready to use.
type MemoryOptions struct {
	// Clock decides when entries expire; tollgate.SystemClock when nil.
	// Tests inject a fake clock.
	Clock tollgate.Clock
	// SweepEvery is the least time between two sweeps of expired entries
	// (DefaultSweepEvery when zero). A sweep runs inside a write call, so
	// Memory owns no goroutine and needs no Close.
	SweepEvery time.Duration
}

// Memory is the in-process NonceStore, Limiter and Cache: the default when
// tollgate runs as one instance. Its state dies with the process. Memory is
// bounded: every entry has an expiry (a limiter key expires once its bucket
// is full again, a window key once its last slot stops counting) and
// expired entries are swept at most every SweepEvery. It is safe for
// concurrent use.
type Memory struct {
	now        func() time.Time
	sweepEvery time.Duration

	// mu guards the fields below.
	mu        sync.Mutex
	entries   map[string]memEntry
	lastSweep time.Time
}

type memEntry struct {
	expires time.Time
	tat     int64        // limiter keys: theoretical arrival time, ns
	slots   []WindowSlot // window keys: counts per slot
	value   []byte       // cache keys
}

var (
	_ NonceStore = (*Memory)(nil)
	_ Limiter    = (*Memory)(nil)
	_ Cache      = (*Memory)(nil)
)

// NewMemory returns an empty Memory.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{now: tollgate.ClockOr(opts.Clock).Now, sweepEvery: opts.SweepEvery, entries: make(map[string]memEntry)}
	if m.sweepEvery <= 0 {
		m.sweepEvery = DefaultSweepEvery
	}
	return m
}

// Len returns the number of entries held, expired or not; for tests and
// metrics.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Key spaces, so that a nonce, a limiter key and a cache key never collide.
const (
	nonceSpace  = "n:"
	limitSpace  = "l:"
	windowSpace = "w:"
	cacheSpace  = "c:"
)

// SetNX implements NonceStore.
func (m *Memory) SetNX(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := CheckTTL("kv.Memory.SetNX", ttl); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.maybeSweepLocked(now)
	k := nonceSpace + key
	if e, ok := m.entries[k]; ok && now.Before(e.expires) {
		return false, nil
	}
	m.entries[k] = memEntry{expires: now.Add(ttl)}
	return true, nil
}

// Seen implements NonceStore.
func (m *Memory) Seen(ctx context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.getLocked(nonceSpace+key, m.now())
	return ok, nil
}

// Allow implements Limiter.
func (m *Memory) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	return m.AllowN(ctx, key, limit, 1)
}

// AllowN implements Limiter.
func (m *Memory) AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if err := CheckN("kv.Memory.AllowN", limit, n); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.maybeSweepLocked(now)
	k := limitSpace + key
	var tat int64
	if e, ok := m.getLocked(k, now); ok {
		tat = e.tat
	}
	newTAT, r := GCRA(now.UnixNano(), tat, limit.Interval(), limit.Burst, n)
	if r.Allowed {
		// The key is worth keeping until its bucket is full again.
		m.entries[k] = memEntry{tat: newTAT, expires: time.Unix(0, newTAT)}
	}
	return r, nil
}

// AllowWindow implements Limiter.
func (m *Memory) AllowWindow(ctx context.Context, key string, w Window, n int) (Result, error) {
	if err := CheckWindow("kv.Memory.AllowWindow", w, n); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.maybeSweepLocked(now)
	k := windowSpace + key
	e, _ := m.getLocked(k, now)
	slots, expires, r := WindowStep(now.UnixNano(), e.slots, w, n)
	if r.Allowed {
		// The key is worth keeping until its newest slot stops counting.
		m.entries[k] = memEntry{slots: slots, expires: time.Unix(0, expires)}
	}
	return r, nil
}

// Get implements Cache.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.getLocked(cacheSpace+key, m.now())
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), e.value...), true, nil
}

// Set implements Cache.
func (m *Memory) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := CheckTTL("kv.Memory.Set", ttl); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.maybeSweepLocked(now)
	m.entries[cacheSpace+key] = memEntry{expires: now.Add(ttl), value: append([]byte(nil), value...)}
	return nil
}

// Delete implements Cache.
func (m *Memory) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, cacheSpace+key)
	return nil
}

// getLocked returns the live entry under k, deleting it if it expired.
func (m *Memory) getLocked(k string, now time.Time) (memEntry, bool) {
	e, ok := m.entries[k]
	if !ok {
		return memEntry{}, false
	}
	if !now.Before(e.expires) {
		delete(m.entries, k)
		return memEntry{}, false
	}
	return e, true
}

// maybeSweepLocked deletes every expired entry if the last sweep is at
// least sweepEvery old. The cost is amortised over sweepEvery of writes.
func (m *Memory) maybeSweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < m.sweepEvery {
		return
	}
	m.lastSweep = now
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
}
