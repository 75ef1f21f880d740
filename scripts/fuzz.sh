#!/usr/bin/env bash
# fuzz.sh [SECONDS] — the long form of tollgate's fuzz tests.
#
# Runs every Fuzz target of every package in the module (found with
# `go test -list '^Fuzz'`) for SECONDS each (default 60), one worker at a
# time (-parallel 1), and prints a table of target, seconds, executions,
# new corpus entries and result. A failing input is written by `go test`
# to the package's testdata/fuzz/<Target>/ and its log is printed; make it
# a named regression test. Exits 1 if any target failed.
#
# New corpus entries and failing inputs are minimized for FUZZMINIMIZETIME
# (default 0: not at all). go test's default of 60 s per input eats a short
# run's whole budget: 36 executions in 20 s instead of ~4,700 for
# FuzzHandleV2Notification. Set FUZZMINIMIZETIME=30s to shrink a crasher.
#
# Plain `go test ./...` runs only the seed corpora (the short form).
set -uo pipefail

secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.." || exit 2

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
n=0
fmt='%-42s %6s %12s %8s  %s\n'
printf "$fmt" TARGET SECONDS EXECS NEW RESULT
while read -r pkg dir; do
	# Only packages with a fuzz function are compiled for -list.
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		n=$((n + 1))
		log="$logs/$n.log"
		start=$(date +%s)
		if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "${secs}s" -parallel 1 \
			-fuzzminimizetime "${FUZZMINIMIZETIME:-0}" -timeout "$((secs + 600))s" >"$log" 2>&1; then
			result=ok
		else
			result=FAIL
			failed=$((failed + 1))
		fi
		took=$(($(date +%s) - start))
		last=$(grep -E '^fuzz: elapsed' "$log" | tail -1)
		execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
		new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
		printf "$fmt" "${pkg#tollgate/}.$target" "$took" "${execs:--}" "${new:--}" "$result"
		if [ "$result" = FAIL ]; then
			sed 's/^/    | /' "$log" | grep -v '^    | fuzz: elapsed' | tail -40
		fi
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)

echo "$n targets, $failed failed, ${secs}s each"
[ "$failed" -eq 0 ]
