// Command tgload is a small closed-loop load generator for tollgate's
// OpenAI-compatible API (or any Chat Completions endpoint, such as the mock
// LLM): C clients each send a request, read the whole answer and send the
// next, for a duration D or N requests, whichever ends first. It prints
// throughput, latency percentiles (and time to first token for streams)
// and errors by status.
//
//	tgload -url http://127.0.0.1:8080/v1/chat/completions -key K -c 16 -d 10s [-stream] [-model M]
//
// With -mode orders, unifiedorder or notify it loads the payment side of
// tollgate serve instead (see pay.go): order creation through serve, the
// same number of unifiedorder calls straight to the in-process WeChat Pay
// emulator, or signed v2 payment notifications (first credited, then
// repeated):
//
//	tgload -mode orders -base http://127.0.0.1:8080 -key K -c 16 -d 10s
//	tgload -mode notify -base http://127.0.0.1:8080 -key K -mch-id M -appid A -api-key K32 -orders 2000 -c 16
//
// With -mode webhooks it measures webhook delivery (webhooks.go): a local
// receiver registered with POST /admin/webhooks (serve runs with
// --webhook-allow-private), the delay from each payment's acknowledgment
// to its payment.succeeded, and events/s draining a backlog:
//
//	tgload -mode webhooks -base http://127.0.0.1:8080 -key K -admin T -mch-id M -appid A -api-key K32 -orders 1000 -backlog 2000 -c 16
//
// With -mode seedledger it fills a fresh ledger (SQLite -data or
// PostgreSQL -pg) with valid accounts, paid orders and lots, usage records
// with their settled holds and refunds, rolls every closed day into the
// daily usage rollup with serve's own roller, and writes one day's bill;
// -mode billserve serves such bills to `tollgate reconcile` (seed.go,
// ledgerbench.sh):
//
//	tgload -mode seedledger -data DIR -orders 1000000 -usage 10000000 -bill-day 2026-11-10 -bill-dir BILLS
//	tgload -mode billserve -bill-dir BILLS -addr 127.0.0.1:18500
//
// It is a benchmarking tool for this machine, not a stress tool: it only
// talks to loopback addresses and refuses any other target, and its client
// count and duration are bounded.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tgload:", err)
		os.Exit(2)
	}
}

// run parses args, runs the load and writes the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch modeOf(args) {
	case "seedledger":
		return runSeed(ctx, args, stdout, stderr)
	case "billserve":
		return runBillServe(ctx, args, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.Mode != ModeChat && cfg.Mode != "" {
		rep, err := LoadPay(ctx, cfg)
		if rep != nil {
			rep.Write(stdout, cfg)
			if cfg.Row && rep.Check != "" {
				fmt.Fprintln(stderr, "check:", rep.Check)
			}
		}
		return err
	}
	res, err := Load(ctx, cfg)
	if err != nil {
		return err
	}
	res.Write(stdout, cfg)
	return nil
}
