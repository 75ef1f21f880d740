#!/usr/bin/env bash
# ledgerbench.sh measures the reports on a big ledger (issue 21: `tollgate
# audit`, the revenue report and `tollgate reconcile --date` each < 60 s and
# < 512 MiB RSS on 1,000,000 orders and 10,000,000 usage rows, on each
# store). For each store it seeds a fresh ledger with `tgload -mode
# seedledger` (valid rows: accounts, SUCCESS orders and their lots, usage
# records with settled holds, refunds of every 20th order, spread over 28
# days from 2026-11-01; then serve's usage roller rolls every closed day
# into usage_daily, as a running serve would have), then times with
# /usr/bin/time -v (each row gives the 1-minute load average before and
# after its step: the machine may be shared):
#
#   audit:      tollgate audit (the whole ledger)
#   audit-day:  tollgate audit --from DAY --to DAY
#   revenue:    GET /admin/reports/revenue?month=2026-11 from tollgate serve
#               (curl's time; RSS is serve's peak, VmHWM, after the request)
#   reconcile:  tollgate reconcile --date DAY against the day's bill, written
#               by the seeder in the emulator's format and served as API v2
#               downloadbill by `tgload -mode billserve`
#
#   cmd/tgload/ledgerbench.sh                          # 20,000 / 200,000: a check that it works
#   ORDERS=1000000 USAGE=10000000 cmd/tgload/ledgerbench.sh   # the target size
#
# Settings: ORDERS (default 20000), USAGE (default 200000), STORES (default
# "sqlite postgres"), PG_URL (a PostgreSQL URL whose user may create
# databases; default $TOLLGATE_TEST_POSTGRES_URL, else
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; a database
# tollgate_ledgerbench_$$ is created and dropped), DAY (default
# 2026-11-10), PORT (serve's loopback port, default 18096; the bill server
# uses PORT+1), TOLLGATE_BIN (a tollgate binary to use instead of building
# ./cmd/tollgate), KEEP=1 keeps the work directory (and the database). Needs psql for
# PostgreSQL. Everything it starts is stopped on exit.
set -euo pipefail
shopt -s inherit_errexit

ORDERS=${ORDERS:-20000}
USAGE=${USAGE:-200000}
STORES=${STORES:-"sqlite postgres"}
PG_URL=${PG_URL:-${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}}
DAY=${DAY:-2026-11-10}
MONTH=${DAY:0:7}
PORT=${PORT:-18096}
ADDR=127.0.0.1:$PORT
BILLADDR=127.0.0.1:$((PORT + 1))
ADMIN=bench-admin-token-0123456789abcdef
MCH=10000100
APPID=wxd930ea5d5a258f4f
APIKEY=0123456789abcdef0123456789abcdef
DB=tollgate_ledgerbench_$$

work=$(mktemp -d)
pids=()
pgmade=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n $pgmade && -z ${KEEP:-} ]]; then psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
	if [[ -n $pgmade && -n ${KEEP:-} ]]; then echo "kept database $DB" >&2; fi
	if [[ -z ${KEEP:-} ]]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

if [[ -n ${TOLLGATE_BIN:-} ]]; then
	cp "$TOLLGATE_BIN" "$work/tollgate"
else
	go build -o "$work/tollgate" ./cmd/tollgate
fi
go build -o "$work/tgload" ./cmd/tgload

# pgdb prints the URL of database $DB on PG_URL's server.
pgdb() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_URL" "$DB"; }

# timed NAME CMD...: runs CMD under /usr/bin/time -v and prints a table row
# (elapsed, max RSS); CMD's exit status 0 is required.
timed() {
	local name=$1; shift
	local load0
	load0=$(cut -d' ' -f1 /proc/loadavg)
	if ! /usr/bin/time -v -o "$work/time" "$@" >"$work/$name.out" 2>&1; then
		echo "$name failed:" >&2; cat "$work/$name.out" >&2; exit 1
	fi
	local el rss
	el=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
	rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$work/time")
	echo "| $store | $name | $el | $rss MiB | $load0 → $(cut -d' ' -f1 /proc/loadavg) | $(tail -1 "$work/$name.out") |"
}

waitfor() {
	for _ in $(seq 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "no answer from $1" >&2; cat "$work"/*.log >&2; exit 1
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(go version | cut -d' ' -f3-)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ledger: $ORDERS orders (lots), $USAGE usage records (and settled holds); day $DAY, month $MONTH"
echo
echo "| store | what | elapsed | max RSS | load before → after | last line |"
echo "|---|---|---|---|---|---|"
for store in $STORES; do
	case $store in
	sqlite)
		ledger=(--data "$work/sqlite")
		seed=(-data "$work/sqlite")
		;;
	postgres)
		psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
		pgmade=1
		url=$(pgdb)
		ledger=(--database-url "$url")
		seed=(-pg "$url")
		;;
	*) echo "unknown store $store" >&2; exit 1 ;;
	esac
	rm -rf "$work/bills"
	timed seed "$work/tgload" -mode seedledger "${seed[@]}" -orders "$ORDERS" -usage "$USAGE" -bill-day "$DAY" -bill-dir "$work/bills"
	timed audit "$work/tollgate" audit "${ledger[@]}"
	timed audit-day "$work/tollgate" audit "${ledger[@]}" --from "$DAY" --to "$DAY"

	"$work/tollgate" serve --addr "$ADDR" "${ledger[@]}" --admin-token "$ADMIN" --log-format json >"$work/serve.log" 2>&1 &
	serve=$!
	pids+=("$serve")
	waitfor "http://$ADDR/healthz"
	load0=$(cut -d' ' -f1 /proc/loadavg)
	t=$(curl -sf -o "$work/revenue.json" -w '%{time_total}' -H "Authorization: Bearer $ADMIN" "http://$ADDR/admin/reports/revenue?month=$MONTH")
	rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$serve/status")
	echo "| $store | revenue | ${t}s | $rss MiB (serve) | $load0 → $(cut -d' ' -f1 /proc/loadavg) | $(head -c 120 "$work/revenue.json") |"
	kill "$serve"; wait "$serve" 2>/dev/null || true

	"$work/tgload" -mode billserve -bill-dir "$work/bills" -addr "$BILLADDR" 2>"$work/billserve.log" &
	pids+=($!)
	sleep 0.5
	timed reconcile "$work/tollgate" reconcile "${ledger[@]}" --date "$DAY" --wxpay-url "http://$BILLADDR" \
		--wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY"
	kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
