#!/usr/bin/env python3
"""Runs `pals evaluate --report` on a small scenario and renders the report in headless Chromium,
in the light and the dark colour scheme (prefers-color-scheme), and looks at the screenshots.

The page must load offline and hold the charts and the table with its "chosen" column; its charts
must scale to the page (viewBox, no fixed size), carry 1-2-5 tick labels on the log axes, the
SLO targets on the latency CDFs and a legend note for policies whose curves coincide. In each
screenshot the content must span the window's width (charts use the page's width, not a fixed
720 px), the page must not be blank, and the dark one must be dark with light text.

    test_report_render.py PALS SHARED_DIR SCENARIO

PALS_KEEP_REPORT=FILE keeps the report as FILE and the screenshots as FILE.light.png and
FILE.dark.png (to look at them). Exit 77 (skipped) when chromium is not installed."""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

WINDOW = (1400, 1800)


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB/RGBA PNG (what Chromium
    writes), decoded with the standard library only."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, chunk = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), f"unexpected PNG format {header}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 0xFF
        elif kind == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def luminance(rgb):
    r, g, b = rgb
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def look_at(path, dark):
    """Checks one screenshot; returns a line describing it."""
    width, height, rows = read_png(path)
    background = rows[5][5]
    content_cols = [False] * width
    colours = set()
    bright = dark_px = 0
    for row in rows[::2]:
        for x in range(0, width, 2):
            px = row[x]
            colours.add(px)
            if max(abs(a - b) for a, b in zip(px, background)) > 24:
                content_cols[x] = True
            lum = luminance(px)
            bright += lum > 170
            dark_px += lum < 70
    used = [x for x in range(width) if content_cols[x]]
    assert used, f"{path}: blank screenshot"
    left, right = used[0], used[-1]
    span = (right - left) / width
    line = (f"{'dark' if dark else 'light'}: {width}x{height}, background {background}, content "
            f"x {left}-{right} ({span:.0%} of the width), {len(colours)} colours")
    assert len(colours) > 200, f"{path}: too few colours for charts ({len(colours)}): " + line
    assert span > 0.9, f"{path}: the content does not use the page's width: " + line
    if dark:
        assert luminance(background) < 60, f"{path}: the dark scheme is not dark: " + line
        assert bright > 2000, f"{path}: no light text on the dark page: " + line
    else:
        assert luminance(background) > 200, f"{path}: the light scheme is not light: " + line
        assert dark_px > 2000, f"{path}: no dark text on the light page: " + line
    return line


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
        # Charts scale with the page; log axes labelled 1-2-5; SLO lines; coincidence named.
        charts = re.findall(r"<svg [^>]*class=\"pals-chart pals-fg\"[^>]*>", html)
        assert len(charts) == 5, f"expected 5 line charts, found {len(charts)}"
        for tag in charts:
            assert "viewBox=" in tag and 'width="100%"' in tag and "height=" not in tag, tag
        assert "prefers-color-scheme:dark" in html, "no dark theme"
        assert "<th>chosen</th>" in html, "the table lacks the chosen column"
        assert html.count(">SLO 1 s<") == 1 and html.count(">SLO 0.1 s<") == 1, "SLO targets missing"
        for label in (">0.02<", ">0.05<", ">0.2<", ">0.5<"):
            assert label in html, f"no 1-2-5 tick label {label} on the log axes"
        coincide = re.findall(r"<text [^>]*>([a-z-]+(?: = [a-z-]+)+)", html)
        assert coincide, "no legend names coinciding curves (default = batch-only ...)"
        print(f"coinciding curves named: {sorted(set(coincide))}")

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", f"--user-data-dir={os.path.join(tmp, 'profile')}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", "file://" + report],
                             capture_output=True, text=True, timeout=120).stdout
        svgs = len(re.findall(r"<svg", dom))
        rows = len(re.findall(r"<tr>", dom))
        print(f"rendered DOM: {svgs} svg charts, {rows} table rows")
        assert svgs >= 6, "expected the power, cap, batch, latency and frontier charts"
        assert rows >= 8, "expected a header and one row per policy"
        shots = {}
        for scheme, extra in (("light", []), ("dark", ["--force-dark-mode",
                                                        "--blink-settings=preferredColorScheme=0"])):
            png = os.path.join(tmp, f"shot.{scheme}.png")
            subprocess.run([chromium, *flags, *extra, f"--window-size={WINDOW[0]},{WINDOW[1]}",
                            f"--screenshot={png}", "file://" + report], capture_output=True, timeout=120)
            assert os.path.exists(png), f"no {scheme} screenshot"
            print(look_at(png, scheme == "dark"))
            shots[scheme] = png
        if os.environ.get("PALS_KEEP_REPORT"):
            keep = os.environ["PALS_KEEP_REPORT"]
            shutil.copy(report, keep)
            for scheme, png in shots.items():
                shutil.copy(png, f"{keep}.{scheme}.png")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
