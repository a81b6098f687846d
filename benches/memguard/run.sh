#!/bin/sh
# memguard's Enclave.Open cycle beside lockedmem's shielded borrows, in one
# run: each of $REPS repetitions (31) runs the Go program once
# (memguard-bench -once: Open + read 32 bytes + Destroy, and NewBuffer(32) +
# read + Destroy, $MEMGUARD_N calls each after a warm-up) and the Rust bench
# shield_once once (the kept-key and derived-key shielded borrows and the
# sealed borrow), the two in alternating order; the ratios are medians of
# the per-repetition ratios. The ns are this run's medians, for scale only.
#
#   ./setup.sh    # once (MIRROR=... to take the sources from bare git dirs)
#   ./run.sh      # from anywhere; needs go (Debian: golang-go), cargo, jq
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reps=${REPS:-31}
n=${MEMGUARD_N:-1000}

[ -d "$here/third_party/memguard" ] || { echo "run $here/setup.sh first" >&2; exit 1; }
(cd "$here" && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o memguard-bench .)
go_bin=$here/memguard-bench
rust_bin=$(cd "$root" && cargo bench --features shield --bench shield_once --no-run \
    --message-format=json 2>/dev/null |
    jq -r 'select(.target.name == "shield_once" and .executable != null) | .executable')
[ -x "$rust_bin" ] || { echo "no shield_once executable" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
r=0
while [ "$r" -lt "$reps" ]; do
    if [ $((r % 2)) -eq 0 ]; then
        g=$("$go_bin" -once -n "$n")
        s=$(LOCKEDMEM_BENCH_REP=$r "$rust_bin" 2>/dev/null)
    else
        s=$(LOCKEDMEM_BENCH_REP=$r "$rust_bin" 2>/dev/null)
        g=$("$go_bin" -once -n "$n")
    fi
    echo "$g $s" >>"$out" # open buffer kept derived sealed
    r=$((r + 1))
done
where=$(LOCKEDMEM_BENCH_REP=0 "$rust_bin" 2>&1 >/dev/null)

# median of column $1 of standard input
med() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk "{ print $1 }" "$out" | med; }

echo "memguard $(grep -o 'v0[.0-9]*' "$here/go.mod" | head -1), $reps repetitions, $n calls of each Go cycle; ${where#shield_once: }"
echo
echo "| operation | median ns (this run, for scale) |"
echo "| --- | ---: |"
printf '| memguard Enclave.Open + read 32 bytes + Destroy | %.0f |\n' "$(col '$1')"
printf '| memguard NewBuffer(32) + read + Destroy | %.0f |\n' "$(col '$2')"
printf '| lockedmem shielded borrow, read 32 bytes, drop; key kept | %.0f |\n' "$(col '$3')"
printf '| lockedmem shielded borrow, read, drop; key derived for each use | %.0f |\n' "$(col '$4')"
printf '| lockedmem sealed borrow, read 32 bytes, drop | %.0f |\n' "$(col '$5')"
echo
echo "| ratio | median of per-repetition ratios |"
echo "| --- | ---: |"
printf '| memguard Open cycle / shielded borrow, key kept | %.1f |\n' "$(col '$1 / $3')"
printf '| memguard Open cycle / shielded borrow, key derived | %.2f |\n' "$(col '$1 / $4')"
printf '| memguard Open cycle / sealed borrow | %.2f |\n' "$(col '$1 / $5')"
printf '| memguard NewBuffer cycle / sealed borrow | %.2f |\n' "$(col '$2 / $5')"
printf '| memguard Open cycle / memguard NewBuffer cycle | %.2f |\n' "$(col '$1 / $2')"
printf '| shielded borrow, key kept / sealed borrow | %.3f |\n' "$(col '$3 / $5')"
