#!/usr/bin/env python3
"""Writes each scenario's [expect] section from a measured `pals evaluate --json` run.

    build/release/pals evaluate --scenario scenarios/X.toml --json > X.json
    python3 tools/write_expect.py X.json [Y.json ...]

The bounds are the measured figures of `pals` with margins (docs/evaluate.md, "[expect]"), so
`make test` fails when a change makes `pals` worse than it was; they are regression bounds, not
the targets of docs/results.md. A target met by more than the margin is kept by the bound; a
target missed is reported there, not hidden here. The section replaces any [expect] the file has
and goes at its end; the rest of the file is left as it is.
"""
import json
import math
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBJECT = "pals"
EFFICIENCY_MARGIN = 0.97  # tokens/J and its ratios may fall 3 %
SLO_MARGIN = 0.005        # SLO attainment may fall half a point
DEFICIT_MARGIN = 0.01


def floor_to(value: float, digits: int) -> float:
    scale = 10 ** digits
    return math.floor(value * scale) / scale


def ceil_to(value: float, digits: int) -> float:
    scale = 10 ** digits
    return math.ceil(value * scale) / scale


def sig3_floor(value: float) -> float:
    """`value` rounded down to 3 significant digits."""
    if value <= 0:
        return 0.0
    digits = 2 - int(math.floor(math.log10(value)))
    return floor_to(value, digits)


def bound(lo=None, hi=None) -> str:
    parts = []
    if lo is not None:
        parts.append(f"min = {lo:g}")
    if hi is not None:
        parts.append(f"max = {hi:g}")
    return "{ " + ", ".join(parts) + " }"


def budget_binds(scenario: dict) -> bool:
    budget = scenario.get("budget", {})
    return ("steps" in budget or "step_fractions" in budget or "watts" in budget
            or budget.get("fraction_of_tdp", 1.0) < 1.0)


def expect_section(run: dict, scenario: dict) -> str:
    policies = run["policies"]
    me = policies[SUBJECT]
    lines = ["[expect]",
             "# Regression bounds on pals, from a measured run (tools/write_expect.py; "
             "docs/evaluate.md)."]
    lines.append(f"tokens_per_joule = {bound(lo=sig3_floor(EFFICIENCY_MARGIN * me['tokens_per_joule']))}")
    lines.append(f"slo_attainment = {bound(lo=floor_to(max(0.0, me['slo_attainment'] - SLO_MARGIN), 3))}")
    lines.append(f"qos_violations = {bound(hi=math.ceil(1.25 * me['qos_violations'] + 5))}")
    lines.append(f"served_deficit = {bound(hi=ceil_to(me['served_deficit'] + DEFICIT_MARGIN, 3))}")
    lines.append(f"actuations_per_min = {bound(hi=math.ceil(1.2 * me['actuations_per_min'] + 2))}")
    if budget_binds(scenario):
        # The budget targets themselves: no excess beyond 0.5 % of budget x time, and under a
        # new budget within two periods.
        lines.append(f"budget_excess_share = {bound(hi=0.005)}")
        lines.append(f"settle_time_s = {bound(hi=2 * scenario.get('run', {}).get('period_s', 1.0))}")
    for baseline in ("default", "clock-only"):
        if baseline in policies and policies[baseline]["tokens_per_joule"] > 0:
            r = me["tokens_per_joule"] / policies[baseline]["tokens_per_joule"]
            lines += ["", f"[expect.ratio.{baseline}]",
                      f"tokens_per_joule = {bound(lo=floor_to(EFFICIENCY_MARGIN * r, 3))}"]
    cap = policies.get("cap-only")
    if cap and budget_binds(scenario) and cap["qos_violations"] > 0:
        r = me["qos_violations"] / cap["qos_violations"]
        lines += ["", "[expect.ratio.cap-only]",
                  f"qos_violations = {bound(hi=ceil_to(max(1.25 * r, r + 0.05), 2))}"]
    return "\n".join(lines) + "\n"


def strip_expect(text: str) -> str:
    """The file without its [expect] and [expect.*] tables."""
    out = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            skipping = header.group(1).strip().split(".")[0] == "expect"
        if not skipping:
            out.append(line)
    return "".join(out).rstrip() + "\n"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        for run in data if isinstance(data, list) else [data]:
            file = ROOT / "scenarios" / f"{run['scenario']}.toml"
            text = file.read_text(encoding="utf-8")
            scenario = tomllib.loads(text)
            if SUBJECT not in run["policies"]:
                print(f"{path}: {run['scenario']}: no {SUBJECT} run", file=sys.stderr)
                return 2
            file.write_text(strip_expect(text) + "\n" + expect_section(run, scenario),
                            encoding="utf-8")
            print(f"{file.relative_to(ROOT)}: [expect] written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
