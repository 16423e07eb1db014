#!/usr/bin/env python3
"""tools/check_layers.py catches an upward include and a peer include, and passes a clean tree."""
import pathlib
import subprocess
import sys
import tempfile

CHECKER = pathlib.Path(__file__).resolve().parents[2] / "tools" / "check_layers.py"


def run(files):
    with tempfile.TemporaryDirectory() as d:
        for rel, text in files.items():
            p = pathlib.Path(d) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        r = subprocess.run([sys.executable, str(CHECKER), d], capture_output=True, text=True)
        return r.returncode, r.stderr


def main():
    clean = {"include/pals/sim/a.hpp": '#include "pals/power/gpu_backend.hpp"\n#include <vector>\n',
             "src/control/b.cpp": '#include "pals/sim/a.hpp"\n#include "control/own.hpp"\n'}
    rc, err = run(clean)
    assert rc == 0, err
    rc, err = run({"include/pals/sim/a.hpp": '#include "pals/control/daemon.hpp"\n'})
    assert rc == 1 and "include/pals/sim/a.hpp:1: sim includes pals/control/daemon.hpp" in err, err
    rc, err = run({"src/api/x.cpp": '\n#include "serve/sim_server.hpp"\n'})
    assert rc == 1 and "src/api/x.cpp:2" in err and "a peer" in err, err
    rc, err = run({"src/newmod/x.cpp": "\n"})
    assert rc == 1 and "not in the layer table" in err, err
    print("ok")


if __name__ == "__main__":
    main()
