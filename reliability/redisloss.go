package reliability

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisLoss is S8: once half the orders are placed it deletes every key
// under the instances' --redis-prefix (SCAN + DEL, never FLUSHALL: other
// tests share the Redis), losing the notification nonces, the limiter's
// buckets and the circuit breakers mid-run. The exactly-once checks at
// the end then prove crediting does not depend on Redis.
func (w *Workload) RedisLoss(ctx context.Context, redisURL, prefix string, done <-chan struct{}) error {
	if prefix == "" {
		return fmt.Errorf("S8: no Redis prefix: refusing to delete keys")
	}
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rc := goredis.NewClient(opt)
	defer rc.Close()
	for w.created.Load() < int64(w.Orders/2) {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	n, err := DeleteRedisPrefix(ctx, rc, prefix)
	w.Stats.RedisKeysDeleted.Add(n)
	if err != nil {
		return fmt.Errorf("S8: delete %s*: %w", prefix, err)
	}
	w.Stats.RedisWipes.Add(1)
	// The nonces seen before the loss are gone with it: a correctly
	// signed notification reusing one is accepted again (the nonce rule
	// lives in Redis only; see docs/RELIABILITY.md S8). The S4
	// catalogue's nonce_reuse draws from acknowledged bodies, so forget
	// those acknowledged before the loss (after a second, so a request in
	// flight at the wipe has been recorded).
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	w.Cluster.Front.mu.Lock()
	w.Cluster.Front.acked = nil
	w.Cluster.Front.mu.Unlock()
	w.Logf("S8: deleted %d Redis keys under %s after %d orders", n, prefix, w.created.Load())
	return nil
}

// DeleteRedisPrefix deletes every key starting with prefix.
func DeleteRedisPrefix(ctx context.Context, rc *goredis.Client, prefix string) (int64, error) {
	var n int64
	iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		d, err := rc.Del(ctx, iter.Val()).Result()
		if err != nil {
			return n, err
		}
		n += d
	}
	return n, iter.Err()
}
