#!/usr/bin/env python3
"""`pals profile --backend live` end to end on loopback, no GPU: a tiny sweep (2 caps x 2 batch
caps) of `pals sim-serve` through the fake NVML library and the batch-cap file, loaded by the
profiler's own closed-loop client. Checks the rows (power within each cap, more throughput at
the larger batch cap, every point saturated), that `pals fit` accepts the profile, and that the
GPU limits are back and the saved-controls file gone afterwards.

`test_live_profile.py --pals PATH --fake-lib PATH --shared DIR`
"""

import argparse
import csv
import json
import os
import sys
import tempfile

from test_live_loop import Failure, Process, check, run

MODEL = "models/meta-llama__Llama-3.1-8B-Instruct.json"
CAPS = (300.0, 700.0)
BATCHES = (8, 64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pals", required=True)
    ap.add_argument("--fake-lib", required=True)
    ap.add_argument("--shared", required=True)
    args = ap.parse_args()
    model = os.path.join(args.shared, MODEL)
    if not os.path.exists(model):
        print(f"SKIP: {model} is missing")
        return 77
    folder = tempfile.mkdtemp(prefix="pals-live-profile-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
    server = None
    try:
        state_dir = os.path.join(folder, "sim")
        server = Process("sim-serve", [args.pals, "sim-serve", "--model", model, "--max-num-seqs", "64",
                                       "--port", "0", "--state-dir", state_dir], env, folder)
        nvml_env = dict(env)
        nvml_env["PALS_NVML_LIB"] = args.fake_lib
        nvml_env["PALS_FAKE_NVML_CONFIG"] = os.path.join(state_dir, "fake-nvml.json")
        nvml_env["PALS_FAKE_NVML_STATE"] = os.path.join(state_dir, "fake-nvml-state.json")
        saved = os.path.join(folder, "saved_controls.json")
        profile = os.path.join(folder, "profile.csv")
        run([args.pals, "profile", "--backend", "live", "--url", server.base, "--model", model,
             "--max-num-seqs", "64", "--caps", ",".join(str(int(c)) for c in CAPS),
             "--batches", ",".join(str(b) for b in BATCHES), "--warmup", "1", "--window", "2",
             "--sample-period", "0.5", "--batch-cap-file", os.path.join(state_dir, "batch_cap"),
             "--saved-controls", saved, "--quiet", "--out", profile], nvml_env, 120)
        with open(profile) as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
        check(len(rows) == len(CAPS) * len(BATCHES), f"expected 4 rows, got {len(rows)}")
        by_point = {(float(r["power_cap_w"]), int(r["batch_cap"])): r for r in rows}
        for (cap, batch), r in by_point.items():
            check(float(r["power_w"]) <= cap * 1.02, f"cap {cap} W, batch {batch}: power {r['power_w']} W")
            check(r["saturated"] in ("1", "true"), f"cap {cap} W, batch {batch}: not saturated")
        for cap in CAPS:
            small = float(by_point[(cap, BATCHES[0])]["throughput_tok_s"])
            large = float(by_point[(cap, BATCHES[1])]["throughput_tok_s"])
            check(large > 2 * small, f"cap {cap} W: {large} tok/s at batch {BATCHES[1]} vs {small} at {BATCHES[0]}")
        run([args.pals, "fit", profile, "--out", os.path.join(folder, "model.json")], env, 60)
        limits = [g["power_limit_w"] for g in json.loads(run([args.pals, "gpus", "--json"], nvml_env, 30))["gpus"]]
        check(limits == [700.0], f"limits not restored: {limits}")
        check(not os.path.exists(saved), "the saved-controls file was left behind")
        check(server.terminate() == 0, "sim-serve did not exit 0")
        print("PASS")
        return 0
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        if server:
            print(f"--- sim-serve stderr ---\n{server.stderr()}", file=sys.stderr)
        return 1
    finally:
        if server and server.proc.poll() is None:
            server.proc.kill()


if __name__ == "__main__":
    sys.exit(main())
