#!/usr/bin/env python3
"""Table-driven bad-input test of every `pals` subcommand: each row runs `pals` once and asserts
the documented exit code (docs/cli.md: 2 bad input, 3 missing device/library, 4 permission),
that stderr names the offending flag, file or field, and that nothing was written into the
case's folder (no --out/--report/--svg file, no half-written output).

Plain python3: `test_bad_input_cli.py --pals PATH --fake-lib PATH --shared-dir DIR
--source-dir DIR` runs the whole table on a thread pool; `--only SUBSTRING` runs matching rows;
`--list` prints the rows. Every row is tiny (no simulation runs to completion).
"""

import argparse
import concurrent.futures
import json
import os
import stat
import subprocess
import sys
import tempfile

NAN_FLAGS_SIM = ["--power-cap", "--locked-clock", "--gpu-memory-utilization", "--routing-skew",
                 "--slo-ttft", "--slo-tpot", "--time-scale", "--rate-scale", "--duration", "--rate",
                 "--burstiness"]
INT_FLAGS_SIM = ["--tp", "--ep", "--replicas", "--max-num-seqs", "--max-num-batched-tokens",
                 "--block-size", "--max-model-len", "--num-requests"]


def rows():
    """(name, argv (with {M} {T} {D} placeholders: model, trace, the case's folder), exit code,
    [stderr substrings], fake-NVML config or None, extra env, files the command may rewrite but
    must keep: a saved-controls file whose GPUs were not restored)."""
    r = []

    def add(name, args, code, needles, nvml=None, env=None, rewrites=()):
        r.append((name, args, code, needles, nvml, env or {}, tuple(rewrites)))

    sim = ["simulate", "--model", "{M}", "--out", "{D}/out.json"]
    # simulate: NaN / inf / negative / out of range for every numeric flag
    for flag in NAN_FLAGS_SIM:
        base = sim + (["--trace", "{T}"] if flag in ("--time-scale", "--rate-scale", "--duration")
                      else ["--num-requests", "2"])
        add(f"simulate {flag} nan", base + [flag, "nan"], 2, [flag])
        add(f"simulate {flag} inf", base + [flag, "inf"], 2, [flag])
        add(f"simulate {flag} -1", base + [flag, "-1"], 2, [flag])
        add(f"simulate {flag} 1e308", base + [flag, "1e308"], 2, [flag])
    for flag in INT_FLAGS_SIM:
        add(f"simulate {flag} 2147483648", sim + ["--num-requests", "2", flag, "2147483648"], 2, [flag])
        add(f"simulate {flag} 2000000000", sim + ["--num-requests", "2", flag, "2000000000"], 2, [flag])
        add(f"simulate {flag} -5", sim + ["--num-requests", "2", flag, "-5"], 2, [flag])
        add(f"simulate {flag} x", sim + ["--num-requests", "2", flag, "x"], 2, [flag])
    add("simulate --power-cap below H100 range", sim + ["--num-requests", "2", "--power-cap", "100"], 2,
        ["--power-cap", "100 W is outside 200-700 W", "H100"])
    add("simulate --power-cap above B200 range", sim + ["--num-requests", "2", "--gpu", "B200", "--power-cap", "5000"],
        2, ["--power-cap", "B200"])
    add("simulate --locked-clock above max", sim + ["--num-requests", "2", "--locked-clock", "5000"], 2,
        ["--locked-clock"])
    add("simulate --input-len INT_MAX", sim + ["--num-requests", "2", "--input-len", "2147483647"], 2,
        ["--input-len", "limit"])
    add("simulate --output-len uniform huge", sim + ["--num-requests", "2", "--output-len", "uniform:1:99999999999"], 2,
        ["--output-len"])
    add("simulate --input-len 0", sim + ["--num-requests", "2", "--input-len", "0"], 2, ["--input-len"])
    add("simulate --input-len garbage", sim + ["--num-requests", "2", "--input-len", "uniform:5"], 2, ["--input-len"])
    add("simulate --input-len missing histogram", sim + ["--num-requests", "2", "--input-len", "{D}/nope.json"], 2,
        ["--input-len"])
    add("simulate --num-requests 2e9", sim + ["--rate", "1", "--num-requests", "2000000000"], 2, ["--num-requests"])
    add("simulate --rate x --duration too many", sim + ["--rate", "1000000", "--duration", "1e6"], 2,
        ["--rate", "limit"])
    add("simulate unknown flag", sim + ["--num-requests", "2", "--warp-drive", "1"], 2, ["--warp-drive"])
    add("simulate missing value", sim + ["--num-requests"], 2, ["--num-requests"])
    add("simulate no workload", sim, 2, ["--trace", "--rate", "--num-requests"])
    add("simulate --gpu unknown", sim + ["--num-requests", "2", "--gpu", "Z80"], 2, ["--gpu", "Z80"])
    add("simulate --dtype unknown", sim + ["--num-requests", "2", "--dtype", "int3"], 2, ["--dtype"])
    add("simulate --ep mismatch", sim + ["--num-requests", "2", "--tp", "2", "--ep", "3"], 2, ["ep"])
    add("simulate missing model", ["simulate", "--model", "{D}/none.json", "--num-requests", "2",
                                   "--out", "{D}/out.json"], 2, ["none.json"])
    add("simulate model is a directory", ["simulate", "--model", "{D}/adir", "--num-requests", "2",
                                          "--out", "{D}/out.json"], 2, ["adir"])
    add("simulate bad model JSON", ["simulate", "--model", "{D}/bad_model.json", "--num-requests", "2",
                                    "--out", "{D}/out.json"], 2, ["bad_model.json"])
    add("simulate model missing field", ["simulate", "--model", "{D}/empty_model.json", "--num-requests", "2",
                                         "--out", "{D}/out.json"], 2, ["empty_model.json"])
    add("simulate unreadable model", ["simulate", "--model", "{D}/noread.json", "--num-requests", "2",
                                      "--out", "{D}/out.json"], 2, ["noread.json"])
    add("simulate missing trace", sim + ["--trace", "{D}/none.csv"], 2, ["none.csv"])
    add("simulate trace is a directory", sim + ["--trace", "{D}/adir"], 2, ["adir"])
    add("simulate model does not fit", sim + ["--num-requests", "2", "--gpu-memory-utilization", "0.01"], 2,
        ["does not fit"])
    add("simulate --out in a missing folder", ["simulate", "--model", "{M}", "--num-requests", "2", "--out",
                                               "{D}/no/such/dir/out.json"], 2, ["out.json"])

    # demo
    add("demo --caps nan", ["demo", "--caps", "nan,400", "--batch-caps", "16", "--duration", "1",
                            "--report", "{D}/r.html", "--scenario", ""], 2, ["--caps"])
    add("demo --caps below range", ["demo", "--caps", "100", "--batch-caps", "16", "--duration", "1",
                                    "--report", "{D}/r.html", "--scenario", ""], 2,
        ["--caps", "100 W is outside 200-700 W", "H100"])
    add("demo --caps above range", ["demo", "--caps", "900", "--batch-caps", "16", "--duration", "1",
                                    "--report", "{D}/r.html", "--scenario", ""], 2, ["--caps", "900 W"])
    add("demo --batch-caps 0", ["demo", "--caps", "400", "--batch-caps", "0", "--duration", "1",
                                "--report", "{D}/r.html", "--scenario", ""], 2, ["--batch-caps"])
    add("demo --duration nan", ["demo", "--duration", "nan", "--report", "{D}/r.html"], 2, ["--duration"])
    add("demo --duration -1", ["demo", "--duration", "-1", "--report", "{D}/r.html"], 2, ["--duration"])
    add("demo --trace missing", ["demo", "--trace", "{D}/none.csv", "--duration", "1", "--caps", "400",
                                 "--batch-caps", "16", "--report", "{D}/r.html", "--scenario", ""], 2, ["none.csv"])
    add("demo --scenario missing", ["demo", "--scenario", "{D}/none.toml", "--duration", "1", "--caps", "400",
                                    "--batch-caps", "16", "--report", "{D}/r.html"], 2, ["none.toml"])
    add("demo unknown flag", ["demo", "--bogus"], 2, ["--bogus"])

    # calibrate
    add("calibrate --evaluations 0", ["calibrate", "--fit", "--evaluations", "0"], 2, ["--evaluations"])
    add("calibrate --evaluations huge", ["calibrate", "--fit", "--evaluations", "999999999"], 2, ["--evaluations"])
    add("calibrate --max-mape nan", ["calibrate", "--max-mape", "nan"], 2, ["--max-mape"])
    add("calibrate --max-mape -1", ["calibrate", "--max-mape", "-1"], 2, ["--max-mape"])
    add("calibrate --gpu unknown", ["calibrate", "--gpu", "Z80"], 2, ["--gpu"])
    add("calibrate --csv missing", ["calibrate", "--csv", "{D}/none.csv"], 2, ["none.csv"])
    add("calibrate --csv directory", ["calibrate", "--csv", "{D}/adir"], 2, ["adir"])
    add("calibrate --input-len huge", ["calibrate", "--input-len", "99999999999"], 2, ["--input-len"])
    add("calibrate unknown flag", ["calibrate", "--bogus"], 2, ["--bogus"])

    # gpus / power (fake NVML)
    missing_lib = {"PALS_NVML_LIB": "{D}/no/libnvidia-ml.so.1"}
    add("gpus NVML missing (env)", ["gpus"], 3, ["cannot load NVML"], env=missing_lib)
    add("gpus NVML missing (flag)", ["gpus", "--nvml-lib", "{D}/no/lib.so"], 3, ["cannot load NVML", "--nvml-lib"])
    add("gpus NVML is a directory", ["gpus", "--nvml-lib", "{D}/adir"], 3, ["NVML"])
    add("gpus unknown flag", ["gpus", "--bogus"], 2, ["--bogus"])
    add("gpus lost GPU", ["gpus"], 3, ["GPU 1"], nvml={"count": 2, "faults": [{"gpu": 1, "lost": True}]})
    pset = ["power", "set", "--state-file", "{D}/saved.json"]
    add("power set --limit nan", pset + ["--gpus", "0", "--limit", "nan"], 2, ["--limit"])
    add("power set --limit inf", pset + ["--gpus", "0", "--limit", "inf"], 2, ["--limit"])
    add("power set --limit -300", pset + ["--gpus", "0", "--limit", "-300"], 2, ["--limit"])
    add("power set --limit out of GPU range", pset + ["--gpus", "0", "--limit", "100"], 2, ["100"])
    add("power set --limit x", pset + ["--gpus", "0", "--limit", "x"], 2, ["--limit"])
    add("power set --limit missing", pset + ["--gpus", "0"], 2, ["--limit"])
    add("power set --gpus missing", pset + ["--limit", "300"], 2, ["--gpus"])
    add("power set --gpus 9", pset + ["--gpus", "9", "--limit", "300"], 2, ["--gpus", "9"])
    add("power set --gpus -1", pset + ["--gpus", "-1", "--limit", "300"], 2, ["--gpus"])
    add("power set --gpus huge", pset + ["--gpus", "99999999999", "--limit", "300"], 2, ["--gpus"])
    add("power set --gpus x", pset + ["--gpus", "x", "--limit", "300"], 2, ["--gpus"])
    add("power set --hold --duration nan", pset + ["--gpus", "0", "--limit", "300", "--hold", "--duration", "nan"],
        2, ["--duration"])
    add("power set --hold --duration inf", pset + ["--gpus", "0", "--limit", "300", "--hold", "--duration", "inf"],
        2, ["--duration"])
    add("power set --hold --duration -1", pset + ["--gpus", "0", "--limit", "300", "--hold", "--duration", "-1"],
        2, ["--duration"])
    add("power set --duration without --hold", pset + ["--gpus", "0", "--limit", "300", "--duration", "1"],
        2, ["--duration"])
    add("power set permission denied", pset + ["--gpus", "0", "--limit", "300"], 4, ["root"],
        nvml={"count": 2, "root": False})
    add("power set NVML missing", pset + ["--gpus", "0", "--limit", "300"], 3, ["cannot load NVML"], env=missing_lib)
    add("power set lost GPU", pset + ["--gpus", "1", "--limit", "300"], 3, ["GPU_IS_LOST"],
        nvml={"count": 2, "faults": [{"gpu": 1, "lost": True}]})
    add("power set state file is a directory", ["power", "set", "--state-file", "{D}/adir",
                                                "--gpus", "0", "--limit", "300"], 2, ["adir"])
    add("power restore state file is a directory", ["power", "restore", "--state-file", "{D}/adir"], 2,
        ["adir"])
    add("power restore corrupt state file", ["power", "restore", "--state-file", "{D}/bad_model.json"], 2,
        ["bad_model.json"])
    add("power restore NVML missing", ["power", "restore", "--state-file", "{D}/saved_ok.json"], 3,
        ["cannot load NVML"], env=missing_lib)
    add("power restore lost GPU", ["power", "restore", "--state-file", "{D}/saved_ok.json"], 3,
        ["GPU 0", "not restored", "saved_ok.json"],
        nvml={"count": 2, "faults": [{"gpu": 0, "lost": True}]}, rewrites=["saved_ok.json"])
    add("power restore permission denied", ["power", "restore", "--state-file", "{D}/saved_ok.json"], 4,
        ["root"], nvml={"count": 2, "root": False}, rewrites=["saved_ok.json"])
    add("power watch --interval nan", ["power", "watch", "--interval", "nan", "--count", "1"], 2, ["--interval"])
    add("power watch --interval 0", ["power", "watch", "--interval", "0", "--count", "1"], 2, ["--interval"])
    add("power watch --interval -1", ["power", "watch", "--interval", "-1", "--count", "1"], 2, ["--interval"])
    add("power watch --count -1", ["power", "watch", "--count", "-1"], 2, ["--count"])
    add("power watch --count huge", ["power", "watch", "--count", "99999999999"], 2, ["--count"])
    add("power watch --gpus 9", ["power", "watch", "--count", "1", "--gpus", "9"], 2, ["--gpus"])
    add("power watch NVML missing", ["power", "watch", "--count", "1"], 3, ["cannot load NVML"], env=missing_lib)
    add("power unknown subcommand", ["power", "frobnicate"], 2, ["frobnicate"])

    # profile (sim backend: validation before any point runs)
    prof = ["profile", "--model", "{M}", "--out", "{D}/p.csv"]
    add("profile --out missing", ["profile", "--model", "{M}"], 2, ["--out"])
    add("profile --caps nan", prof + ["--caps", "nan"], 2, ["--caps"])
    add("profile --caps below range", prof + ["--caps", "100,300"], 2, ["--caps", "100"])
    add("profile --caps bad grid", prof + ["--caps", "300:200:50"], 2, ["--caps"])
    add("profile --caps tiny step", prof + ["--caps", "200:700:0.0000001"], 2, ["--caps"])
    add("profile --batches 0", prof + ["--batches", "0,1"], 2, ["--batches"])
    add("profile --batches huge", prof + ["--batches", "1,99999999999"], 2, ["--batches"])
    add("profile --warmup nan", prof + ["--warmup", "nan"], 2, ["--warmup"])
    add("profile --window 0", prof + ["--window", "0"], 2, ["--window"])
    add("profile --window inf", prof + ["--window", "inf"], 2, ["--window"])
    add("profile --sample-period -1", prof + ["--sample-period", "-1"], 2, ["--sample-period"])
    add("profile --concurrency -1", prof + ["--concurrency", "-1"], 2, ["--concurrency"])
    add("profile --backend unknown", prof + ["--backend", "quantum"], 2, ["--backend"])
    add("profile --workload bad", prof + ["--workload", "a=in=x"], 2, ["--workload"])
    add("profile --workload huge length", prof + ["--workload", "a=in=uniform:1:2147483647,out=1", "--caps", "300",
                                                  "--batches", "1", "--window", "1", "--warmup", "0"], 2,
        ["--workload", "limit"])
    add("profile --workload missing trace", prof + ["--workload", "a=trace={D}/none.csv"], 2, ["none.csv"])
    add("profile --power-cap nan", prof + ["--power-cap", "nan"], 2, ["--power-cap"])
    add("profile --out in missing folder", ["profile", "--model", "{M}", "--out", "{D}/no/dir/p.csv",
                                            "--caps", "300", "--batches", "1", "--window", "1", "--warmup", "0"],
        2, ["p.csv"])
    add("profile live NVML missing", prof + ["--backend", "live"], 3, ["NVML"], env=missing_lib)

    # fit
    add("fit missing profile", ["fit", "{D}/none.csv", "--out", "{D}/m.json"], 2, ["none.csv"])
    add("fit profile is a directory", ["fit", "{D}/adir", "--out", "{D}/m.json"], 2, ["adir"])
    add("fit empty profile", ["fit", "{D}/empty.csv", "--out", "{D}/m.json"], 2, ["empty.csv"])
    add("fit garbage profile", ["fit", "{D}/bad_model.json", "--out", "{D}/m.json"], 2, ["bad_model.json"])
    add("fit --folds 0", ["fit", "{D}/empty.csv", "--folds", "0"], 2, ["--folds"])
    add("fit --folds 1", ["fit", "{D}/empty.csv", "--folds", "1"], 2, ["--folds"])
    add("fit --folds huge", ["fit", "{D}/empty.csv", "--folds", "99999999999"], 2, ["--folds"])
    add("fit --folds nan", ["fit", "{D}/empty.csv", "--folds", "nan"], 2, ["--folds"])
    add("fit profile missing", ["fit"], 2, ["profile"])
    add("fit unknown flag", ["fit", "{D}/empty.csv", "--bogus"], 2, ["--bogus"])

    # frontier
    add("frontier missing model", ["frontier", "{D}/none.json", "--svg", "{D}/f.svg"], 2, ["none.json"])
    add("frontier model is a directory", ["frontier", "{D}/adir", "--svg", "{D}/f.svg"], 2, ["adir"])
    add("frontier garbage model", ["frontier", "{D}/bad_model.json", "--svg", "{D}/f.svg"], 2, ["bad_model.json"])
    add("frontier not a power model", ["frontier", "{M}", "--svg", "{D}/f.svg"], 2, ["json"])
    for flag in ("--slo-itl", "--budget", "--cap-step", "--tolerance", "--itl-tolerance"):
        add(f"frontier {flag} nan", ["frontier", "{D}/none.json", flag, "nan"], 2, [flag])
        add(f"frontier {flag} -1", ["frontier", "{D}/none.json", flag, "-1"], 2, [flag])
    add("frontier model missing arg", ["frontier"], 2, ["model"])

    # evaluate
    add("evaluate missing scenario", ["evaluate", "--scenario", "{D}/none.toml", "--report", "{D}/r.html"], 2,
        ["none.toml"])
    add("evaluate scenario is a directory", ["evaluate", "--scenario", "{D}/adir", "--report", "{D}/r.html"], 2,
        ["adir"])
    add("evaluate garbage scenario", ["evaluate", "--scenario", "{D}/bad.toml", "--report", "{D}/r.html"], 2,
        ["bad.toml"])
    add("evaluate scenario unknown key", ["evaluate", "--scenario", "{D}/unknown_key.toml", "--report",
                                          "{D}/r.html"], 2, ["unknown_key.toml"])
    add("evaluate --period nan", ["evaluate", "--scenario", "{D}/bad.toml", "--period", "nan"], 2, ["--period"])
    add("evaluate --period -1", ["evaluate", "--scenario", "{D}/bad.toml", "--period", "-1"], 2, ["--period"])
    add("evaluate no scenario", ["evaluate"], 2, ["--scenario"])
    add("evaluate --trace-start -1", ["evaluate", "--scenario", "{D}/bad.toml", "--trace-start", "-1"], 2,
        ["--trace-start"])
    add("evaluate --seed text", ["evaluate", "--scenario", "{D}/bad.toml", "--seed", "abc"], 2, ["--seed"])
    add("simulate --trace-start without a trace", ["simulate", "--rate", "1", "--duration", "5",
                                                   "--trace-start", "60"], 2,
        ["--trace-start: applies to a trace replay only; give --trace too"])
    add("evaluate --period tiny", ["evaluate", "--scenario", "{D}/ok_scenario.toml", "--period", "1e-9",
                                   "--report", "{D}/r.html"], 2, ["--period"])
    add("evaluate scenario num_requests huge", ["evaluate", "--scenario", "{D}/huge_scenario.toml", "--report",
                                                "{D}/r.html"], 2, ["huge_scenario.toml", "workload.num_requests"])
    add("evaluate scenario NaN budget step", ["evaluate", "--scenario", "{D}/nan_scenario.toml", "--report",
                                              "{D}/r.html"], 2, ["nan_scenario.toml", "budget.steps[0]"])
    add("simulate --model unknown name", ["simulate", "--model", "mixtral", "--rate", "1", "--duration", "5"], 2,
        ["--model: unknown model 'mixtral'", "mistralai/Mixtral-8x7B-Instruct-v0.1", "pals models"])
    add("evaluate --check-expect broken bound", ["evaluate", "--scenario", "{D}/expect_scenario.toml",
                                                 "--check-expect"], 5,
        ["expect_scenario.toml:", "expect.ratio.default.tokens_per_joule: default/default = 1 is below 2",
         "1 expectation(s) failed"])
    add("evaluate --check-expect without [expect]", ["evaluate", "--scenario", "{D}/ok_scenario.toml",
                                                     "--check-expect"], 2, ["has no [expect]"])
    add("evaluate [expect] unknown metric", ["evaluate", "--scenario", "{D}/bad_expect_scenario.toml"], 2,
        ["bad_expect_scenario.toml:", "did you mean 'tokens_per_joule'"])

    # run --check
    chk = ["run", "--check", "--policy", "cap-only"]
    g = "url=http://127.0.0.1:8000,gpus=0"
    add("run --check gpus range huge", chk + ["--group", "url=http://127.0.0.1:8000,gpus=0-2000000000"], 2,
        ["gpus", "0-1023"])
    add("run --check gpus INT_MAX range", chk + ["--group", "url=http://127.0.0.1:8000,gpus=2147483647-2147483647"],
        2, ["gpus"])
    add("run --check gpus fuzz range", chk + ["--group", "gpus=000+00-000513000035+000+000000000070+00000"], 2,
        ["gpus"])
    add("run --check gpus index 5000", chk + ["--group", "gpus=5000"], 2, ["gpus", "5000"])
    add("run --check gpus negative", chk + ["--group", "gpus=-1"], 2, ["gpus"])
    add("run --check gpus twice", chk + ["--group", "gpus=0+0"], 2, ["gpus", "twice"])
    add("run --check gpus reversed range", chk + ["--group", "gpus=3-1"], 2, ["gpus"])
    add("run --check max_num_seqs huge", chk + ["--group", g + ",max_num_seqs=2000000000"], 2, ["max_num_seqs"])
    add("run --check max_num_seqs 0", chk + ["--group", g + ",max_num_seqs=0"], 2, ["max_num_seqs"])
    add("run --check group unknown key", chk + ["--group", g + ",gpuz=1"], 2, ["gpuz"])
    add("run --check no group", chk, 2, ["group"])
    add("run --check --period-s nan", chk + ["--group", g, "--period-s", "nan"], 2, ["--period-s"])
    add("run --check --period-s inf", chk + ["--group", g, "--period-s", "inf"], 2, ["--period-s"])
    add("run --check --period-s 0", chk + ["--group", g, "--period-s", "0"], 2, ["--period-s", "0.05"])
    add("run --check --budget-w -1", chk + ["--group", g, "--budget-w", "-1"], 2, ["--budget-w", ">= 0"])
    add("run --check --budget-w 1e400", chk + ["--group", g, "--budget-w", "1e400"], 2, ["--budget-w"])
    add("run --check --retry-periods x", chk + ["--group", g, "--retry-periods", "x"], 2, ["--retry-periods"])
    add("run --check --retry-periods huge", chk + ["--group", g, "--retry-periods", "99999999999"], 2,
        ["--retry-periods"])
    for flag, value in (("--period-s", "1e300"), ("--latency-window-s", "1e300"), ("--scrape-timeout-s", "1e300"),
                        ("--slo-ttft-s", "1e300"), ("--sm-clock-max-mhz", "1e300"), ("--retry-periods", "2000000000")):
        add(f"run --check {flag} {value}", chk + ["--group", g, flag, value], 2, [flag])
    add("run --check --listen bad", chk + ["--group", g, "--listen", "nohost"], 2, ["listen"])
    add("run --check --policy unknown", ["run", "--check", "--policy", "magic", "--group", g], 2, ["policy"])
    add("run --check pals without model", ["run", "--check", "--policy", "pals", "--group", g], 2, ["power_model"])
    add("run --check missing config", ["run", "--check", "--config", "{D}/none.toml"], 2, ["none.toml"])
    add("run --check config is a directory", ["run", "--check", "--config", "{D}/adir"], 2, ["adir"])
    # Inputs that are not regular files: refused at once (no hang on a FIFO, no /dev/zero read).
    add("run --check config is a FIFO", ["run", "--check", "--config", "{D}/fifo"], 2, ["fifo", "FIFO"])
    add("evaluate scenario is a FIFO", ["evaluate", "--scenario", "{D}/fifo", "--report", "{D}/r.html"], 2,
        ["fifo", "FIFO"])
    add("simulate trace is a FIFO", sim + ["--trace", "{D}/fifo.csv"], 2, ["fifo.csv", "FIFO"])
    add("simulate trace links to /dev/zero", sim + ["--trace", "{D}/zero.csv"], 2, ["zero.csv", "device"])
    add("run --check garbage config", ["run", "--check", "--config", "{D}/bad.toml"], 2, ["bad.toml"])
    add("run --check config gpus huge", ["run", "--check", "--config", "{D}/gpus_huge.toml"], 2,
        ["gpus_huge.toml", "gpus"])
    add("run --check env PALS_PERIOD_S nan", chk + ["--group", g], 2, ["PALS_PERIOD_S"], env={"PALS_PERIOD_S": "nan"})
    add("run --check env PALS_GROUPS huge", chk, 2, ["PALS_GROUPS", "gpus"],
        env={"PALS_GROUPS": "gpus=0-2000000000"})
    add("run unknown flag", ["run", "--check", "--bogus"], 2, ["--bogus"])
    add("run NVML missing", ["run", "--policy", "cap-only", "--group", g, "--listen", "127.0.0.1:0",
                             "--saved-controls", "{D}/sc.json"], 3, ["NVML"], env=missing_lib)
    add("run group GPU missing", ["run", "--policy", "cap-only", "--group", "gpus=9", "--listen", "127.0.0.1:0",
                                  "--saved-controls", "{D}/sc.json"], 2, ["gpus", "9"])

    # sim-serve: flags are refused before anything is bound or written
    ss = ["sim-serve", "--model", "{M}", "--state-dir", "{D}/state"]
    add("sim-serve --port 70000", ss + ["--port", "70000"], 2, ["--port"])
    add("sim-serve --port -1", ss + ["--port", "-1"], 2, ["--port"])
    add("sim-serve --time-scale nan", ss + ["--time-scale", "nan"], 2, ["--time-scale"])
    add("sim-serve --time-scale 0", ss + ["--time-scale", "0"], 2, ["--time-scale"])
    add("sim-serve --default-max-tokens 0", ss + ["--default-max-tokens", "0"], 2, ["--default-max-tokens"])
    add("sim-serve --default-max-tokens huge", ss + ["--default-max-tokens", "2147483647"], 2,
        ["--default-max-tokens"])
    add("sim-serve --gpu-offset -1", ss + ["--gpu-offset", "-1"], 2, ["--gpu-offset"])
    add("sim-serve --nvml-count huge", ss + ["--nvml-count", "2000000000"], 2, ["--nvml-count"])
    add("sim-serve --max-connections 0", ss + ["--max-connections", "0"], 2, ["--max-connections"])
    add("sim-serve --tick-us 0", ss + ["--tick-us", "0"], 2, ["--tick-us"])
    add("sim-serve --power-cap nan", ss + ["--power-cap", "nan"], 2, ["--power-cap"])
    add("sim-serve --power-cap below range", ss + ["--power-cap", "50"], 2, ["--power-cap"])
    add("sim-serve missing model", ["sim-serve", "--model", "{D}/none.json", "--state-dir", "{D}/state"], 2,
        ["none.json"])

    # loadgen: refused before any request is sent
    lg = ["loadgen", "--url", "http://127.0.0.1:9", "--out", "{D}/lg.json"]
    add("loadgen --url bad", ["loadgen", "--url", "ftp://x", "--num-requests", "1", "--out", "{D}/lg.json"], 2,
        ["--url"])
    add("loadgen --max-concurrency -1", lg + ["--num-requests", "1", "--max-concurrency", "-1"], 2,
        ["--max-concurrency"])
    add("loadgen --request-timeout nan", lg + ["--num-requests", "1", "--request-timeout", "nan"], 2,
        ["--request-timeout"])
    add("loadgen --rate nan", lg + ["--rate", "nan", "--num-requests", "1"], 2, ["--rate"])
    add("loadgen --num-requests 2e9", lg + ["--num-requests", "2000000000"], 2, ["--num-requests"])
    add("loadgen --input-len INT_MAX", lg + ["--num-requests", "1", "--input-len", "2147483647"], 2, ["--input-len"])
    add("loadgen --goodput bad", lg + ["--num-requests", "1", "--goodput", "ttft:abc"], 2, ["goodput"])
    add("loadgen --goodput nan", lg + ["--num-requests", "1", "--goodput", "ttft:nan"], 2, ["goodput"])
    add("loadgen --metric-percentiles 200", lg + ["--num-requests", "1", "--metric-percentiles", "200"], 2,
        ["percentile"])
    add("loadgen --metric-percentiles nan", lg + ["--num-requests", "1", "--metric-percentiles", "nan"], 2,
        ["percentile"])
    add("loadgen --percentile-metrics bad", lg + ["--num-requests", "1", "--percentile-metrics", "ttft,zzz"], 2,
        ["zzz"])
    add("loadgen --extra-body not JSON", lg + ["--num-requests", "1", "--extra-body", "{"], 2, ["--extra-body"])
    add("loadgen --extra-body array", lg + ["--num-requests", "1", "--extra-body", "[1]"], 2, ["--extra-body"])
    add("loadgen --endpoint bad", lg + ["--num-requests", "1", "--endpoint", "v1/x"], 2, ["--endpoint"])
    add("loadgen --trace missing", lg + ["--trace", "{D}/none.csv"], 2, ["none.csv"])
    add("loadgen no workload", lg, 2, ["--num-requests"])

    # global
    add("no subcommand", [], 2, ["`pals` needs a command: simulate, demo"])
    add("unknown subcommand", ["teleport"], 2, ["unknown command 'teleport'"])
    add("--log-level bad", ["--log-level", "loud", "gpus"], 2,
        ["--log-level: 'loud' is not one of trace, debug, info"])
    add("--data-dir missing", ["--data-dir", "{D}/nowhere", "models"], 2,
        ["--data-dir: '{D}/nowhere': no such directory"])

    # CLI11's own errors in the project's style (docs/cli.md): the command named, did you mean,
    # a hint line (every row also checks for 'pals: hint:')
    add("misspelt command", ["simulte"], 2,
        ["pals: error: unknown command 'simulte' (did you mean 'simulate'?)",
         "pals: hint: `pals --help` lists its commands"])
    add("misspelt power command", ["power", "sett"], 2,
        ["unknown command 'power sett' (did you mean 'set'?)", "`pals power --help`"])
    add("misspelt flag", ["simulate", "--max-num-seq", "8", "--num-requests", "2"], 2,
        ["pals: error: unknown flag '--max-num-seq' for `pals simulate` (did you mean '--max-num-seqs'?)",
         "pals: hint: `pals simulate --help` lists its flags"])
    add("unknown flag before the command", ["--log-levl", "debug", "models"], 2,
        ["unknown flag '--log-levl' for `pals` (did you mean '--log-level'?)"])
    add("stray argument", ["models", "extra"], 2, ["`pals models` takes no argument 'extra'"])
    add("flag without its value", ["evaluate", "--scenario"], 2, ["--scenario needs a value"])
    add("required flag missing", ["power", "set", "--limit", "300"], 2,
        ["`pals power set` needs --gpus"])
    add("required argument missing", ["fit"], 2, ["`pals fit` needs its argument 'profile'"])
    add("power needs a command", ["power"], 2, ["`pals power` needs a command: set, restore, watch",
                                                "`pals power --help` lists its commands"])
    return r


SCENARIO_NODE = '[node]\nmodel = "models/meta-llama__Llama-3.1-8B-Instruct.json"\ngpu = "H100-SXM"\n'


def make_fixtures(folder, source_dir):
    os.mkdir(os.path.join(folder, "adir"))
    files = {
        "bad_model.json": "{not json",
        "empty_model.json": "{}",
        "noread.json": "{}",
        "empty.csv": "",
        "bad.toml": "this is = = not toml [",
        "unknown_key.toml": "warp_drive = 1\n",
        "gpus_huge.toml": 'policy = "cap-only"\n[[group]]\nurl = "http://127.0.0.1:8000"\ngpus = [0, 2000000000]\n',
        "ok_scenario.toml": SCENARIO_NODE + "[workload]\nrate_rps = 1\nduration_s = 5\n",
        "huge_scenario.toml": SCENARIO_NODE + "[workload]\nnum_requests = 2000000000\n",
        "expect_scenario.toml": SCENARIO_NODE + "[workload]\nrate_rps = 1\nduration_s = 5\n"
                                                "[expect]\npolicy = \"default\"\n"
                                                "slo_attainment = { min = 0.5 }\n"
                                                "[expect.ratio.default]\ntokens_per_joule = { min = 2 }\n",
        "bad_expect_scenario.toml": SCENARIO_NODE + "[workload]\nrate_rps = 1\nduration_s = 5\n"
                                                    "[expect]\ntokens_per_jule = { min = 2 }\n",
        "nan_scenario.toml": SCENARIO_NODE + "[workload]\nrate_rps = 1\nduration_s = 5\n"
                                             "[budget]\nsteps = [[0, nan]]\n",
        "trace.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n",
        "saved_ok.json": json.dumps({"schema_version": 1,
                                     "gpus": [{"index": 0, "uuid": "GPU-c64e21fa-1c11-0633-8000-000000000000", "power_limit_w": 650.0}]}),
    }
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(folder, "noread.json"), 0)
    os.mkfifo(os.path.join(folder, "fifo"))
    os.mkfifo(os.path.join(folder, "fifo.csv"))
    os.symlink("/dev/zero", os.path.join(folder, "zero.csv"))


def snapshot(folder):
    out = {}
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            content = None
            if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IRUSR:
                with open(p, "rb") as f:
                    content = f.read()
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), content)
    return out


def run_row(row, args):
    name, argv, code, needles, nvml, extra_env, rewrites = row
    with tempfile.TemporaryDirectory(prefix="pals-badinput-") as d:
        make_fixtures(d, args.source_dir)
        subst = {"M": os.path.join(args.shared_dir, "models", "meta-llama__Llama-3.1-8B-Instruct.json"),
                 "T": os.path.join(d, "trace.csv"), "D": d}
        fmt = lambda s: s.replace("{M}", subst["M"]).replace("{T}", subst["T"]).replace("{D}", d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
        env["PALS_NVML_LIB"] = args.fake_lib
        env["PALS_FAKE_NVML_STATE"] = os.path.join(d, "fake_state.json")
        env["PALS_SHARED_DIR"] = args.shared_dir
        env["PALS_LOG_LEVEL"] = "warn"
        if nvml is not None:
            cfg = os.path.join(d, "fake_nvml.json")
            with open(cfg, "w") as f:
                json.dump(nvml, f)
            env["PALS_FAKE_NVML_CONFIG"] = cfg
        for k, v in extra_env.items():
            env[k] = fmt(v)
        before = snapshot(d)
        try:
            p = subprocess.run([args.pals, *map(fmt, argv)], env=env, capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return name, f"timed out after 30 s (expected exit {code})"
        problems = []
        if p.returncode != code:
            problems.append(f"exit {p.returncode}, expected {code}")
        if "pals: error:" not in p.stderr:
            problems.append("stderr lacks the 'pals: error:' line")
        if code != 0 and "pals: hint:" not in p.stderr:
            problems.append("stderr lacks the 'pals: hint:' line")
        if "The following argument" in p.stderr or " is required" in p.stderr:
            problems.append("stderr has CLI11's own wording")
        for s in needles:
            if fmt(s) not in p.stderr:
                problems.append(f"stderr lacks {fmt(s)!r}")
        after = snapshot(d)
        # The fake driver's own state file is the fake GPU, not an output.
        changed = sorted(k for k in set(after) | set(before)
                         if after.get(k) != before.get(k) and not k.startswith("fake_state.json")
                         and not (k in rewrites and k in after))
        if changed:
            problems.append(f"left files behind: {changed}")
        if problems:
            return name, "; ".join(problems) + f"\n    argv: {argv}\n    stderr: {p.stderr.strip()[:400]}"
        return name, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pals", required=True)
    ap.add_argument("--fake-lib", required=True)
    ap.add_argument("--shared-dir", required=True)
    ap.add_argument("--source-dir", default=".")
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--jobs", type=int, default=4)
    args = ap.parse_args()
    table = [r for r in rows() if args.only in r[0]]
    names = [r[0] for r in table]
    assert len(names) == len(set(names)), "duplicate row names"
    if args.list:
        for r in table:
            print(f"{r[0]} -> exit {r[2]}")
        return 0
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for name, problem in pool.map(lambda r: run_row(r, args), table):
            if problem:
                failures.append(name)
                print(f"FAIL {name}: {problem}")
    print(f"{len(table) - len(failures)}/{len(table)} bad-input rows pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
