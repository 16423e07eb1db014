#!/usr/bin/env python3
"""Checks deploy/pals.service with `systemd-analyze verify` (any diagnostic fails the test: it
exits 0 even on unknown keys and bad values) after pointing its /usr/local/bin/pals at the built
binary, and that the unit restores the GPU limits in ExecStopPost. Skipped (77) without
systemd-analyze.

`check_systemd_unit.py --unit deploy/pals.service --pals build/release/pals`
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True)
    ap.add_argument("--pals", required=True)
    args = ap.parse_args()
    with open(args.unit) as f:
        text = f.read()
    stop_post = [line for line in text.splitlines() if line.startswith("ExecStopPost=")]
    if not any("pals power restore" in line for line in stop_post):
        print(f"FAIL: {args.unit} has no ExecStopPost running `pals power restore`: {stop_post}")
        return 1
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("SKIP: systemd-analyze is not installed")
        return 77
    with tempfile.TemporaryDirectory() as folder:
        unit = os.path.join(folder, "pals.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/local/bin/pals", os.path.abspath(args.pals)))
        r = subprocess.run([tool, "verify", unit], capture_output=True, text=True, timeout=60)
    diagnostics = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or diagnostics:
        print(f"FAIL: systemd-analyze verify (exit {r.returncode}):\n{diagnostics}")
        return 1
    print("ok: systemd-analyze verify found nothing to report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
