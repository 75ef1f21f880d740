#!/usr/bin/env bash
# bench.sh runs the gateway load benchmark of docs/BENCHMARKS.md ("Gateway"):
# `tollgate mockllm` as the upstream, `tollgate serve` (billing on: SQLite;
# PostgreSQL + Redis when PG_URL and REDIS_URL are set) pointed at it with a
# providers file, and tgload against the mock directly, through tgproxy (a
# net/http reverse proxy that only forwards: the floor of a second HTTP hop)
# and through the gateway, side by side, at each client count,
# non-streaming and streaming; then /v1/responses, at the mock and through
# the gateway on SQLite.
#
#   cmd/tgload/bench.sh                      # SQLite only
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 cmd/tgload/bench.sh
#
# Settings: D (duration per run, default 10s), CLIENTS (default "1 16 64"),
# PORT (first of four loopback ports, default 18090), TOLLGATE_BIN (a
# tollgate binary to use instead of building ./cmd/tollgate). Everything it starts
# is stopped on exit, and the PostgreSQL database it creates is dropped.
set -euo pipefail
shopt -s inherit_errexit

D=${D:-10s}
CLIENTS=${CLIENTS:-"1 16 64"}
PORT=${PORT:-18090}
MOCK=127.0.0.1:$PORT
SQLITE=127.0.0.1:$((PORT + 1))
PG=127.0.0.1:$((PORT + 2))
FLOOR=127.0.0.1:$((PORT + 3))
ADMIN=bench-admin-token-0123456789abcdef

work=$(mktemp -d)
pids=()
pgdb=""
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n $pgdb ]]; then psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null || true; fi
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

cat >"$work/providers.json" <<EOF
{"providers":[{"name":"mock","kind":"openai","base_url":"http://$MOCK/v1","timeout":"30s"}],
 "models":{"mock":[{"provider":"mock","model":"gpt-4o-mini","max_output_tokens":64}]}}
EOF

# taken ADDR fails the run when something already listens on ADDR: it
# would answer in place of the process this script starts, which then
# exits unseen (a leftover serve once stood in for PostgreSQL this way).
taken() {
	if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
		echo "$1 is already in use: stop what listens there or set PORT" >&2
		exit 1
	fi
}

# waitfor ADDR PATH waits up to a minute (start-up runs migrations) for a 2xx.
waitfor() {
	for _ in $(seq 600); do curl -sf "http://$1$2" >/dev/null && return 0; sleep 0.1; done
	echo "no answer from $1; its log:" >&2
	cat "$work"/*.log >&2
	exit 1
}

# api METHOD URL [curl args...] prints the answer's body; any status but 2xx
# ends the run with the body and the server logs.
api() {
	local out code
	out=$(curl -sS -w '\n%{http_code}' -X "$@")
	code=${out##*$'\n'}
	if [[ $code != 2* ]]; then
		echo "$1 $2: $code ${out%$'\n'*}" >&2
		tail -n 20 "$work"/*.log >&2
		exit 1
	fi
	echo "${out%$'\n'*}"
}
jsonfield() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# serve NAME ADDR [flags...] starts tollgate serve and writes a funded API key
# to $work/NAME.key. (Not run in $(...): the pid must reach cleanup.)
serve() {
	local name=$1 addr=$2
	shift 2
	taken "$addr"
	"$work/tollgate" serve --addr "$addr" --data "$work/$name" --admin-token "$ADMIN" \
		--providers "$work/providers.json" --log-format json "$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	waitfor "$addr" /healthz
	local key order
	key=$(api POST "http://$addr/admin/accounts" -H "Authorization: Bearer $ADMIN" | jsonfield api_key)
	for i in 1 2; do # two 30M-credit packages: far more than the runs use
		order=$(api POST "http://$addr/v1/payments/orders" -H "Authorization: Bearer $key" -H "Idempotency-Key: bench-$i" \
			-H 'Content-Type: application/json' -d '{"package_id":"pro","device_fingerprint":"bench-fingerprint-0001"}' | jsonfield out_trade_no)
		api POST "http://$addr/sandbox/wxpay/sim/orders/$order/pay" >/dev/null
	done
	for _ in $(seq 50); do
		curl -sf -H "Authorization: Bearer $key" "http://$addr/v1/balance" | grep -q '"credits":60000000' && break
		sleep 0.1
	done
	echo "$key" >"$work/$name.key"
}

taken "$MOCK"
"$work/tollgate" mockllm --addr "$MOCK" >"$work/mock.log" 2>&1 &
pids+=($!)
waitfor "$MOCK" /v1/models

taken "$FLOOR"
"$work/tgproxy" -addr "$FLOOR" -upstream "http://$MOCK" >"$work/tgproxy.log" 2>&1 &
pids+=($!)
waitfor "$FLOOR" /v1/models

targets=("mock directly|http://$MOCK/v1/chat/completions|gpt-4o-mini|")
targets+=("net/http proxy (floor)|http://$FLOOR/v1/chat/completions|gpt-4o-mini|")
serve sqlite "$SQLITE"
targets+=("gateway, SQLite|http://$SQLITE/v1/chat/completions|mock|$(cat "$work/sqlite.key")")
# The Responses API, the same prompt: the mock's own, and through the
# gateway (passed through to the mock's /v1/responses).
targets+=("mock directly, /v1/responses|http://$MOCK/v1/responses|gpt-4o-mini|")
targets+=("gateway, SQLite, /v1/responses|http://$SQLITE/v1/responses|mock|$(cat "$work/sqlite.key")")
if [[ -n ${PG_URL:-} && -n ${REDIS_URL:-} ]]; then
	pgdb=tollgate_bench_$RANDOM$RANDOM
	psql "$PG_URL" -qc "CREATE DATABASE $pgdb" >/dev/null
	dburl=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_URL" "$pgdb")
	serve pg "$PG" --database-url "$dburl" --redis-url "$REDIS_URL"
	targets+=("gateway, PostgreSQL+Redis|http://$PG/v1/chat/completions|mock|$(cat "$work/pg.key")")
fi

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "duration $D per run, max_tokens 16, closed loop"
echo
echo "| mode | clients | target | ok/s | p50 | p90 | p99 | TTFT p50 | TTFT p99 | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for stream in "" -stream; do
	for c in $CLIENTS; do
		for t in "${targets[@]}"; do
			IFS='|' read -r name url model key <<<"$t"
			row=$("$work/tgload" -url "$url" -key "$key" -model "$model" -c "$c" -d "$D" -row $stream)
			mode=json
			[[ -n $stream ]] && mode=stream
			echo "| $mode | $c | $name $row"
		done
	done
done
