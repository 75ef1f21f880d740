#!/usr/bin/env bash
# mutants.sh [NAME...] — prove that the tests catch each planted bug.
#
# Every deliberate bug (internal/failpoint's Mutant names, compiled in only
# with the tollgate_mutants build tag) has, below, the package(s) and the
# tests that must catch it. For each mutant and package this runs
#
#   1. the tests as shipped (no tag): they must pass;
#   2. the tests built with the tag, no mutant switched on: they must pass
#      (the switch itself changes nothing);
#   3. the tests built with the tag and TOLLGATE_MUTANTS=NAME: they must
#      FAIL, with a test failure (a build failure does not count).
#
# and prints mutant, package, result and the first failure line. Exits 1 if
# a mutant survived or a baseline failed. With NAMEs, only those mutants.
#
# The store tests run on PostgreSQL too: export TOLLGATE_REQUIRE_SERVICES=1
# and TOLLGATE_TEST_POSTGRES_URL, or a skipped test would let a mutant
# survive (it is then reported as such). split_credit needs a crash inside
# the credit, which only the reliability harness makes: it is not here
# (docs/RELIABILITY.md, "Mutation check").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

stores="./store/sqlite ./store/postgres"
# name|packages|-run pattern
table="
skip_amount|./payment|^TestForgedNotificationsChangeNothing\$
skip_signature|./payment|^TestForgedNotificationsChangeNothing\$
held_available|$stores|^TestConformance\$/^HoldErrors\$
refund_held|$stores|^TestConformance\$/^Refund\$
grant_over_cap|$stores|^TestConformance\$/^GrantConfirm\$
late_grant_expiry|$stores|^TestBoundaries\$/^GrantBeforePayment\$
late_hold_expiry|$stores|^TestBoundaries\$/^HoldLotFunded\$
revoke_forgives|$stores|^TestBoundaries\$/^GrantAfterFailure\$
late_token_expiry|./payment|^TestAccessTokenBoundaries\$
skip_close_revoke|./payment|^TestPayErrorRevokes\$
refund_unpaid|./payment|^TestRefundOnlyOfPaidOrders\$
drop_refund_event|$stores|^TestWebhookConformance\$/^EmitInMoneyTx\$
drop_batch_item|$stores|^TestConformance\$/^CreditPaymentBatched\$
"

tag=tollgate_mutants
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
fmt='%-18s %-16s %-9s %s\n'
printf "$fmt" MUTANT PACKAGE RESULT "FIRST FAILURE (or why)"
bad=0
n=0
declare -A baseline

# passes PKG RUN [TAGS] runs the tests with no mutant on; they must pass.
passes() {
	local key="$1|$2|$3"
	if [ -n "${baseline[$key]:-}" ]; then
		[ "${baseline[$key]}" = ok ]
		return
	fi
	local log="$logs/base$((++n)).log"
	if TOLLGATE_MUTANTS= go test -count=1 ${3:+-tags "$3"} -run "$2" "$1" >"$log" 2>&1; then
		baseline[$key]=ok
		return 0
	fi
	baseline[$key]=FAIL
	echo "baseline failed: go test ${3:+-tags $3 }-run '$2' $1" >&2
	sed 's/^/    | /' "$log" | tail -20 >&2
	return 1
}

while IFS='|' read -r name pkgs run; do
	[ -z "$name" ] && continue
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
		continue
	fi
	for pkg in $pkgs; do
		if ! passes "$pkg" "$run" "" || ! passes "$pkg" "$run" "$tag"; then
			printf "$fmt" "$name" "${pkg#./}" BASELINE "the tests fail without the mutant"
			bad=$((bad + 1))
			continue
		fi
		log="$logs/$name.$((++n)).log"
		TOLLGATE_MUTANTS=$name go test -count=1 -tags "$tag" -run "$run" "$pkg" >"$log" 2>&1
		rc=$?
		first=$(grep -m1 -E '^\s+[A-Za-z0-9_]+\.go:[0-9]+: ' "$log" | sed -E 's/^\s+//' | cut -c1-160)
		if [ $rc -ne 0 ] && grep -q -- '--- FAIL' "$log"; then
			printf "$fmt" "$name" "${pkg#./}" caught "$first"
		elif [ $rc -ne 0 ]; then
			printf "$fmt" "$name" "${pkg#./}" ERROR "no test failed (build or setup failure)"
			sed 's/^/    | /' "$log" | tail -20
			bad=$((bad + 1))
		else
			printf "$fmt" "$name" "${pkg#./}" SURVIVED "go test -tags $tag -run '$run' $pkg passed (skipped?)"
			bad=$((bad + 1))
		fi
	done
done <<<"$table"
[ "$bad" -eq 0 ]
