#!/usr/bin/env bash
# paybench.sh runs the payment benchmarks of docs/BENCHMARKS.md ("Payments"):
# `tollgate serve` (SQLite, the WeChat Pay emulator in-process, started with
# known merchant keys so that tgload can sign v2 notifications itself) and
# tgload against it over loopback, each beside its baseline, at each client
# count:
#
#   order creation: POST /v1/payments/orders through serve (fresh
#     Idempotency-Key each) vs. the same signed v2 unifiedorder calls
#     straight to the emulator (/sandbox/wxpay/pay/unifiedorder): the
#     emulator's own cost in the same run;
#   notifications: M orders pre-created (not paid), then one signed v2
#     SUCCESS notification per order to /wxpay/notify (each must be credited
#     and acknowledged; tgload then checks every order is SUCCESS and the
#     balance grew by exactly M packages) vs. the same notifications posted
#     again (verified, acknowledged, nothing written). `tollgate audit`
#     checks the ledger's invariants at the end;
#   the gateway in the same run: bench.sh's json row at GC clients (default
#     16) through the same serve (billing on, SQLite) to `tollgate mockllm`,
#     so that every payment figure can be read beside the gateway's.
#
# Every phase (each client count of each mode) pays into an account of its
# own (POST /admin/accounts): a credit reads the account's spendable lots,
# so one account that earlier phases gave thousands of lots would make
# later phases slower for a reason that is not theirs. The notifications
# run before order creation, whose unpaid orders the poller would be
# querying meanwhile (a backlog: burstbench.sh measures that on purpose).
#
# With PG_URL and REDIS_URL set it also runs the notification benchmark on
# PostgreSQL + Redis, the many-machine setup: two `tollgate serve`
# instances sharing a fresh database (created here, dropped at the end) and
# Redis (a key prefix of this run, deleted at the end), behind a front door
# (cmd/tgproxy, round robin), with ONE WeChat Pay emulator (`tollgate
# sandbox`, the same merchant keys) that both instances use (--wxpay-url;
# their notify URLs name the front door, so either instance's poller sees
# every order), beside that emulator's unifiedorder alone.
#
#   cmd/tgload/paybench.sh
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 cmd/tgload/paybench.sh
#
# Settings: D (duration of each order-creation and gateway run, default
# 10s), CLIENTS (default "1 16 64"), M (orders notified per client count,
# default 1000; each notification phase runs until all M are posted, at
# most ND, default 2m), GC (clients of the gateway row, default 16; empty:
# no gateway row), PORT (loopback port of serve, default 18093; bench.sh
# uses 18090-18093), XPORT (first of five more for the mock LLM and the
# PostgreSQL setup: mock, emulator, front door, two instances; default
# 18100), TOLLGATE_BIN (a tollgate binary to use instead of building
# ./cmd/tollgate), ONLY_PG=1 (with PG_URL and REDIS_URL: only the
# PostgreSQL + Redis rows). Everything it starts is stopped on exit and its data
# directory removed.
set -euo pipefail
shopt -s inherit_errexit

D=${D:-10s}
CLIENTS=${CLIENTS:-"1 16 64"}
M=${M:-1000}
ND=${ND:-2m}
GC=${GC-16}
PORT=${PORT:-18093}
XPORT=${XPORT:-18100}
ADDR=127.0.0.1:$PORT
BASE=http://$ADDR
MOCK=127.0.0.1:$XPORT
ADMIN=bench-admin-token-0123456789abcdef
# The emulator's merchant: serve passes these to it (wxpaysim.Server) and
# signs with them; tgload signs notifications and unifiedorder calls with
# the same. The PostgreSQL setup's `tollgate sandbox` takes the same keys.
MCH=1900000109
APPID=wxbenchapp00000001
APIKEY=benchv2apikey0123456789abcdefABC

# shellcheck source=cmd/tgload/benchlib.sh
source "$(dirname "$0")/benchlib.sh"
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pg_cluster_cleanup
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${TOLLGATE_BIN:-} ]]; then
	cp "$TOLLGATE_BIN" "$work/tollgate"
else
	go build -o "$work/tollgate" ./cmd/tollgate
fi
go build -o "$work/tgload" ./cmd/tgload
go build -o "$work/tgproxy" ./cmd/tgproxy

# fund BASE KEY SIM pays two 30M-credit packages into KEY's account through
# the emulator at SIM (as bench.sh does) and waits for the credit.
fund() {
	local order
	for i in 1 2; do
		order=$(curl -sf -X POST -H "Authorization: Bearer $2" -H "Idempotency-Key: bench-fund-$i" -H 'Content-Type: application/json' \
			-d '{"package_id":"pro","device_fingerprint":"bench-fingerprint-0001"}' "$1/v1/payments/orders" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["out_trade_no"])')
		curl -sf -X POST "$3/sim/orders/$order/pay" >/dev/null
	done
	for _ in $(seq 100); do
		curl -sf -H "Authorization: Bearer $2" "$1/v1/balance" | grep -q '"credits":60000000' && return 0
		sleep 0.1
	done
	echo "the gateway account was not funded" >&2
	exit 1
}

echo '{"providers":[{"name":"mock","kind":"openai","base_url":"http://'"$MOCK"'/v1","timeout":"30s"}],
 "models":{"mock":[{"provider":"mock","model":"gpt-4o-mini","max_output_tokens":64}]}}' >"$work/providers.json"
taken "$MOCK"
"$work/tollgate" mockllm --addr "$MOCK" >"$work/mock.log" 2>&1 &
pids+=($!)
waitfor "http://$MOCK/v1/models"

taken "$ADDR"
"$work/tollgate" serve --addr "$ADDR" --data "$work/data" --admin-token "$ADMIN" --log-format json --providers "$work/providers.json" \
	--wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY" >"$work/serve.log" 2>&1 &
pids+=($!)
waitfor "$BASE/healthz"
merchant=(-mch-id "$MCH" -appid "$APPID" -api-key "$APIKEY")

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve on SQLite, emulator in-process; order creation $D per run; notifications: $M orders per client count, closed loop; a fresh account per phase"
if [[ -n $GC && -z ${ONLY_PG:-} ]]; then
	gkey=$(newkey "$BASE")
	fund "$BASE" "$gkey" "$BASE/sandbox/wxpay"
	echo
	echo "the gateway in the same run (bench.sh's json row: max_tokens 16, billing on, $D):"
	echo
	echo "| mode | clients | target | ok/s | p50 | p90 | p99 | TTFT p50 | TTFT p99 | errors |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	echo "| json | $GC | mock directly $("$work/tgload" -url "http://$MOCK/v1/chat/completions" -model gpt-4o-mini -c "$GC" -d "$D" -row)"
	echo "| json | $GC | gateway, SQLite $("$work/tgload" -url "$BASE/v1/chat/completions" -key "$gkey" -model mock -c "$GC" -d "$D" -row)"
fi
echo
echo "| benchmark | clients | target | ok/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|---|"
checks=()
# notify BASE LABEL C [tgload flags...] runs the notification benchmark
# at C clients on a fresh account and prints its rows.
notify() {
	local base=$1 label=$2 c=$3 out
	shift 3
	out=$("$work/tgload" -mode notify -base "$base" -key "$(newkey "$base")" "${merchant[@]}" -orders "$M" -c "$c" -d "$ND" -row "$@" 2>"$work/check") ||
		{ cat "$work/check" >&2; exit 1; }
	while IFS= read -r row; do echo "| $label | $c $row"; done <<<"$out"
	checks+=("$label, $c clients: $(cat "$work/check")")
}
if [[ -z ${ONLY_PG:-} ]]; then
	for c in $CLIENTS; do notify "$BASE" notification "$c"; done
	# Order creation after the notifications: it leaves its orders unpaid, a
	# backlog the poller then queries (burstbench.sh measures that on purpose).
	for c in $CLIENTS; do
		echo "| order creation | $c $("$work/tgload" -mode orders -base "$BASE" -key "$(newkey "$BASE")" -c "$c" -d "$D" -row)"
		echo "| order creation | $c $("$work/tgload" -mode unifiedorder -base "$BASE" "${merchant[@]}" -c "$c" -d "$D" -row)"
	done
fi

if [[ -n ${PG_URL:-} && -n ${REDIS_URL:-} ]]; then
	pg_cluster_start $((XPORT + 1))
	echo
	echo "PostgreSQL + Redis: two serve instances behind tgproxy (round robin), one emulator (tollgate sandbox) both use:"
	echo
	echo "| benchmark | clients | target | ok/s | p50 | p99 | errors |"
	echo "|---|---|---|---|---|---|---|"
	for c in $CLIENTS; do
		echo "| order creation, emulator alone | $c $("$work/tgload" -mode unifiedorder -base "$FRONT" -sim "$SIM" "${merchant[@]}" -c "$c" -d "$D" -row)"
		notify "$FRONT" "notification, PostgreSQL+Redis ×2" "$c"
	done
fi

echo
for ch in "${checks[@]}"; do echo "$ch"; done
if "$work/tollgate" audit --data "$work/data" >"$work/audit" 2>&1; then
	echo "tollgate audit (SQLite): every invariant holds"
else
	echo "tollgate audit (SQLite): VIOLATIONS"
	cat "$work/audit"
	exit 1
fi
if [[ -n $pgdb ]]; then pg_cluster_audit; fi
if grep -h '"level":"ERROR"' "$work"/serve*.log | head -5 | grep .; then
	echo "(serve logged errors: the first five above)"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
