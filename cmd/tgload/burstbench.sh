#!/usr/bin/env bash
# burstbench.sh runs the burst and backlog benchmarks of docs/BENCHMARKS.md
# ("Payments", issue 21's targets): `tollgate serve` (SQLite, the WeChat Pay
# emulator in-process, known merchant keys as in paybench.sh) and tgload
# against it over loopback, each phase on an account of its own:
#
#   burst (tgload -mode burst): N orders created, then every one's signed v2
#     SUCCESS notification sent within W (open loop, evenly spread: WeChat
#     Pay's notifier sends a notification when a payment succeeds, from
#     several servers, whatever the merchant's earlier answers; at most
#     POOL in flight), each with WeChat Pay's 5 s deadline: one not
#     acknowledged in time counts as dropped and is sent again after
#     RETRY (WeChat Pay's first retry: 15 s). Reports the notification to
#     acknowledgment latency (from each one's scheduled moment, across
#     retries) and the dropped attempts; checks every order SUCCESS and the
#     balance grown by exactly N packages. Target: p99 ≤ 1 s, none dropped.
#   backlog (tgload -mode backlog): B unpaid orders created through the
#     API (the emulator holds each, the poller queries them), then M other
#     orders notified at C clients (closed loop, as paybench's notification
#     benchmark: first credited, then repeats). Reports p50/p99 (target
#     p99 ≤ 250 ms) and the poller's order queries at the emulator
#     (GET /sandbox/wxpay/sim/stats): per second during the notifications
#     and the busiest sliding minute since the emulator started, which must
#     not exceed QL (default 6000, payment.QueryBudget: tollgate's limiter
#     admits 5,900 a minute per merchant, cluster-wide).
#
# The burst runs first: the backlog's pending orders stay pending and would
# weigh on anything after them. `tollgate audit` checks the ledger at the
# end.
#
# With PG_URL and REDIS_URL set the same phases run again on PostgreSQL +
# Redis, paybench.sh's many-machine setup (benchlib.sh: two instances
# behind tgproxy, one `tollgate sandbox` both use): there the emulator's
# busiest minute is every instance's pollers together, the cluster-wide
# limit. (The sandbox runs without --query-limit-per-minute: a limit there
# would refuse the excess instead of showing it.)
#
#   cmd/tgload/burstbench.sh
#   N=500 B=2000 M=500 PHASES=backlog cmd/tgload/burstbench.sh
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 cmd/tgload/burstbench.sh
#
# Settings: PHASES (default "burst backlog"), N (default 10000), W (default
# 10s; 0s: all at once), POOL (default 512), RETRY (default 15s), BD (the
# longest the burst's notifications may take, default 3m), B (default
# 100000), M (default 1000), C (default 16), ND (the longest each
# notification phase may take, default 2m), QL (default 6000), PORT
# (default 18110), XPORT (first of four ports of the PostgreSQL setup,
# default 18120), TOLLGATE_BIN (a tollgate binary instead of building
# ./cmd/tollgate). Everything it starts is stopped on exit and its data
# directory removed.
set -euo pipefail
shopt -s inherit_errexit

PHASES=${PHASES:-"burst backlog"}
N=${N:-10000}
W=${W:-10s}
POOL=${POOL:-512}
RETRY=${RETRY:-15s}
BD=${BD:-3m}
B=${B:-100000}
M=${M:-1000}
C=${C:-16}
ND=${ND:-2m}
QL=${QL:-6000}
PORT=${PORT:-18110}
XPORT=${XPORT:-18120}
ADDR=127.0.0.1:$PORT
BASE=http://$ADDR
ADMIN=bench-admin-token-0123456789abcdef
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

taken "$ADDR"
"$work/tollgate" serve --addr "$ADDR" --data "$work/data" --admin-token "$ADMIN" --log-format json \
	--wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY" >"$work/serve.log" 2>&1 &
pids+=($!)
waitfor "$BASE/healthz"
merchant=(-mch-id "$MCH" -appid "$APPID" -api-key "$APIKEY")

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve on SQLite, emulator in-process; burst: $N orders notified within $W (pool $POOL, 5s deadline, retry after $RETRY); backlog: $B unpaid orders pending, $M notified at $C clients"
echo
echo "| phase | target | ok/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
checks=()
# phases BASE LABEL [tgload flags...] runs PHASES against serve at BASE.
phases() {
	local base=$1 label=$2 phase out
	shift 2
	for phase in $PHASES; do
		case $phase in
		burst) args=(-mode burst -orders "$N" -within "$W" -pool "$POOL" -retry-after "$RETRY" -c "$C" -d "$BD") ;;
		backlog) args=(-mode backlog -backlog "$B" -orders "$M" -query-limit "$QL" -c "$C" -d "$ND") ;;
		*)
			echo "unknown phase $phase (burst, backlog)" >&2
			exit 1
			;;
		esac
		out=$("$work/tgload" "${args[@]}" -base "$base" -key "$(newkey "$base")" "${merchant[@]}" -row "$@" 2>"$work/check") ||
			{ cat "$work/check" >&2; exit 1; }
		while IFS= read -r row; do echo "| $phase$label $row"; done <<<"$out"
		checks+=("$phase$label: $(cat "$work/check")")
	done
}
phases "$BASE" ""
if [[ -n ${PG_URL:-} && -n ${REDIS_URL:-} ]]; then
	pg_cluster_start "$XPORT"
	phases "$FRONT" ", PostgreSQL+Redis ×2" -sim "$SIM"
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
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
