#!/usr/bin/env bash
# paybench.sh runs the payment benchmarks of docs/BENCHMARKS.md ("Payments"):
# `tollgate serve` (SQLite, the WeChat Pay emulator in-process, started with
# known merchant keys so that tgload can sign v2 notifications itself) and
# tgload against it over loopback, each beside its baseline, at each client
# count:
#
#   order creation: POST /v1/payments/orders through serve (fresh
#     Idempotency-Key each) vs. the same signed v2 unifiedorder calls
#     straight to the emulator (/sandbox/wxpay/pay/unifiedorder);
#   notifications: M orders pre-created (not paid), then one signed v2
#     SUCCESS notification per order to /wxpay/notify (each must be credited
#     and acknowledged; tgload then checks every order is SUCCESS and the
#     balance grew by exactly M packages) vs. the same notifications posted
#     again (verified, acknowledged, nothing written). `tollgate audit`
#     checks the ledger's invariants at the end.
#
#   cmd/tgload/paybench.sh
#
# Settings: D (duration of each order-creation run, default 10s), CLIENTS
# (default "1 16 64"), M (orders notified per client count, default 1000;
# each notification phase runs until all M are posted, at most ND, default
# 2m), PORT (loopback port of serve,
# default 18093; bench.sh uses 18090-18092), TOLLGATE_BIN (a tollgate binary
# to use instead of building ./cmd/tollgate). Everything it starts is
# stopped on exit and its data directory removed.
set -euo pipefail
shopt -s inherit_errexit

D=${D:-10s}
CLIENTS=${CLIENTS:-"1 16 64"}
M=${M:-1000}
ND=${ND:-2m}
PORT=${PORT:-18093}
ADDR=127.0.0.1:$PORT
BASE=http://$ADDR
ADMIN=bench-admin-token-0123456789abcdef
# The emulator's merchant: serve passes these to it (wxpaysim.Server) and
# signs with them; tgload signs notifications and unifiedorder calls with
# the same.
MCH=1900000109
APPID=wxbenchapp00000001
APIKEY=benchv2apikey0123456789abcdefABC

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${TOLLGATE_BIN:-} ]]; then
	cp "$TOLLGATE_BIN" "$work/tollgate"
else
	go build -o "$work/tollgate" ./cmd/tollgate
fi
go build -o "$work/tgload" ./cmd/tgload

# taken fails the run when something already listens on ADDR (it would
# answer in place of the serve started here).
taken() {
	if (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null; then
		echo "$ADDR is already in use: stop what listens there or set ADDR" >&2
		exit 1
	fi
}

waitfor() {
	for _ in $(seq 600); do curl -sf "$BASE$1" >/dev/null && return 0; sleep 0.1; done
	echo "no answer from $BASE; its log:" >&2
	cat "$work"/*.log >&2
	exit 1
}

taken
"$work/tollgate" serve --addr "$ADDR" --data "$work/data" --admin-token "$ADMIN" --log-format json \
	--wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY" >"$work/serve.log" 2>&1 &
pids+=($!)
waitfor /healthz
key=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$BASE/admin/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
merchant=(-mch-id "$MCH" -appid "$APPID" -api-key "$APIKEY")

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve on SQLite, emulator in-process; order creation $D per run; notifications: $M orders per client count, closed loop"
echo
echo "| benchmark | clients | target | ok/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|---|"
for c in $CLIENTS; do
	echo "| order creation | $c $("$work/tgload" -mode orders -base "$BASE" -key "$key" -c "$c" -d "$D" -row)"
	echo "| order creation | $c $("$work/tgload" -mode unifiedorder -base "$BASE" "${merchant[@]}" -c "$c" -d "$D" -row)"
done
checks=()
for c in $CLIENTS; do
	out=$("$work/tgload" -mode notify -base "$BASE" -key "$key" "${merchant[@]}" -orders "$M" -c "$c" -d "$ND" -row 2>"$work/check") || { cat "$work/check" >&2; exit 1; }
	while IFS= read -r row; do echo "| notification | $c $row"; done <<<"$out"
	checks+=("$c clients: $(cat "$work/check")")
done
echo
for ch in "${checks[@]}"; do echo "$ch"; done
if "$work/tollgate" audit --data "$work/data" >"$work/audit" 2>&1; then
	echo "tollgate audit: every invariant holds"
else
	echo "tollgate audit: VIOLATIONS"
	cat "$work/audit"
	exit 1
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
