#!/usr/bin/env python3
"""End-to-end test of the live path on loopback, no GPU (issue 6, docs/deploy.md):

    pals loadgen --> pals sim-serve (OpenAI API, vLLM /metrics, simulated Mixtral TP2)
                        ^   | power, energy           ^ batch-cap file
                        |   v                         |
                 fake libnvidia-ml.so.1 <-- caps -- pals run (NVML backend, vLLM adapter,
                                                    PALS policy from `pals fit`, HTTP API)

Steps: fit a model of the node (`pals profile` + `pals fit`), start sim-serve, start `pals run`
against it through the fake NVML library, replay synthetic load with `pals loadgen`, lower the
budget through PUT /v1/budget mid-run, then SIGTERM the daemon. Checks:
  - the node's power (pals run's own energy-counter reading, and the simulator's) is under the new
    budget from the second control period after the change on, and the caps sum within it;
  - the SLO attainment of the load (loadgen's goodput definition) holds;
  - the batch cap the daemon decides reaches the engine (sim-serve's pals_sim_batch_cap) and is
    below the launch max_num_seqs at some point;
  - after SIGTERM the daemon exits 0 and the GPUs' limits are back to what they were.

Plain python3: `test_live_loop.py --pals PATH --fake-lib PATH --shared DIR [--keep DIR]`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Shared with test_live_profile.py and tools/soak.py (re-exported: they import these from here too).
from live_harness import (Failure, Process, check, fake_nvml_env, http_get, http_put_json,  # noqa: F401
                          kill_all, metric_values, report_failure, run, start_daemon)

MODEL = "models/mistralai__Mixtral-8x7B-Instruct-v0.1.json"
TP = 2
MAX_NUM_SEQS = 256
PERIOD_S = 1.0
START_BUDGET_W = 1400.0  # 2 x 700 W: not binding
LOW_BUDGET_W = 560.0     # 280 W per GPU
CHANGE_AT_S = 14.0       # into the load
LOAD_S = 40.0
RATE_RPS = 2.0
SLO_TTFT_MS = 1000.0
SLO_TPOT_MS = 40.0  # tight enough that the model lowers the batch cap to keep ITL in it
MIN_SLO_ATTAINMENT = 0.9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pals", required=True)
    ap.add_argument("--fake-lib", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--keep", help="work in this folder and keep it (logs, model, results)")
    args = ap.parse_args()

    model = os.path.join(args.shared, MODEL)
    if not os.path.exists(model):
        print(f"SKIP: {model} is missing")
        return 77
    folder = args.keep or tempfile.mkdtemp(prefix="pals-e2e-")
    os.makedirs(folder, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
    env["PALS_LOG_LEVEL"] = "info"
    procs = []
    try:
        # 1. A fitted model of this node (one TP2 group).
        profile = os.path.join(folder, "profile.csv")
        fitted = os.path.join(folder, "model.json")
        run([args.pals, "profile", "--model", model, "--tp", str(TP), "--max-num-seqs", str(MAX_NUM_SEQS),
             "--caps", "200:700:50", "--batches", "1,2,4,...,256", "--warmup", "5", "--window", "20",
             "--quiet", "--out", profile], env, 300)
        run([args.pals, "fit", profile, "--out", fitted], env, 60)

        # 2. The simulated vLLM server, its GPUs behind the fake NVML library.
        state_dir = os.path.join(folder, "sim")
        server = Process("sim-serve", [args.pals, "sim-serve", "--model", model, "--tp", str(TP),
                                       "--max-num-seqs", str(MAX_NUM_SEQS), "--port", "0",
                                       "--state-dir", state_dir], env, folder)
        procs.append(server)
        nvml_env = fake_nvml_env(env, args.fake_lib, state_dir)
        limits_before = [g["power_limit_w"] for g in json.loads(run([args.pals, "gpus", "--json"], nvml_env, 30))["gpus"]]
        check(len(limits_before) == TP, f"expected {TP} fake GPUs, got {limits_before}")

        # 3. The daemon.
        settings = ['policy = "pals"', f'power_model = "{fitted}"', f"period_s = {PERIOD_S}",
                    f"budget_w = {START_BUDGET_W}", f"slo_ttft_s = {SLO_TTFT_MS / 1000}",
                    f"slo_tpot_s = {SLO_TPOT_MS / 1000}"]
        daemon = start_daemon(args.pals, folder, server, state_dir, nvml_env, "e2e-secret", settings, MAX_NUM_SEQS)
        procs.append(daemon)

        # 4. Load, and a sampler of both sides once every 0.25 s.
        result = os.path.join(folder, "loadgen.json")
        loadgen = subprocess.Popen(
            [args.pals, "loadgen", "--url", server.base, "--rate", str(RATE_RPS), "--duration", str(LOAD_S),
             "--input-len", "uniform:128:1024", "--output-len", "uniform:64:256", "--seed", "1",
             "--goodput", f"ttft:{SLO_TTFT_MS}", f"tpot:{SLO_TPOT_MS}", "--json", "--out", result],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "loadgen.log"), "w"))
        start = time.time()
        samples = []  # (t, daemon state, sim-serve metrics text)
        gpu_clocks = None  # (the daemon's lock, the GPUs' SM clocks) once, mid-run
        changed_at = None
        while loadgen.poll() is None and time.time() - start < LOAD_S + 60:
            t = time.time() - start
            if changed_at is None and t >= CHANGE_AT_S:
                status, body = http_put_json(daemon.base + "/v1/budget", {"watts": LOW_BUDGET_W}, "e2e-secret")
                check(status == 200, f"PUT /v1/budget: {status} {body}")
                changed_at = time.time() - start
            try:
                state = json.loads(http_get(daemon.base + "/v1/state"))
                metrics = http_get(server.base + "/metrics")
            except OSError as e:
                raise Failure(f"reading the daemon or the server failed: {e}")
            samples.append((time.time() - start, state, metrics))
            lock = state["groups"][0].get("locked_clock_mhz") if state.get("groups") else None
            if lock and gpu_clocks is None and t >= 5.0:
                # The clock lock reached the GPUs: the fake NVML reports the simulated clock.
                gpu_clocks = (lock, [g["sm_clock_mhz"] for g in
                                     json.loads(run([args.pals, "gpus", "--json"], nvml_env, 30))["gpus"]])
            time.sleep(0.25)
        check(loadgen.wait(timeout=30) == 0, "pals loadgen failed: see loadgen.log")
        check(changed_at is not None, "the load ended before the budget change")

        # pals keeps the launch batch cap at partial load; a cap it wrote is in the file.
        last_cap = json.loads(http_get(daemon.base + "/v1/state"))["groups"][0]["batch_cap"]
        cap_path = os.path.join(state_dir, "batch_cap")
        if os.path.exists(cap_path):
            with open(cap_path, "rb") as f:
                raw = f.read()
            check(len(raw) == 8, f"batch-cap file holds {len(raw)} bytes, not 8")
            file_cap = int.from_bytes(raw, "little")
            check(file_cap == last_cap, f"batch-cap file {file_cap} != the daemon's batch cap {last_cap}")
        else:
            check(last_cap == MAX_NUM_SEQS, f"no batch-cap file, but the daemon's batch cap is {last_cap}")

        # 5. SIGTERM: limits restored, exit 0.
        rc = daemon.terminate()
        check(rc == 0, f"pals run exited {rc} after SIGTERM\n{daemon.stderr()}")
        limits_after = [g["power_limit_w"] for g in json.loads(run([args.pals, "gpus", "--json"], nvml_env, 30))["gpus"]]
        check(limits_after == limits_before, f"limits not restored: {limits_before} -> {limits_after}")

        # Power under the new budget from the second period after the change on. The daemon's
        # power_w is the node's mean over the period that ended at time_s (energy counters).
        with open(os.path.join(folder, "samples.json"), "w") as f:
            json.dump([{"t": t, "state": s} for t, s, _ in samples], f)
        change_state_t = None
        for t, s, _ in samples:
            if t >= changed_at and s.get("budget_w") == LOW_BUDGET_W:
                change_state_t = s["time_s"]
                break
        check(change_state_t is not None, "the daemon never reported the new budget")
        # Caps within the new budget: wall time from the PUT to the first state that shows it.
        followed_s = None
        for t, s, _ in samples:
            if t >= changed_at and s.get("budget_w") == LOW_BUDGET_W and \
                    sum(g["power_cap_w"] * len(g["gpus"]) for g in s["groups"]) <= LOW_BUDGET_W + 1e-6:
                followed_s = t - changed_at
                break
        # The daemon lowers caps as soon as it sees a lower budget (it polls every 0.1 s), not
        # at the next period.
        check(followed_s is not None and followed_s <= PERIOD_S,
              f"caps did not follow the budget within one period (took {followed_s} s)")
        after = [(t, s, m) for t, s, m in samples if s["time_s"] >= change_state_t + 2 * PERIOD_S]
        check(len(after) >= 10, f"too few samples after the change: {len(after)}")
        worst_daemon = max(s["power_w"] for _, s, _ in after)
        worst_caps = max(sum(g["power_cap_w"] * len(g["gpus"]) for g in s["groups"]) for _, s, _ in after)
        worst_sim = max(sum(metric_values(m, "pals_sim_power_watts").values()) for _, _, m in after)
        check(worst_caps <= LOW_BUDGET_W + 1e-6, f"caps sum to {worst_caps:.1f} W > {LOW_BUDGET_W} W")
        check(worst_daemon <= LOW_BUDGET_W * 1.01,
              f"node power {worst_daemon:.1f} W > budget {LOW_BUDGET_W} W two periods after the change")
        check(worst_sim <= LOW_BUDGET_W * 1.01, f"simulated power {worst_sim:.1f} W > budget {LOW_BUDGET_W} W")
        before = [s for t, s, _ in samples if 4.0 <= t < changed_at]
        peak_before = max(s["power_w"] for s in before)

        # The batch cap reached the engine: the sim reports what it read from the file.
        pairs = []
        for _, s, m in samples:
            sim_caps = metric_values(m, "pals_sim_batch_cap")
            if s["groups"] and sim_caps:
                pairs.append((s["groups"][0]["batch_cap"], int(min(sim_caps.values()))))
        check(pairs, "no batch-cap samples")
        matches = sum(1 for d, e in pairs if d == e)
        check(matches >= 0.8 * len(pairs), f"engine batch cap matched the daemon's in {matches}/{len(pairs)} samples")
        # The step-token budget: the engine acknowledges its launch value (the daemon learns it),
        # and the budget in force is the engine's (a budget pals wrote reached it).
        acked = [s["groups"][0].get("engine_max_num_batched_tokens") for _, s, _ in samples if s["groups"]]
        check(any(v == 8192 for v in acked), f"no step-token acknowledgement in /v1/state: {set(acked)}")
        token_pairs = []
        for _, s, m in samples:
            sim_tokens = metric_values(m, "pals_sim_step_tokens")
            if s["groups"] and sim_tokens and s["groups"][0].get("step_tokens"):
                token_pairs.append((s["groups"][0]["step_tokens"], int(min(sim_tokens.values()))))
        check(token_pairs, "no step-token samples")
        token_matches = sum(1 for d, e in token_pairs if d == e)
        check(token_matches >= 0.8 * len(token_pairs),
              f"engine step-token budget matched the daemon's in {token_matches}/{len(token_pairs)} samples")
        # pals locks the SM clock at partial load (docs/evaluate.md), and the GPUs follow it.
        locked = [s["groups"][0].get("locked_clock_mhz") for t, s, _ in samples if s["groups"] and t < changed_at]
        check(sum(1 for c in locked if c) >= 0.5 * len(locked), f"pals locked the clock in {locked}")
        check(gpu_clocks is not None, "no GPU clock reading while a lock was in force")
        check(all(c <= gpu_clocks[0] + 1.0 for c in gpu_clocks[1][:TP]),
              f"GPU clocks {gpu_clocks[1]} above the lock of {gpu_clocks[0]} MHz")

        # Service held.
        with open(result) as f:
            bench = json.load(f)
        attainment = bench.get("slo_attainment")
        check(bench.get("completed", 0) >= 0.9 * RATE_RPS * LOAD_S * 0.8, f"too few completed requests: {bench}")
        check(bench.get("failed", 1) == 0, f"failed requests: {bench.get('failed')}")
        check(attainment is not None and attainment >= MIN_SLO_ATTAINMENT,
              f"SLO attainment {attainment} < {MIN_SLO_ATTAINMENT}")

        rc = server.terminate()
        check(rc == 0, f"sim-serve exited {rc}")
        print(json.dumps({
            "peak_power_before_w": round(peak_before, 1),
            "worst_power_after_w": round(worst_daemon, 1),
            "worst_sim_power_after_w": round(worst_sim, 1),
            "budget_after_w": LOW_BUDGET_W,
            "caps_within_budget_after_s": round(followed_s, 2),
            "batch_caps_seen": sorted({e for _, e in pairs}),
            "gpu_clocks_under_lock_mhz": gpu_clocks,
            "completed": bench.get("completed"),
            "slo_attainment": attainment,
            "mean_ttft_ms": bench.get("mean_ttft_ms"),
            "mean_tpot_ms": bench.get("mean_tpot_ms"),
            "folder": folder,
        }, indent=1))
        print("PASS")
        return 0
    except Failure as e:
        return report_failure(e, procs)
    finally:
        kill_all(procs)


if __name__ == "__main__":
    sys.exit(main())
