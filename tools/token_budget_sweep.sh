#!/usr/bin/env bash
# What a per-step token budget (vLLM's --max-num-batched-tokens, the knob issue 13 item 3 asks
# about) buys under a binding budget: each scenario is run with 2048, 4096, 8192 (the default)
# and 16384 tokens per step, for cap-only and clock-only, and the QoS violations are printed
# split into TTFT and TPOT misses.
#
#   tools/token_budget_sweep.sh [scenario.toml ...]   (default: the two binding-budget cases)
#
# The variants are written to a temporary folder (the scenario files are not touched).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pals="${PALS:-$root/build/release/pals}"
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=("$root/scenarios/llama70b-conv-medium-budget50.toml"
               "$root/scenarios/qwen3moe-conv-busy-budget60.toml")
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '%-34s %7s %-10s %7s %6s %5s %5s\n' scenario tokens policy tok/J viol ttft tpot
for scenario in "${scenarios[@]}"; do
    name="$(basename "$scenario" .toml)"
    for tokens in 2048 4096 8192 16384; do
        variant="$tmp/$name-$tokens.toml"
        # The scenario's [expect] names its own file's figures: drop it from the variant.
        sed -e "/^\[node\]/a max_num_batched_tokens = $tokens" -e '/^\[expect/,$d' \
            "$scenario" > "$variant"
        (cd "$root" && "$pals" evaluate --scenario "$variant" --policies cap-only,clock-only --json) |
            python3 -c '
import json, sys
run = json.load(sys.stdin)
for name, m in run["policies"].items():
    print(f"%-34s %7s %-10s %7.3f %6d %5d %5d" % (sys.argv[1], sys.argv[2], name,
          m["tokens_per_joule"], m["qos_violations"], m["ttft_violations"], m["tpot_violations"]))
' "$name" "$tokens"
    done
done
