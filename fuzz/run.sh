#!/usr/bin/env bash
# Runs the libFuzzer targets built in FUZZ_BUILD_DIR (make fuzz builds them; docs/fuzzing.md).
#
#   fuzz/run.sh [TARGET...]            every target of fuzz/targets.txt when none is given
#
# Environment:
#   FUZZ_SECONDS=30         fuzzing time per target
#   FUZZ_BUILD_DIR=build/fuzz
#   FUZZ_FINDINGS=fuzz/findings   where crash/leak/timeout/oom inputs are copied (git-ignored)
#   FUZZ_REGRESS=1          also seed with fuzz/regress/<target>/ (inputs of known defects)
#   FUZZ_TOLERATE_ENV=0     1: a fuzzer that stops without a finding (no artifact: it could not
#                           start, was killed from outside) is a warning, not a failure, unless
#                           every target does so (CI sets 1)
#
# Each target fuzzes a temporary copy of its seed corpus (the repository stays clean) with
# -rss_limit_mb=2048 -timeout=10 and its -max_len from fuzz/targets.txt; ASan reports leaks,
# UBSan aborts on the first finding. A crash or leak is a finding. A timeout or out-of-memory
# input is run again alone: a finding if it repeats, a warning (a loaded machine) if not.
# Exit status: 0 no findings, 1 findings (or errors), 2 usage.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"
build="${FUZZ_BUILD_DIR:-build/fuzz}"
findings="${FUZZ_FINDINGS:-fuzz/findings}"
regress="${FUZZ_REGRESS:-1}"
tolerate_env="${FUZZ_TOLERATE_ENV:-0}"
cd "$root" || exit 2
case "$build" in /*) ;; *) build="$root/$build" ;; esac
case "$findings" in /*) ;; *) findings="$root/$findings" ;; esac

declare -A max_len
all=()
while read -r name len _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    max_len[$name]=$len
    all+=("$name")
done < fuzz/targets.txt
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [ -z "${max_len[$t]:-}" ]; then
        echo "fuzz: unknown target '$t' (targets: ${all[*]})" >&2
        exit 2
    fi
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
work_root="$(mktemp -d "${TMPDIR:-/tmp}/pals-fuzz.XXXXXX")"
trap 'rm -rf "$work_root"' EXIT

summary=()
n_findings=0
n_env=0
n_errors=0
total_execs=0
for t in "${targets[@]}"; do
    bin="$build/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (run make fuzz-build)" >&2
        summary+=("$(printf '%-18s %12s %10s  %s' "$t" - - "ERROR: not built")")
        n_errors=$((n_errors + 1))
        continue
    fi
    work="$work_root/$t"
    mkdir -p "$work/corpus" "$work/artifacts"
    [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null
    if [ "$regress" = 1 ] && [ -d "fuzz/regress/$t" ]; then
        cp fuzz/regress/"$t"/* "$work/corpus/" 2>/dev/null
    fi
    seeds=$(find "$work/corpus" -type f | wc -l)
    attempt=0
    while :; do
        attempt=$((attempt + 1))
        log="$work/log.$attempt"
        echo "fuzz: $t: ${seconds}s, $seeds seeds, -max_len=${max_len[$t]}"
        start=$(date +%s)
        "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="${max_len[$t]}" \
            -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$log" 2>&1
        rc=$?
        elapsed=$(( $(date +%s) - start ))
        artifacts=$(find "$work/artifacts" -type f | wc -l)
        # No finding, but the fuzzer did not end normally: retry once (a loaded or odd machine).
        if [ "$rc" -ne 0 ] && [ "$artifacts" -eq 0 ] && [ "$attempt" -lt 2 ]; then
            echo "fuzz: $t: exit $rc without a finding; retrying once" >&2
            tail -5 "$log" >&2
            continue
        fi
        break
    done
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    total_execs=$((total_execs + execs))
    rate=$(( elapsed > 0 ? execs / elapsed : execs ))
    verdict="ok"
    if [ "$artifacts" -gt 0 ]; then
        mkdir -p "$findings/$t"
        real=0
        flaky=0
        for a in "$work"/artifacts/*; do
            base="$(basename "$a")"
            cp "$a" "$findings/$t/$base"
            case "$base" in
                timeout-*|oom-*|slow-unit-*)
                    if "$bin" -rss_limit_mb=2048 -timeout=10 "$a" >"$work/rerun.log" 2>&1; then
                        flaky=$((flaky + 1))
                        echo "fuzz: $t: $base did not repeat when run alone (machine load?): warning" >&2
                        continue
                    fi ;;
            esac
            real=$((real + 1))
            echo "fuzz: $t: FINDING $findings/$t/$base" >&2
        done
        # The report: the sanitizer's or libFuzzer's summary and the top of the stack.
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:| *#[0-4] )|ALARM|out-of-memory|Live Heap' \
            "$log" | head -20 >&2
        cp "$log" "$findings/$t/fuzz-$(date +%Y%m%d-%H%M%S).log"
        if [ "$real" -gt 0 ]; then
            verdict="FINDING ($real: $findings/$t/)"
            n_findings=$((n_findings + real))
        else
            verdict="ok ($flaky not repeated)"
        fi
    elif [ "$rc" -ne 0 ]; then
        verdict="ENV: exit $rc twice without a finding"
        n_env=$((n_env + 1))
        tail -20 "$log" >&2
    fi
    summary+=("$(printf '%-18s %12s %10s  %s' "$t" "$execs" "$rate" "$verdict")")
done

echo
printf '%-18s %12s %10s  %s\n' target executions "exec/s" result
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} targets, $total_execs executions, $n_findings findings, $n_env environment failures, ${seconds}s each"
# The plain closing line CI reads: targets without a finding, error or environment failure passed.
n_failed=0
for line in "${summary[@]}"; do
    case "$line" in *FINDING*|*ENV:*|*ERROR*) n_failed=$((n_failed + 1)) ;; esac
done
echo "fuzz: $((${#targets[@]} - n_failed)) passed, $n_failed failed"
if [ "$n_findings" -gt 0 ] || [ "$n_errors" -gt 0 ]; then
    exit 1
fi
if [ "$n_env" -gt 0 ]; then
    if [ "$tolerate_env" = 1 ] && [ "$n_env" -lt "${#targets[@]}" ]; then
        echo "fuzz: warning: $n_env targets could not run (FUZZ_TOLERATE_ENV=1)" >&2
        exit 0
    fi
    exit 1
fi
exit 0
