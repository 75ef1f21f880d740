# benchlib.sh is sourced by paybench.sh and burstbench.sh: the helpers they
# share and the many-machine setup they both run on, PostgreSQL + Redis:
# two `tollgate serve` instances sharing a fresh database and Redis key
# prefix, behind a front door (cmd/tgproxy, round robin), with ONE WeChat
# Pay emulator (`tollgate sandbox`) both use through --wxpay-url. Every
# notify URL names the front door, so a notification reaches either
# instance and either instance's poller may query any order.
#
# The sourcing script sets work (its temporary directory, holding the
# tollgate and tgproxy binaries), pids (an array), ADMIN, MCH, APPID and
# APIKEY, and calls pg_cluster_cleanup from its exit trap.

pgdb=""
prefix=""

# taken ADDR fails the run when something already listens on ADDR (it
# would answer in place of the process started here).
taken() {
	if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
		echo "$1 is already in use: stop what listens there or set PORT / XPORT" >&2
		exit 1
	fi
}

# waitfor URL waits up to a minute (start-up runs migrations) for a 2xx.
waitfor() {
	for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
	echo "no answer from $1; the logs:" >&2
	tail -n 30 "$work"/*.log >&2
	exit 1
}

# newkey BASE prints the API key of a fresh account.
newkey() {
	curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$1/admin/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])'
}

# pg_cluster_start XPORT starts the PostgreSQL + Redis setup on ports
# XPORT (emulator), XPORT+1 (front door), XPORT+2 and XPORT+3 (the two
# instances), with PG_URL and REDIS_URL, and sets SIM (the emulator's base
# URL), FRONT (the front door's) and dburl (the database's).
pg_cluster_start() {
	local sim=127.0.0.1:$1 front=127.0.0.1:$(($1 + 1)) a
	pgdb=tollgate_bench_$RANDOM$RANDOM
	prefix="tgbench$RANDOM$RANDOM:"
	psql "$PG_URL" -qc "CREATE DATABASE $pgdb" >/dev/null
	dburl=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_URL" "$pgdb")
	taken "$sim"
	"$work/tollgate" sandbox --addr "$sim" --mch-id "$MCH" --appid "$APPID" --api-key "$APIKEY" >"$work/sandbox.log" 2>&1 &
	pids+=($!)
	waitfor "http://$sim/sim/config"
	# One instance at a time: the first applies the migrations.
	for a in 127.0.0.1:$(($1 + 2)) 127.0.0.1:$(($1 + 3)); do
		taken "$a"
		"$work/tollgate" serve --addr "$a" --data "$work/data-${a##*:}" --admin-token "$ADMIN" --log-format json \
			--database-url "$dburl" --redis-url "$REDIS_URL" --redis-prefix "$prefix" --public-url "http://$front" \
			--wxpay-url "http://$sim" --wxpay-api-version v2 --wxpay-mch-id "$MCH" --wxpay-appid "$APPID" --wxpay-api-key "$APIKEY" \
			>"$work/serve-${a##*:}.log" 2>&1 &
		pids+=($!)
		waitfor "http://$a/healthz"
	done
	taken "$front"
	"$work/tgproxy" -addr "$front" -upstream "http://127.0.0.1:$(($1 + 2)),http://127.0.0.1:$(($1 + 3))" >"$work/front.log" 2>&1 &
	pids+=($!)
	waitfor "http://$front/healthz"
	SIM=http://$sim
	FRONT=http://$front
}

# pg_cluster_audit runs `tollgate audit` on the setup's database.
pg_cluster_audit() {
	if "$work/tollgate" audit --database-url "$dburl" >"$work/audit" 2>&1; then
		echo "tollgate audit (PostgreSQL): every invariant holds"
	else
		echo "tollgate audit (PostgreSQL): VIOLATIONS"
		cat "$work/audit"
		exit 1
	fi
}

# pg_cluster_cleanup drops the setup's database and deletes its Redis keys
# (after the processes are stopped).
pg_cluster_cleanup() {
	if [[ -n $pgdb ]]; then psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null || true; fi
	if [[ -n $prefix ]] && command -v redis-cli >/dev/null; then
		redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
	fi
}
