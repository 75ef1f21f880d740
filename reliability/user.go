package reliability

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"

	"tollgate/wxpay/wxpaysim"
)

// user is one simulated customer. Its random choices come from its own
// seeded source, so a seed replays each user's decisions.
type user struct {
	w        *Workload
	id       int
	rng      *rand.Rand
	packages []string

	key string // API key
}

type createdOrder struct {
	OutTradeNo  string `json:"out_trade_no"`
	AmountFen   int64  `json:"amount_fen"`
	Credits     int64  `json:"credits"`
	Status      string `json:"status"`
	AccessToken *struct {
		Token string `json:"token"`
	} `json:"access_token"`
}

// instance picks an instance for the next call.
func (u *user) instance() int { return u.rng.Intn(len(u.w.Cluster.Addrs)) }

// call sends a request to instance i and, when the instance does not
// answer (killed), to the others in turn: what a client behind a load
// balancer sees. Safe only for idempotent requests.
func (u *user) call(ctx context.Context, i int, method, path, bearer string, hdr map[string]string, body any) Reply {
	addrs := u.w.Cluster.Addrs
	var r Reply
	for attempt := range 4 * len(addrs) {
		r = Call(ctx, method, addrs[(i+attempt)%len(addrs)]+path, bearer, hdr, body)
		if r.Outcome != Unknown && r.Status != 502 && r.Status != 503 {
			return r
		}
		time.Sleep(time.Duration(20*(attempt+1)) * time.Millisecond)
	}
	return r
}

func (u *user) run(ctx context.Context, orders int) error {
	r := u.call(ctx, u.instance(), "POST", "/admin/accounts", u.w.Cluster.AdminToken, nil, nil)
	var acct struct {
		APIKey string `json:"api_key"`
	}
	if r.Status != 201 {
		return fmt.Errorf("create account: %s", r)
	}
	if err := r.Decode(&acct); err != nil {
		return err
	}
	u.key = acct.APIKey
	u.w.Stats.Accounts.Add(1)
	for k := range orders {
		if err := ctx.Err(); err != nil {
			return err
		}
		u.order(ctx, k)
	}
	return nil
}

// order runs one order's life: create (with an Idempotency-Key), maybe
// spend the provisional grant, pay / fail / abandon, spend, maybe refund;
// and the attacker's forgeries against it.
func (u *user) order(ctx context.Context, k int) {
	idem := fmt.Sprintf("rel-%d-u%d-o%d", u.w.Seed, u.id, k)
	body := u.orderBody()
	o, ok := u.create(ctx, idem, body)
	if !ok {
		return
	}
	u.w.created.Add(1)
	u.idempotency(ctx, idem, body, o)
	if o.AccessToken != nil && u.rng.Float64() < u.w.ProvisionalRate {
		u.chat(ctx, o.AccessToken.Token, true)
	}
	u.attack(ctx, o)
	switch x := u.rng.Float64(); {
	case x < u.w.PayRate:
		if !u.sim(ctx, o.OutTradeNo, "pay") {
			return
		}
		u.w.Stats.Paid.Add(1)
		for range 1 + u.rng.Intn(3) {
			u.chat(ctx, u.key, false)
		}
		if u.rng.Float64() < u.w.RefundRate {
			u.refund(ctx, o.OutTradeNo)
		}
	case x < u.w.PayRate+u.w.FailRate:
		if u.sim(ctx, o.OutTradeNo, "fail") {
			u.w.Stats.Failed.Add(1)
		}
	default:
		u.w.Stats.Abandoned.Add(1)
	}
}

func (u *user) orderBody() map[string]any {
	fp := fmt.Sprintf("fp%014d%06d", u.rng.Int63n(1e14), u.id)
	if len(u.packages) > 0 && u.rng.Intn(3) > 0 {
		return map[string]any{"package_id": u.packages[u.rng.Intn(len(u.packages))], "device_fingerprint": fp}
	}
	return map[string]any{"amount_fen": 100 + u.rng.Int63n(4900), "device_fingerprint": fp}
}

// create places an order, retrying with the same Idempotency-Key on
// another instance when the answer is unknown or a retryable failure.
func (u *user) create(ctx context.Context, idem string, body map[string]any) (createdOrder, bool) {
	hdr := map[string]string{"Idempotency-Key": idem}
	var r Reply
	for attempt := range 8 {
		if attempt > 0 {
			u.w.Stats.OrderRetries.Add(1)
			time.Sleep(time.Duration(50*attempt) * time.Millisecond)
		}
		r = u.call(ctx, u.instance(), "POST", "/v1/payments/orders", u.key, hdr, body)
		if r.Status == 200 || r.Status == 201 {
			var o createdOrder
			if err := r.Decode(&o); err != nil || o.OutTradeNo == "" {
				u.w.Stats.problem("create order answered %s", r)
				return o, false
			}
			u.w.Stats.Orders.Add(1)
			return o, true
		}
		if r.Outcome != Unknown && r.Status < 500 {
			break
		}
	}
	// Still unknown after the retries (SYSTEMERROR every time): the
	// order may exist; the final check accepts it either way.
	u.w.Stats.OrderUnknown.Add(1)
	u.w.Logf("user %d: order %s not created: %s", u.id, idem, r)
	return createdOrder{}, false
}

// idempotency checks I12 on the live system now and then: the same key
// and body return the same order, the same key and another body are
// refused.
func (u *user) idempotency(ctx context.Context, idem string, body map[string]any, o createdOrder) {
	hdr := map[string]string{"Idempotency-Key": idem}
	switch x := u.rng.Float64(); {
	case x < 0.1:
		u.w.Stats.IdemReplays.Add(1)
		r := u.call(ctx, u.instance(), "POST", "/v1/payments/orders", u.key, hdr, body)
		var again createdOrder
		if r.Outcome == OK && r.Decode(&again) == nil && again.OutTradeNo == o.OutTradeNo {
			return
		}
		if r.Outcome == OK || r.Status < 500 {
			u.w.Stats.IdemReplayMismatch.Add(1)
			u.w.Stats.problem("I12: Idempotency-Key %s replayed: %s, first order %s", idem, r, o.OutTradeNo)
		}
	case x < 0.15:
		u.w.Stats.IdemConflicts.Add(1)
		other := map[string]any{"amount_fen": o.AmountFen + 1, "device_fingerprint": body["device_fingerprint"]}
		r := u.call(ctx, u.instance(), "POST", "/v1/payments/orders", u.key, hdr, other)
		if r.Outcome == OK {
			u.w.Stats.IdemConflictAccepted.Add(1)
			u.w.Stats.problem("I12: Idempotency-Key %s with another body accepted: %s", idem, r)
		}
	}
}

// sim asks the emulator to act as the paying user. A 404 means the order
// never reached WeChat Pay (placement failed with SYSTEMERROR every time).
func (u *user) sim(ctx context.Context, no, action string) bool {
	r := Call(ctx, "POST", u.w.Cluster.Sim+"/sim/orders/"+no+"/"+action, "", nil, nil)
	switch {
	case r.Outcome == OK:
		return true
	case r.Status == 404:
		u.w.Stats.NotPlaced.Add(1)
	case action == "pay" && r.Status == 409 && u.closedAfterLie(ctx, no):
		u.w.Stats.PayClosedAfterLie.Add(1)
	default:
		u.w.Stats.PayRefused.Add(1)
		u.w.Stats.problem("sim %s %s: %s", action, no, r)
	}
	return false
}

// closedAfterLie reports whether the emulator closed order no because
// tollgate closed it there after a query lied that it had failed (CLOSED,
// PAYERROR, REVOKED): a failure report is confirmed by closing the order,
// so a payer who had not paid yet can no longer pay. Money stays right.
func (u *user) closedAfterLie(ctx context.Context, no string) bool {
	var o wxpaysim.Order
	var lies []wxpaysim.LieTold
	if getJSON(ctx, u.w.Cluster.Sim+"/sim/orders/"+no, &o) != nil || o.State != wxpaysim.StateClosed ||
		getJSON(ctx, u.w.Cluster.Sim+"/sim/lies", &lies) != nil {
		return false
	}
	for _, l := range lies {
		if l.OutTradeNo == no && l.Where == wxpaysim.LieInQuery &&
			(l.Kind == wxpaysim.LieClosed || l.Kind == wxpaysim.LiePayError || l.Kind == wxpaysim.LieRevoked) {
			return true
		}
	}
	return false
}

// chat spends through the gateway on the mock model. A chat is not
// idempotent, so an unknown outcome is recorded and not retried.
func (u *user) chat(ctx context.Context, bearer string, provisional bool) {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"harness %d"}],"max_tokens":%d,"stream":%v}`,
		u.w.Cluster.ChatModel, u.rng.Int63(), 8+u.rng.Intn(56), u.rng.Intn(4) == 0)
	i := u.instance()
	r := Call(ctx, "POST", u.w.Cluster.Addrs[i]+"/v1/chat/completions", bearer, nil, body)
	if r.Outcome == OK && strings.Contains(string(r.Body), "data: ") {
		u.w.Stats.ChatStreams.Add(1)
	}
	u.w.Stats.Chats.Add(1)
	if provisional {
		u.w.Stats.ChatsProvisional.Add(1)
	}
	switch {
	case r.Outcome == OK:
		u.w.Stats.chatAnswered(i)
	case r.Refused:
		u.w.Stats.ChatRefused.Add(1)
	case r.Outcome == Unknown:
		u.w.Stats.ChatUnknown.Add(1)
	case r.Status == 402:
		u.w.Stats.Chat402.Add(1)
	default:
		u.w.Stats.ChatOther.Add(1)
	}
}

// refund waits (bounded) until the order reads SUCCESS, then asks for the
// refund; now and then it asks both instances at once (S10: two refunds
// at once must make one).
func (u *user) refund(ctx context.Context, no string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := u.call(ctx, u.instance(), "GET", "/v1/payments/orders/"+no, u.key, nil, nil)
		var o struct{ Status string }
		if r.Outcome == OK && r.Decode(&o) == nil && o.Status == "SUCCESS" {
			break
		}
		if time.Now().After(deadline) {
			u.w.Stats.RefundNotReady.Add(1)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n := 1
	if u.rng.Float64() < 0.3 {
		n = len(u.w.Cluster.Addrs)
		u.w.Stats.RefundsDoubled.Add(1)
	}
	var wg sync.WaitGroup
	first := u.instance()
	for i := range n {
		wg.Go(func() {
			addr := u.w.Cluster.Addrs[(first+i)%len(u.w.Cluster.Addrs)]
			r := Call(ctx, "POST", addr+"/v1/payments/orders/"+no+"/refund", u.key, nil, nil)
			switch {
			case r.Outcome == OK:
				u.w.Stats.Refunds.Add(1)
			case r.Outcome == Unknown || r.Status >= 500:
				u.w.Stats.RefundUnknown.Add(1)
			default:
				u.w.Stats.RefundRefused.Add(1)
			}
		})
	}
	wg.Wait()
}

// attack sends forged and amount-tampered notifications for the order,
// straight at an instance's notify URL. The forged transaction ids are
// remembered: no lot may ever carry one.
func (u *user) attack(ctx context.Context, o createdOrder) {
	cl := u.w.Cluster
	if u.rng.Float64() < u.w.ForgeRate {
		kinds := cl.ForgeKinds()
		kind := kinds[u.rng.Intn(len(kinds))]
		p := Payment{OutTradeNo: o.OutTradeNo, TransactionID: fmt.Sprintf("4200%016d", u.rng.Int63n(1e16)), Total: o.AmountFen}
		u.w.noteForged(p.TransactionID)
		u.w.Stats.Forged.Add(1)
		u.notify(ctx, cl.Forge(kind, p, u.rng), "forged "+kind, &u.w.Stats.ForgedRefused, &u.w.Stats.ForgedAcked)
	}
	if u.rng.Float64() < u.w.TamperRate {
		p := Payment{OutTradeNo: o.OutTradeNo, TransactionID: fmt.Sprintf("4200%016d", u.rng.Int63n(1e16)), Total: o.AmountFen}
		u.w.noteForged(p.TransactionID)
		u.w.Stats.Tampered.Add(1)
		delta := []int64{-1, 1, o.AmountFen, -o.AmountFen + 1}[u.rng.Intn(4)]
		u.notify(ctx, cl.Tamper(p, delta, u.rng), "tampered", &u.w.Stats.TamperedRefused, &u.w.Stats.TamperedAcked)
	}
}

func (u *user) notify(ctx context.Context, n Notification, what string, refused, acked interface{ Add(int64) int64 }) {
	r := u.call(ctx, u.instance(), "POST", u.w.Cluster.NotifyPath, "", n.Header, n.Body)
	switch {
	case r.Outcome == Unknown:
	case u.w.Cluster.Acked(r):
		acked.Add(1)
		u.w.Stats.problem("%s notification acknowledged: %s", what, strings.TrimSpace(string(r.Body)))
	default:
		refused.Add(1)
	}
}
