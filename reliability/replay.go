package reliability

// S5: replays of valid notifications after 1 h and 25 h of virtual time.
// Serve has no clock control, and the only state in a v2 payment
// notification's path that ages is the nonce record in Redis (kv.NonceTTL,
// 24 h): within it (1 h) a replay meets its nonce, past it (25 h) the
// nonce is gone and only the ledger's exactly-once guards remain. So the
// 25 h replay deletes exactly the replayed bodies' nonce keys (what their
// expiry does) before sending them; other keys are never touched.

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
	NoncesExpired int64 // nonce keys deleted (age past kv.NonceTTL)
	Problems      []string
}

// ReplayAged replays up to limit acknowledged notification bodies, byte for
// byte, at every instance as if age had passed since they were delivered.
// Past kv.NonceTTL the bodies' nonce keys (prefix + "nonce:wxpay:v2:" or
// "nonce:wxpay:v2r:" + mch_id + ":" + nonce_str) are deleted from Redis first. Every replay must
// be acknowledged; the caller checks that the money tables did not change.
func (w *Workload) ReplayAged(ctx context.Context, redisURL, prefix string, age time.Duration, limit int) (*AgedReplay, error) {
	res := &AgedReplay{Age: age}
	bodies := w.Cluster.Front.Acked()
	if len(bodies) > limit {
		bodies = bodies[len(bodies)-limit:] // others than Replay's (the first ones)
	}
	if age > kv.NonceTTL {
		opt, err := goredis.ParseURL(redisURL)
		if err != nil {
			return nil, err
		}
		c := goredis.NewClient(opt)
		defer c.Close()
		for _, b := range bodies {
			m := nonceRE.FindSubmatch(b)
			if m == nil {
				res.Problems = append(res.Problems, "S5: acked body without nonce_str")
				continue
			}
			suffix := w.Cluster.SimConfig.MchID + ":" + string(m[1])
			n, err := c.Del(ctx, prefix+"nonce:wxpay:v2:"+suffix, prefix+"nonce:wxpay:v2r:"+suffix).Result()
			if err != nil {
				return nil, fmt.Errorf("S5: expire nonce: %w", err)
			}
			res.NoncesExpired += n
		}
	}
	var sent, acked, unknown atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range bodies {
		for _, addr := range w.Cluster.Addrs {
			wg.Go(func() {
				sent.Add(1)
				r := Call(ctx, "POST", addr+"/wxpay/notify", "", map[string]string{"Content-Type": "text/xml"}, b)
				switch {
				case r.Outcome == Unknown:
					unknown.Add(1)
				case Acked(r):
					acked.Add(1)
				default:
					mu.Lock()
					res.Problems = append(res.Problems, fmt.Sprintf("S5: replay after %v answered %s", age, r))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	res.Sent, res.Acked, res.Unknown = sent.Load(), acked.Load(), unknown.Load()
	return res, nil
}
