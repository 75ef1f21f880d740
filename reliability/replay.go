package reliability

// S5: replays of valid notifications after 1 h and 25 h of virtual time.
// Serve has no clock control, and the only state in a v2 payment
// notification's path that ages is the nonce record in Redis (kv.NonceTTL,
// 24 h): within it (1 h) a replay meets its nonce, past it (25 h) the
// nonce is gone and only the ledger's exactly-once guards remain. So the
// 25 h replay deletes exactly the replayed bodies' nonce keys (what their
// expiry does) before sending them; other keys are never touched.
//
// API v3 records the Wechatpay-Nonce the same way (nonce:wxpay:v3:), and
// also refuses a notification signed more than 5 minutes ago: a real 1 h
// or 25 h replay is refused as too old before its nonce is looked at.
// That window runs on serve's clock, which the harness cannot move, so S5
// on v3 tests the nonce and the ledger's guards the same way, and a replay
// that did age past the window (a long run's) must be refused.

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate/kv"
)

var nonceRE = regexp.MustCompile(`<nonce_str>(?:<!\[CDATA\[)?([^<\]]*)(?:\]\]>)?</nonce_str>`)

// AgedReplay is the outcome of ReplayAged.
type AgedReplay struct {
	Age           time.Duration
	Sent, Acked   int64
	Unknown       int64
	Stale         int64 // v3: signed more than 5 minutes before the replay, and refused
	NoncesExpired int64 // nonce keys deleted (age past kv.NonceTTL)
	Problems      []string
}

// ReplayAged replays up to limit acknowledged notifications, byte for
// byte, at every instance as if age had passed since they were delivered.
// Past kv.NonceTTL their nonce keys (prefix + Cluster.nonceKeys) are
// deleted from Redis first. Every replay must be acknowledged (a v3 one
// signed more than 5 minutes ago refused); the caller checks that the
// money tables did not change.
func (w *Workload) ReplayAged(ctx context.Context, redisURL, prefix string, age time.Duration, limit int) (*AgedReplay, error) {
	res := &AgedReplay{Age: age}
	cl := w.Cluster
	ns := cl.Front.Acked()
	if len(ns) > limit {
		ns = ns[len(ns)-limit:] // others than Replay's (the first ones)
	}
	if age > kv.NonceTTL {
		opt, err := goredis.ParseURL(redisURL)
		if err != nil {
			return nil, err
		}
		c := goredis.NewClient(opt)
		defer c.Close()
		for _, nt := range ns {
			keys, ok := cl.nonceKeys(nt)
			if !ok {
				res.Problems = append(res.Problems, "S5: acknowledged notification without a nonce")
				continue
			}
			for i := range keys {
				keys[i] = prefix + keys[i]
			}
			n, err := c.Del(ctx, keys...).Result()
			if err != nil {
				return nil, fmt.Errorf("S5: expire nonce: %w", err)
			}
			res.NoncesExpired += n
		}
	}
	var sent, acked, unknown, stale atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nt := range ns {
		for _, addr := range cl.Addrs {
			wg.Go(func() {
				sent.Add(1)
				ack, sure := cl.replayExpect(nt)
				r := cl.Notify(ctx, addr, nt)
				switch {
				case r.Outcome == Unknown:
					unknown.Add(1)
				case cl.Acked(r) && (ack || !sure):
					acked.Add(1)
				case !cl.Acked(r) && !ack && r.Status/100 == 4:
					stale.Add(1)
				default:
					mu.Lock()
					res.Problems = append(res.Problems, fmt.Sprintf("S5: replay after %v answered %s (acknowledgement expected: %v)", age, r, ack))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	res.Sent, res.Acked, res.Unknown, res.Stale = sent.Load(), acked.Load(), unknown.Load(), stale.Load()
	return res, nil
}
