#!/usr/bin/env python3
"""Runs every shell block of docs/*.md that is marked runnable, and fails if one fails.

A block is runnable when the line before its opening fence is `<!-- runnable -->`:

    <!-- runnable -->
    ```sh
    pals models
    ```

Each block runs in bash with `set -euo pipefail`, from the repository root, with the build
folder first on PATH (so `pals` is the binary under test), PALS_SHARED_DIR set, the build folder
in $BUILD_DIR (for `cmake --install "$BUILD_DIR"`), and a scratch folder in $TMPDIR. ctest runs
it (`docs.runnable_blocks`).
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(sh|bash|shell)\s*$")


def blocks(path: pathlib.Path):
    """(line number, text) of each runnable block of `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARKER and i + 1 < len(lines) and FENCE.match(lines[i + 1].strip()):
            start = i + 2
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            yield start + 1, "\n".join(lines[start:end])
            i = end
        i += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--shared-dir", required=True)
    args = parser.parse_args()
    source = pathlib.Path(args.source_dir)
    found = 0
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        env["PATH"] = args.build_dir + os.pathsep + env.get("PATH", "")
        env["PALS_SHARED_DIR"] = args.shared_dir
        env["PALS_CACHE_DIR"] = os.path.join(args.build_dir, "model-cache")
        env["TMPDIR"] = scratch
        env["BUILD_DIR"] = args.build_dir
        for doc in sorted((source / "docs").glob("*.md")):
            for line, text in blocks(doc):
                found += 1
                where = f"{doc.relative_to(source)}:{line}"
                r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + text], cwd=source, env=env,
                                   capture_output=True, text=True, timeout=300)
                status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
                print(f"{where}: {status}")
                if r.returncode != 0:
                    failures.append(f"{where}:\n{text}\n--- output ---\n{r.stdout}{r.stderr}")
    if found == 0:
        print("no runnable blocks found", file=sys.stderr)
        return 1
    for f in failures:
        print(f, file=sys.stderr)
    print(f"{found - len(failures)} of {found} runnable blocks pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
