#!/usr/bin/env python3
"""Soak of the live path on loopback (docs/soak.md): `pals run` against `pals sim-serve` (its GPUs
behind the fake NVML library) under `pals loadgen`, for --duration-s of wall time (default 1 h).
Every --sample-s seconds it reads the resident memory of both processes (/proc/PID/status VmRSS);
at the end it prints start / end / max RSS and the least-squares slope in MB/h of each, and the
daemon's p99 tick time if its /metrics exposes one (pals_controller_tick_seconds).

    python3 tools/soak.py --pals build/release/pals \
        --fake-lib build/release/fake_nvml/libnvidia-ml.so.1 --shared ../shared --duration-s 600

Time runs at the wall clock: sim-serve's --time-scale above 1 makes the fake NVML energy
counters meaningless for the daemon (`pals sim-serve --help`), so a soak of N hours takes N hours.
The budget alternates between --budget-w and half of it every --flip-s seconds through
PUT /v1/budget, so the API path and cap writes are exercised too.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from live_harness import (Failure, Process, check, fake_nvml_env, http_get, http_put_json,  # noqa: E402
                          kill_all, metric_values, report_failure, run, start_daemon)

MODEL = "models/mistralai__Mixtral-8x7B-Instruct-v0.1.json"
TP = 2
MAX_NUM_SEQS = 256
TOKEN = "soak-secret"
TICK_METRIC = "pals_controller_tick_seconds"


def rss_mb(pid):
    """Resident set size of `pid` in MiB, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def slope_mb_per_h(points):
    """Least-squares slope of [(t_s, mb)] in MB per hour (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600.0


def summary(points):
    values = [v for _, v in points]
    return {"start_mb": round(values[0], 2), "end_mb": round(values[-1], 2), "max_mb": round(max(values), 2),
            "slope_mb_per_h": round(slope_mb_per_h(points), 3),
            # After the first tenth of the run: warm-up allocations (buffers, pools) excluded.
            "slope_after_warmup_mb_per_h": round(slope_mb_per_h(points[len(points) // 10:]), 3),
            "samples": len(points)}


def tick_p99_s(metrics_text):
    """p99 of the daemon's tick histogram from its Prometheus buckets, or None if not exposed."""
    buckets = metric_values(metrics_text, TICK_METRIC + "_bucket")
    if not buckets:
        return None
    pairs = []
    for labels, count in buckets.items():
        le = labels.split('le="', 1)[1].split('"', 1)[0] if 'le="' in labels else None
        if le is not None:
            pairs.append((float("inf") if le == "+Inf" else float(le), count))
    pairs.sort()
    if not pairs or pairs[-1][1] <= 0:
        return None
    target = 0.99 * pairs[-1][1]
    for le, count in pairs:
        if count >= target:
            return le
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pals", required=True)
    ap.add_argument("--fake-lib", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--duration-s", type=float, default=3600.0, help="wall seconds of load (default 1 h)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period, s")
    ap.add_argument("--rate", type=float, default=2.0, help="loadgen Poisson rate, requests/s")
    ap.add_argument("--policy", default="clock-only", help="pals run --policy (pals needs --power-model)")
    ap.add_argument("--power-model", help="MODEL.json for policy pals (`pals profile` + `pals fit`)")
    ap.add_argument("--budget-w", type=float, default=1400.0)
    ap.add_argument("--flip-s", type=float, default=300.0, help="alternate the budget this often (0: never)")
    ap.add_argument("--keep", help="work in this folder and keep it (logs, samples.json)")
    args = ap.parse_args()
    if args.duration_s <= 0 or args.sample_s <= 0:
        print("soak.py: --duration-s and --sample-s must be > 0", file=sys.stderr)
        return 2
    if args.policy == "pals" and not args.power_model:
        print("soak.py: --policy pals needs --power-model", file=sys.stderr)
        return 2

    model = os.path.join(args.shared, MODEL)
    folder = args.keep or tempfile.mkdtemp(prefix="pals-soak-")
    os.makedirs(folder, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
    env["PALS_LOG_LEVEL"] = "warn"
    procs = []
    try:
        state_dir = os.path.join(folder, "sim")
        server = Process("sim-serve", [args.pals, "sim-serve", "--model", model, "--tp", str(TP),
                                       "--max-num-seqs", str(MAX_NUM_SEQS), "--port", "0",
                                       "--state-dir", state_dir], env, folder)
        procs.append(server)
        nvml_env = fake_nvml_env(env, args.fake_lib, state_dir)
        settings = [f'policy = "{args.policy}"', "period_s = 1.0", f"budget_w = {args.budget_w}"]
        if args.power_model:
            settings.append(f'power_model = "{args.power_model}"')
        daemon = start_daemon(args.pals, folder, server, state_dir, nvml_env, TOKEN, settings, MAX_NUM_SEQS)
        procs.append(daemon)

        loadgen = subprocess.Popen(
            [args.pals, "loadgen", "--url", server.base, "--rate", str(args.rate), "--duration", str(args.duration_s),
             "--input-len", "uniform:128:1024", "--output-len", "uniform:64:256", "--seed", "1",
             "--json", "--out", os.path.join(folder, "loadgen.json")],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "loadgen.log"), "w"))
        start = time.time()
        daemon_rss, server_rss = [], []
        low = False
        next_flip = args.flip_s if args.flip_s > 0 else float("inf")
        flips = 0
        while loadgen.poll() is None and time.time() - start < args.duration_s + 120:
            t = time.time() - start
            if t >= next_flip:
                low = not low
                status, body = http_put_json(daemon.base + "/v1/budget",
                                             {"watts": args.budget_w / 2 if low else args.budget_w}, TOKEN)
                check(status == 200, f"PUT /v1/budget: {status} {body}")
                flips += 1
                next_flip += args.flip_s
            d, s = rss_mb(daemon.proc.pid), rss_mb(server.proc.pid)
            check(d is not None, f"pals run exited early\n{daemon.stderr()}")
            check(s is not None, f"sim-serve exited early\n{server.stderr()}")
            daemon_rss.append((t, d))
            server_rss.append((t, s))
            time.sleep(args.sample_s)
        check(loadgen.wait(timeout=60) == 0, "pals loadgen failed: see loadgen.log")
        metrics = http_get(daemon.base + "/metrics")
        state = json.loads(http_get(daemon.base + "/v1/state"))
        rc = daemon.terminate()
        check(rc == 0, f"pals run exited {rc} after SIGTERM\n{daemon.stderr()}")
        rc = server.terminate()
        check(rc == 0, f"sim-serve exited {rc}")
        with open(os.path.join(folder, "samples.json"), "w") as f:
            json.dump({"pals_run": daemon_rss, "sim_serve": server_rss}, f)
        with open(os.path.join(folder, "loadgen.json")) as f:
            bench = json.load(f)
        p99 = tick_p99_s(metrics)
        print(json.dumps({
            "wall_s": round(time.time() - start, 1),
            "policy": args.policy,
            "pals_run_rss": summary(daemon_rss),
            "sim_serve_rss": summary(server_rss),
            "daemon_tick_p99_s": p99 if p99 is not None else f"not exposed ({TICK_METRIC} absent from /metrics)",
            "daemon_errors_total": state.get("errors_total"),
            "budget_flips": flips,
            "completed": bench.get("completed"),
            "failed": bench.get("failed"),
            "folder": folder,
        }, indent=1))
        return 0
    except Failure as e:
        return report_failure(e, procs)
    finally:
        kill_all(procs)


if __name__ == "__main__":
    sys.exit(main())
