#!/usr/bin/env python3
"""The install is relocatable (docs/deploy.md): `cmake --install BUILD --prefix A` into a
temporary prefix, move A elsewhere, then run the moved `pals` with no PALS_* variable set:
`--version`, `pals models` (the data found in PREFIX/share/pals, beside the executable), a short
`pals simulate` by model name, `pals gpus` on the installed fake NVML library; then the data
found through PALS_SHARED_DIR and --data-dir instead. No path of the build machine (source
tree, build tree, data folder) may be in the binary.

    test_install.py --build-dir BUILD --source-dir SRC --shared-dir SHARED
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile


def run(argv, env, cwd, expect_rc=0):
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if p.returncode != expect_rc:
        raise AssertionError(f"{argv}: exit {p.returncode}, expected {expect_rc}\n{p.stdout}\n{p.stderr}")
    return p


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--shared-dir", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pals-install-") as tmp:
        first = os.path.join(tmp, "first")
        p = subprocess.run(["cmake", "--install", args.build_dir, "--prefix", first],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
            return 1
        expected = ["bin/pals", "share/pals/models/mistralai__Mixtral-8x7B-Instruct-v0.1.json",
                    "share/pals/traces", "share/pals/calibration",
                    "share/pals/scenarios/mixtral-conv-step-budget.toml",
                    "share/pals/python/pyproject.toml", "share/pals/python/src/pals_vllm/__init__.py",
                    "lib/systemd/system/pals.service", "share/doc/pals/examples/pals.toml",
                    "share/doc/pals/deploy.md"]
        for rel in expected:
            assert os.path.exists(os.path.join(first, rel)), f"not installed: {rel}"
        fake = glob.glob(os.path.join(first, "lib*", "**", "pals", "fake-nvml", "libnvidia-ml.so.1"),
                         recursive=True) or glob.glob(os.path.join(first, "lib*", "pals", "fake-nvml",
                                                                   "libnvidia-ml.so.1"))
        assert fake, "the fake NVML library is not installed under lib/pals/fake-nvml"
        unit = open(os.path.join(first, "lib/systemd/system/pals.service")).read()
        assert f"ExecStart={first}/bin/pals run" in unit, "the unit does not name the installed pals"
        assert not os.path.exists(os.path.join(first, "share/pals/python/tests")), "tests installed"

        # No path of this machine in the binary.
        binary = open(os.path.join(first, "bin/pals"), "rb").read()
        for path in {os.path.realpath(args.source_dir), os.path.realpath(args.build_dir),
                     os.path.realpath(args.shared_dir)}:
            assert path.encode() not in binary, f"the binary contains the path {path}"

        # Move the whole prefix, then run it from an unrelated folder with no PALS_* variable.
        moved = os.path.join(tmp, "elsewhere", "prefix")
        os.makedirs(os.path.dirname(moved))
        shutil.move(first, moved)
        pals = os.path.join(moved, "bin", "pals")
        fake_lib = fake[0].replace(first, moved, 1)
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
        env["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        out = run([pals, "--version"], env, work).stdout
        assert out.startswith("pals 0.1.0 (git "), out
        out = run([pals, "models"], env, work).stdout
        assert "mistralai/Mixtral-8x7B-Instruct-v0.1" in out, out
        out = run([pals, "simulate", "--model", "Llama-3.1-8B-Instruct", "--num-requests", "20"], env, work).stdout
        assert "Llama-3.1-8B-Instruct" in out and "20 completed of 20" in out, out
        gpus = dict(env, PALS_NVML_LIB=fake_lib, PALS_FAKE_NVML_STATE=os.path.join(tmp, "nvml-state.json"))
        out = run([pals, "gpus"], gpus, work).stdout
        assert "H100" in out, out
        print(f"moved install at {moved}: --version, models, simulate, gpus (fake NVML) run")

        # The data elsewhere: PALS_SHARED_DIR, then --data-dir, win over share/pals.
        shutil.rmtree(os.path.join(moved, "share", "pals", "models"))
        err = run([pals, "models"], env, work, expect_rc=2).stderr
        assert "pals: error:" in err and "--data-dir" in err and "PALS_SHARED_DIR" in err, err
        out = run([pals, "models"], dict(env, PALS_SHARED_DIR=args.shared_dir), work).stdout
        assert "mistralai/Mixtral-8x7B-Instruct-v0.1" in out, out
        out = run([pals, "--data-dir", args.shared_dir, "models"], env, work).stdout
        assert "mistralai/Mixtral-8x7B-Instruct-v0.1" in out, out
        print("data found through PALS_SHARED_DIR and --data-dir; a missing data folder says what to do")
        leftovers = os.listdir(work)
        assert not leftovers, f"files left in the current folder: {leftovers}"
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
