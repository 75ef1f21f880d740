#!/usr/bin/env bash
# webhookbench.sh runs the webhook benchmark of docs/BENCHMARKS.md
# ("Webhooks"): `tollgate serve --webhook-allow-private` (SQLite, the WeChat
# Pay emulator in-process, known merchant keys as in paybench.sh) and
# `tgload -mode webhooks` against it over loopback, at each client count:
#
#   delay: M orders pre-created, then paid with one signed v2 SUCCESS
#     notification each (C clients, closed loop: the payment benchmark's
#     notification load); for each, the delay from the notification's
#     acknowledgment to its payment.succeeded arriving at tgload's receiver
#     (signature verified), p50/p99;
#   throughput: B orders paid while the receiver hangs (the dispatcher
#     holds a few attempts to it and leaves the rest due), then the
#     receiver answers: events delivered per second until drained.
#
#   cmd/tgload/webhookbench.sh
#
# Settings: CLIENTS (default "1 16 64"), M (default 1000), B (default 2000),
# WD (the longest a phase may take, default 2m), PORT (default 18094),
# TOLLGATE_BIN (a tollgate binary instead of building ./cmd/tollgate).
# Everything it starts is stopped on exit and its data directory removed.
set -euo pipefail
shopt -s inherit_errexit

CLIENTS=${CLIENTS:-"1 16 64"}
M=${M:-1000}
B=${B:-2000}
WD=${WD:-2m}
PORT=${PORT:-18094}
ADDR=127.0.0.1:$PORT
BASE=http://$ADDR
ADMIN=bench-admin-token-0123456789abcdef
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

if (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null; then
	echo "$ADDR is already in use: stop what listens there or set PORT" >&2
	exit 1
fi
"$work/tollgate" serve --addr "$ADDR" --data "$work/data" --admin-token "$ADMIN" --log-format json --webhook-allow-private \
	--wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/healthz" >/dev/null || { echo "serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve on SQLite, emulator in-process, receiver in tgload; $M payments and a backlog of $B per client count"
echo
echo "| clients | phase | ok/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
checks=()
for c in $CLIENTS; do
	# A fresh account per client count: a credit reads the account's
	# spendable lots, so an account that earlier phases gave thousands of
	# lots would make later phases slower for a reason that is not theirs.
	key=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$BASE/admin/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
	out=$("$work/tgload" -mode webhooks -base "$BASE" -key "$key" -admin "$ADMIN" -mch-id "$MCH" -appid "$APPID" -api-key "$APIKEY" \
		-orders "$M" -backlog "$B" -c "$c" -d "$WD" -row 2>"$work/check") || { cat "$work/check" >&2; exit 1; }
	while IFS= read -r row; do echo "| $c $row"; done <<<"$out"
	checks+=("$c clients: $(cat "$work/check")")
done
echo
for ch in "${checks[@]}"; do echo "$ch"; done
if grep -q '"level":"ERROR"' "$work/serve.log"; then
	echo "serve logged errors:"; grep '"level":"ERROR"' "$work/serve.log" | head -5
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
