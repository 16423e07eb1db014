#!/usr/bin/env python3
"""Fails when a source or header includes a module of a higher layer (docs/architecture.md).

Each file under src/<module>/ or include/pals/<module>/ belongs to <module>; a quoted include
"pals/<m>/..." or "<m>/..." names module <m>. A module may include its own layer's files only
from itself, and any module of a lower layer.
"""
import pathlib
import re
import sys

# Bottom to top. Modules on one line are peers: neither may include the other.
LAYERS = [
    ["common"],
    ["model", "workload"],
    ["engine", "power"],
    ["sim"],
    ["fake_nvml", "loadgen"],
    ["profile"],
    ["control", "report"],
    ["cluster"],
    ["api", "serve", "run"],
    ["cli"],
]
LEVEL = {m: i for i, layer in enumerate(LAYERS) for m in layer}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of_include(path):
    parts = path.split("/")
    if parts[0] == "pals" and len(parts) > 2:
        return parts[1]
    if len(parts) > 1 and parts[0] in LEVEL:
        return parts[0]
    return None


def main(root):
    root = pathlib.Path(root)
    errors = []
    for base in (root / "src", root / "include" / "pals"):
        for f in sorted(base.rglob("*")):
            if f.suffix not in (".cpp", ".hpp", ".h", ".c") or len(f.relative_to(base).parts) < 2:
                continue
            mod = f.relative_to(base).parts[0]
            if mod not in LEVEL:
                errors.append(f"{f.relative_to(root)}: module '{mod}' is not in the layer table")
                continue
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                m = INCLUDE.match(line)
                target = module_of_include(m.group(1)) if m else None
                if target is None or target == mod:
                    continue
                if target not in LEVEL:
                    errors.append(f"{f.relative_to(root)}:{n}: includes unknown module '{target}'")
                elif LEVEL[target] >= LEVEL[mod]:
                    how = "a peer" if LEVEL[target] == LEVEL[mod] else "a higher layer"
                    errors.append(f"{f.relative_to(root)}:{n}: {mod} includes {m.group(1)} ({how}: {target})")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} include(s) cross a layer upward; order: " +
              " -> ".join("/".join(layer) for layer in LAYERS), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent))
