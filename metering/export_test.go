package metering

import "context"

// WaitRetried waits until the retry loop has ended, which it does when no
// settle waits any more, or until ctx ends.
func WaitRetried(ctx context.Context, m *Meter) error {
	m.retry.mu.Lock()
	loop := m.retry.loop
	m.retry.mu.Unlock()
	if loop == nil {
		return nil
	}
	select {
	case <-loop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RetryMax is the longest wait between two retries.
const RetryMax = retryMax
