#!/usr/bin/env python3
"""Turns `pals evaluate --json` output into the Markdown tables of docs/results.md.

    build/release/pals evaluate --scenario scenarios/*.toml --json > results.json
    python3 tools/results_table.py results.json
"""
import json
import sys

ORDER = ["default", "cap-only", "batch-only", "clock-only", "static-oracle", "window-oracle", "pals"]


def ratio(value) -> str:
    """A ratio to a reference policy; null (not in the run, or a zero reference) is n/a."""
    return "n/a" if value is None else format(value, ".2f")


def main() -> int:
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    for sc in data:
        print(f"### {sc['scenario']}\n")
        print("| policy | tok/J | vs default | SLO % | QoS violations | vs cap-only | goodput tok/s | deficit % | excess J | peak W | settle s | chosen |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        policies = sc["policies"]
        for name in sorted(policies, key=lambda n: ORDER.index(n) if n in ORDER else 99):
            m = policies[name]
            print(f"| {name} | {m['tokens_per_joule']:.3f} | {ratio(m['efficiency_vs_default'])} | "
                  f"{100 * m['slo_attainment']:.1f} | {m['qos_violations']} | {ratio(m['qos_violations_vs_cap_only'])} | "
                  f"{m['goodput_tok_s']:.0f} | {100 * m['served_deficit']:.1f} | {m['budget_excess_j']:.0f} | "
                  f"{m['budget_peak_excess_w']:.0f} | {m['settle_time_s']:.0f} | {m['chosen']} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
