package reliability

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"tollgate/ledger"
	"tollgate/wxpay/wxpaysim"
)

// CatalogueResult is what SendCatalogue sent and how it was answered.
type CatalogueResult struct {
	Sent     map[string]int // by kind ("tampered" for amount changes)
	Acked    []string       // forgeries answered with the success acknowledgement
	Unknown  int
	Targets  int
	Problems []string
}

// SendCatalogue sends perKind notifications of every forgery kind,
// perKind amount-tampered ones and perKind correctly signed ones for unpaid
// orders that reuse an acknowledged nonce_str, against orders drawn from the emulator's
// ground truth (paid and unpaid alike), to every instance in turn
// (docs/RELIABILITY.md S4, short form). Run it at a quiescent point, between
// two dumps: nothing may change (I8).
func SendCatalogue(ctx context.Context, cl *Cluster, orders []wxpaysim.Order, perKind int, rng *rand.Rand) CatalogueResult {
	res := CatalogueResult{Sent: map[string]int{}, Targets: len(orders)}
	if len(orders) == 0 {
		res.Problems = append(res.Problems, "S4: no orders to forge notifications for")
		return res
	}
	var unpaid []wxpaysim.Order
	for _, o := range orders {
		if !Paid(o) {
			unpaid = append(unpaid, o)
		}
	}
	nonces := cl.paymentNonces(cl.Front.Acked())
	kinds := append(append([]string(nil), cl.CatalogueKinds()...), "tampered", "nonce_reuse")
	n := 0
	for _, kind := range kinds {
		if kind == "nonce_reuse" && (len(unpaid) == 0 || len(nonces) == 0) {
			res.Problems = append(res.Problems, "S4: no unpaid order or no acknowledged nonce for nonce_reuse")
			continue
		}
		for range perKind {
			o := orders[rng.Intn(len(orders))]
			if kind == "nonce_reuse" {
				o = unpaid[rng.Intn(len(unpaid))]
			}
			p := Payment{OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID, Total: o.Total}
			if p.TransactionID == "" {
				p.TransactionID = fmt.Sprintf("4200%016d", rng.Int63n(1e16))
			}
			var nt Notification
			switch kind {
			case "tampered":
				nt = cl.Tamper(p, []int64{-1, 1, p.Total}[rng.Intn(3)], rng)
			case "nonce_reuse":
				// Correctly signed, right amount, for an order WeChat Pay
				// was not paid for, but with a nonce (v2 nonce_str, v3
				// Wechatpay-Nonce) already seen: only the nonce rule
				// refuses it (mutation a).
				nt = cl.Genuine(p, nonces[rng.Intn(len(nonces))])
			default:
				nt = cl.Forge(kind, p, rng)
			}
			addr := cl.Addrs[n%len(cl.Addrs)]
			n++
			res.Sent[kind]++
			r := cl.Notify(ctx, addr, nt)
			switch {
			case r.Outcome == Unknown:
				res.Unknown++
			case cl.Acked(r):
				res.Acked = append(res.Acked, fmt.Sprintf("%s for %s (%s): %s", kind, o.OutTradeNo, o.State, r))
			case r.Status/100 != 4:
				res.Problems = append(res.Problems, fmt.Sprintf("S4: %s for %s answered %s, want a 4xx refusal", kind, o.OutTradeNo, r))
			}
		}
	}
	return res
}

// Rejections reads tollgate_payment_events_total{event="notification_rejected"}
// from an instance's /metrics, by reason.
func Rejections(ctx context.Context, addr string) (map[string]int64, error) {
	return Events(ctx, addr, "notification_rejected")
}

// Events reads tollgate_payment_events_total{event=event} from an
// instance's /metrics, by reason.
func Events(ctx context.Context, addr, event string) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := `tollgate_payment_events_total{event="` + event + `",reason="`
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(line, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", sc.Text(), err)
		}
		out[reason] += int64(v)
	}
	return out, sc.Err()
}

// DiffMoney lists what differs between two dumps' money tables: lots,
// accounts, refunds, usage, holds and grants (pgledger's snapshot diff, I8).
func DiffMoney(a, b *ledger.Dump) []string {
	var out []string
	for _, t := range []struct {
		name string
		x, y any
	}{
		{"lots", a.Lots, b.Lots}, {"accounts", a.Accounts, b.Accounts}, {"refunds", a.Refunds, b.Refunds},
		{"usage", a.Usage, b.Usage}, {"holds", a.Holds, b.Holds}, {"grants", a.Grants, b.Grants},
	} {
		if !reflect.DeepEqual(t.x, t.y) {
			out = append(out, t.name)
		}
	}
	return out
}
