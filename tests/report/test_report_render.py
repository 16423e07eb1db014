#!/usr/bin/env python3
"""Runs `pals evaluate --report` on a small scenario and renders the report in headless Chromium:
the page must load offline, hold the charts and the table, and produce a non-blank screenshot."""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main() -> int:
    pals, shared, scenario = sys.argv[1:4]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("SKIP: chromium is not installed (apt-get install chromium)")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.html")
        env = dict(os.environ, PALS_SHARED_DIR=shared)
        run = subprocess.run([pals, "evaluate", "--scenario", scenario, "--report", report],
                             env=env, capture_output=True, text=True, timeout=500)
        print(run.stdout)
        if run.returncode != 0:
            print(run.stderr)
            return 1
        html = open(report, encoding="utf-8").read()
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", ""), "report must be self-contained"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={os.path.join(tmp, 'profile')}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", "file://" + report],
                             capture_output=True, text=True, timeout=120).stdout
        svgs = len(re.findall(r"<svg", dom))
        rows = len(re.findall(r"<tr>", dom))
        print(f"rendered DOM: {svgs} svg charts, {rows} table rows")
        assert svgs >= 5, "expected the power, cap, batch and latency charts"
        assert rows >= 8, "expected a header and one row per policy"
        png = os.path.join(tmp, "shot.png")
        subprocess.run([chromium, *flags, "--window-size=1400,2400", f"--screenshot={png}", "file://" + report],
                       capture_output=True, timeout=120)
        size = os.path.getsize(png) if os.path.exists(png) else 0
        print(f"screenshot: {size} bytes")
        assert size > 20000, "the screenshot looks blank"
        if os.environ.get("PALS_KEEP_REPORT"):
            shutil.copy(report, os.environ["PALS_KEEP_REPORT"])
            shutil.copy(png, os.environ["PALS_KEEP_REPORT"] + ".png")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
