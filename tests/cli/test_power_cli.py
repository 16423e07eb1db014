#!/usr/bin/env python3
"""CLI tests of `pals gpus` and `pals power` against the fake libnvidia-ml.so.1.

Plain python3, no pytest: `test_power_cli.py --pals PATH --fake-lib PATH --case NAME` runs one
case (ctest runs each as its own test, tests/cli/CMakeLists.txt); `--case all` runs every case.
Each case gets a private folder for the fake driver's state file, its configuration and the
saved-controls file, and ends by checking that no GPU setting was left changed.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from cli_harness import CaseFailure, check, expect, run_case, select_cases

DEFAULT_LIMIT_W = 700.0




class Env:
    """One case's private fake-NVML world."""

    def __init__(self, pals, fake_lib, folder):
        self.pals = pals
        self.fake_lib = fake_lib
        self.folder = folder
        self.state = os.path.join(folder, "fake_state.json")
        self.saved = os.path.join(folder, "saved_controls.json")
        self.config_path = None

    def config(self, obj):
        self.config_path = os.path.join(self.folder, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(obj, f)

    def environ(self, lib=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
        env["PALS_NVML_LIB"] = self.fake_lib if lib is None else lib
        env["PALS_FAKE_NVML_STATE"] = self.state
        env["PALS_LOG_LEVEL"] = "warn"
        if self.config_path:
            env["PALS_FAKE_NVML_CONFIG"] = self.config_path
        return env

    def run(self, *args, lib=None, timeout=60):
        return subprocess.run([self.pals, *args], env=self.environ(lib), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args):
        return subprocess.Popen([self.pals, *args], env=self.environ(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    expect = staticmethod(expect)

    def gpus(self):
        r = self.run("gpus", "--json")
        self.expect(r, 0)
        return json.loads(r.stdout)["gpus"]

    def limits(self):
        return [g["power_limit_w"] for g in self.gpus()]

    def assert_untouched(self):
        """No limit or locked clock left changed, no saved-controls file left behind."""
        check(not os.path.exists(self.saved), f"{self.saved} was left behind")
        if not os.path.exists(self.state):
            return
        with open(self.state) as f:
            state = json.load(f)
        r = self.run("gpus", "--json")
        defaults = {}
        if r.returncode in (0, 1, 3) and r.stdout.strip():
            for g in json.loads(r.stdout)["gpus"]:
                if "power_limit_default_w" in g:
                    defaults[g["index"]] = g["power_limit_default_w"]
        for i, d in enumerate(state["devices"]):
            check(d["limit_w"] == defaults.get(i, d["limit_w"]),
                  f"GPU {i} left at {d['limit_w']} W (default {defaults.get(i)})")
            check(d["locked_max_mhz"] == 0, f"GPU {i} left with locked clocks")


def wait_for_line(proc, needle, timeout=20.0):
    """Reads proc.stdout until a line contains needle; returns the lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise CaseFailure(f"no line with {needle!r} from {proc.args[1:]}: {lines} {proc.stderr.read()}")


# ---- cases ----------------------------------------------------------------------------------------

def case_discovery(e):
    gpus = e.gpus()
    check(len(gpus) == 8, f"expected 8 GPUs, got {len(gpus)}")
    check(len({g["uuid"] for g in gpus}) == 8, "UUIDs are not unique")
    for i, g in enumerate(gpus):
        check(g["index"] == i, "indices out of order")
        check(g["name"] == "NVIDIA H100 80GB HBM3", g["name"])
        check(g["uuid"].startswith("GPU-"), g["uuid"])
        check((g["power_limit_min_w"], g["power_limit_max_w"], g["power_limit_default_w"]) == (200.0, 700.0, 700.0),
              f"limits {g}")
        check(g["power_limit_w"] == 700.0 and g["enforced_power_limit_w"] == 700.0, f"limit {g}")
        check(g["throttle_reasons"] == ["gpu_idle"], f"reasons {g}")
    table = e.run("gpus")
    e.expect(table, 0, "UUID", "ENFORCED W", "THROTTLE", "gpu_idle", stream="stdout")
    check(len(table.stdout.strip().splitlines()) == 9, table.stdout)

    e.config({"count": 2, "gpu": "a100-40gb"})
    gpus = e.gpus()
    check(len(gpus) == 2, f"config count: {len(gpus)}")
    check(gpus[0]["name"] == "NVIDIA A100-SXM4-40GB", gpus[0]["name"])
    check(gpus[1]["power_limit_max_w"] == 400.0 and gpus[1]["power_limit_min_w"] == 100.0, str(gpus[1]))


def case_readings(e):
    e.config({"count": 2, "load": {"kind": "decode", "batch": 64}})
    a = e.gpus()
    time.sleep(0.3)
    b = e.gpus()
    for g0, g1 in zip(a, b):
        check(300.0 < g0["power_w"] < 700.0, f"decode power {g0['power_w']}")
        check(g0["sm_clock_mhz"] == 1980.0, f"clock {g0['sm_clock_mhz']}")
        check(g0["throttle_reasons"] == [], f"reasons {g0['throttle_reasons']}")
        check(g1["energy_j"] - g0["energy_j"] >= 0.25 * g0["power_w"], "energy did not grow with wall time")


def case_set_restore(e):
    r = e.run("power", "set", "--gpus", "0,1", "--limit", "300", "--state-file", e.saved)
    e.expect(r, 0, "GPU 0: power limit 300.0 W (enforced 300.0 W), was 700.0 W", stream="stdout")
    check(e.limits() == [300.0, 300.0] + [700.0] * 6, f"limits {e.limits()}")
    with open(e.saved) as f:
        saved = json.load(f)
    check([g["power_limit_w"] for g in saved["gpus"]] == [700.0, 700.0], f"saved {saved}")
    # A second set keeps the original saved value (700), not the 300 set above.
    e.expect(e.run("power", "set", "--gpus", "1", "--limit", "250", "--state-file", e.saved), 0)
    check(e.limits()[:2] == [300.0, 250.0], f"limits {e.limits()}")
    r = e.run("power", "restore", "--state-file", e.saved)
    e.expect(r, 0, "restored 2 GPU(s)", stream="stdout")
    check(e.limits() == [700.0] * 8, f"after restore {e.limits()}")
    check(not os.path.exists(e.saved), "restore did not remove the state file")
    e.expect(e.run("power", "restore", "--state-file", e.saved), 0, "nothing to restore", stream="stdout")


def case_set_all(e):
    e.expect(e.run("power", "set", "--gpus", "all", "--limit", "450", "--state-file", e.saved), 0)
    check(e.limits() == [450.0] * 8, f"limits {e.limits()}")
    e.expect(e.run("power", "restore", "--state-file", e.saved), 0)
    check(e.limits() == [700.0] * 8, f"limits {e.limits()}")


def case_restore_saved_not_default(e):
    # An operator's earlier setting (not PALS's): 450 W on GPU 0.
    other = os.path.join(e.folder, "operator.json")
    e.expect(e.run("power", "set", "--gpus", "0", "--limit", "450", "--state-file", other), 0)
    os.remove(other)
    e.expect(e.run("power", "set", "--gpus", "0", "--limit", "300", "--state-file", e.saved), 0)
    e.expect(e.run("power", "restore", "--state-file", e.saved), 0)
    check(e.limits()[0] == 450.0, f"restored {e.limits()[0]} W instead of the saved 450 W")
    e.expect(e.run("power", "set", "--gpus", "0", "--limit", "700", "--state-file", other), 0)
    os.remove(other)


def case_out_of_range(e):
    for limit in ("900", "150"):
        r = e.run("power", "set", "--gpus", "0,1", "--limit", limit, "--state-file", e.saved)
        e.expect(r, 2, "allowed range of GPU 0: 200-700 W", "nothing was changed")
    e.expect(e.run("power", "set", "--gpus", "8", "--limit", "300", "--state-file", e.saved), 2,
             "GPU 8 does not exist")
    e.expect(e.run("power", "set", "--gpus", "0,x", "--limit", "300", "--state-file", e.saved), 2,
             "'x' is not a GPU index")
    e.expect(e.run("power", "set", "--gpus", "0", "--limit", "-5", "--state-file", e.saved), 2, "--limit")
    e.expect(e.run("power", "set", "--gpus", "0"), 2)  # --limit missing
    check(e.limits() == [700.0] * 8, "an out-of-range request wrote something")


def case_permission_denied(e):
    e.config({"count": 2, "root": False})
    e.expect(e.run("gpus"), 0)
    r = e.run("power", "set", "--gpus", "0", "--limit", "300", "--state-file", e.saved)
    e.expect(r, 4, "setting power limits needs root or CAP_SYS_ADMIN", "monitoring only")
    check(r.stderr.count("monitoring only") == 1, f"the warning is not said once:\n{r.stderr}")
    check(e.limits() == [700.0, 700.0], "a refused write changed something")
    w = e.run("power", "watch", "--interval", "0.05", "--count", "2")
    e.expect(w, 0)
    check(len(w.stdout.strip().splitlines()) == 3, w.stdout)


def case_missing_library(e):
    missing = os.path.join(e.folder, "no", "libnvidia-ml.so.1")
    for args in (("gpus",), ("gpus", "--json"), ("power", "watch", "--count", "1"),
                 ("power", "set", "--gpus", "0", "--limit", "300", "--state-file", e.saved)):
        e.expect(e.run(*args, "--nvml-lib", missing), 3, "cannot load NVML", "--nvml-lib")
        e.expect(e.run(*args, lib=missing), 3, "cannot load NVML")  # through PALS_NVML_LIB
    with open(e.saved, "w") as f:
        json.dump({"schema_version": 1, "gpus": [{"index": 0, "uuid": "GPU-X", "power_limit_w": 650.0}]}, f)
    e.expect(e.run("power", "restore", "--state-file", e.saved, "--nvml-lib", missing), 3, "cannot load NVML")
    check(os.path.exists(e.saved), "a failed restore removed the state file")
    os.remove(e.saved)
    e.expect(e.run("gpus", "--nvml-lib", "libm.so.6"), 3, "lacks nvmlInit_v2 or nvmlInit")


def case_fault_error(e):
    e.config({"count": 3, "faults": [{"function": "nvmlDeviceGetPowerUsage", "gpu": 1, "error": "UNKNOWN"}]})
    r = e.run("gpus")
    e.expect(r, 1, "GPU 1: nvmlDeviceGetPowerUsage: an unknown NVML error occurred (NVML_ERROR_UNKNOWN")
    check("error: GPU 1" in r.stdout and "NVIDIA H100" in r.stdout, f"table:\n{r.stdout}")
    r = e.run("gpus", "--json")
    check(r.returncode == 1, r.stderr)
    gpus = json.loads(r.stdout)["gpus"]
    check(gpus[1]["error"]["code"] == "internal" and "power_w" in gpus[0] and "power_w" in gpus[2], str(gpus))


def case_fault_timeout(e):
    e.config({"count": 1, "faults": [{"function": "nvmlDeviceGetEnforcedPowerLimit", "error": "TIMEOUT"}]})
    e.expect(e.run("gpus"), 3, "timed out", "NVML_ERROR_TIMEOUT")


def case_fault_init(e):
    e.config({"faults": [{"function": "nvmlInit", "error": "DRIVER_NOT_LOADED"}]})
    e.expect(e.run("gpus"), 3, "nvmlInit_v2: the NVIDIA kernel driver is not loaded")
    e.config({"faults": [{"function": "nvmlInit", "error": "LIB_RM_VERSION_MISMATCH"}]})
    e.expect(e.run("gpus"), 3, "versions differ")


def case_fault_not_supported(e):
    e.config({"count": 1, "load": "decode",
              "faults": [{"function": "nvmlDeviceGetTotalEnergyConsumption", "error": "NOT_SUPPORTED"}]})
    r = e.run("gpus")
    e.expect(r, 0, "n/a", stream="stdout")
    check(e.gpus()[0]["energy_j"] is None, "energy should be null in JSON")
    w = e.run("power", "watch", "--interval", "0.05", "--count", "2", "--json")
    e.expect(w, 0)
    line = json.loads(w.stdout.splitlines()[0])["gpus"][0]
    check(line["power_from_energy"] is False and line["power_w"] == line["power_reading_w"], str(line))


def case_fault_gpu_lost(e):
    e.config({"count": 3, "faults": [{"gpu": 1, "lost": True}]})
    r = e.run("gpus")
    e.expect(r, 3, "GPU 1: nvmlDeviceGetHandleByIndex_v2: the GPU has fallen off the bus")
    check(r.stdout.count("NVIDIA H100") == 2, f"the other GPUs should be listed:\n{r.stdout}")
    e.expect(e.run("power", "set", "--gpus", "1", "--limit", "300", "--state-file", e.saved), 3, "GPU_IS_LOST")
    # Lost while being watched: the first samples work, then the GPU is gone.
    e.config({"count": 2, "faults": [{"gpu": 0, "lost": True, "after_calls": 20}]})
    w = e.run("power", "watch", "--interval", "0.02", "--count", "50")
    e.expect(w, 3, "GPU 0", "GPU_IS_LOST")
    check(len(w.stdout.strip().splitlines()) >= 2, f"expected some samples first:\n{w.stdout}")


def case_fault_slow(e):
    e.config({"count": 2, "faults": [{"function": "nvmlDeviceGetPowerUsage", "gpu": 0, "delay_ms": 300, "times": 1}]})
    start = time.monotonic()
    r = e.run("gpus")
    elapsed = time.monotonic() - start
    e.expect(r, 0, "nvmlDeviceGetPowerUsage took")
    check(elapsed >= 0.3, f"the slow call took only {elapsed:.3f} s")


def case_fault_set_rejected(e):
    e.config({"count": 2, "faults": [{"function": "nvmlDeviceSetPowerManagementLimit", "error": "INVALID_ARGUMENT"}]})
    r = e.run("power", "set", "--gpus", "0", "--limit", "300", "--state-file", e.saved)
    e.expect(r, 2, "allowed range 200-700 W")
    check(e.limits() == [700.0, 700.0], "limits changed")


def case_fault_partial_write(e):
    # GPU 0's write succeeds, GPU 1's is refused: GPU 0 is rolled back, nothing stays saved.
    e.config({"count": 2, "faults": [
        {"function": "nvmlDeviceSetPowerManagementLimit", "gpu": 1, "error": "NO_PERMISSION"}]})
    r = e.run("power", "set", "--gpus", "0,1", "--limit", "300", "--state-file", e.saved)
    e.expect(r, 4, "GPU 1", "root or CAP_SYS_ADMIN")
    check(e.limits() == [700.0, 700.0], f"not rolled back: {e.limits()}")


def case_bad_config(e):
    e.config({"count": 2, "load": {"kind": "warp-drive"}})
    e.expect(e.run("gpus"), 1, "unknown kind 'warp-drive'")


def hold_then_signal(e, sig):
    p = e.start("power", "set", "--gpus", "0,2", "--limit", "280", "--hold", "--state-file", e.saved)
    wait_for_line(p, "holding")
    check(e.limits()[0] == 280.0 and e.limits()[2] == 280.0, f"limits while holding {e.limits()}")
    check(os.path.exists(e.saved), "no state file while holding")
    p.send_signal(sig)
    out, err = p.communicate(timeout=20)
    check(p.returncode == 0, f"exit {p.returncode} after {sig}: {out} {err}")
    check("restored power limit 700.0 W" in out, out)
    check(e.limits() == [700.0] * 8, f"not restored after {sig}: {e.limits()}")


def case_hold_sigint(e):
    hold_then_signal(e, signal.SIGINT)


def case_hold_sigterm(e):
    hold_then_signal(e, signal.SIGTERM)


def case_hold_duration(e):
    r = e.run("power", "set", "--gpus", "1", "--limit", "333", "--hold", "--duration", "0.3", "--state-file", e.saved)
    e.expect(r, 0, "holding for 0.3 s", "GPU 1: restored power limit 700.0 W", stream="stdout")
    check(e.limits() == [700.0] * 8, f"not restored at normal exit: {e.limits()}")


def case_restore_after_kill(e):
    e.config({"count": 4, "load": "decode"})
    p = e.start("power", "set", "--gpus", "1,3", "--limit", "250", "--hold", "--state-file", e.saved)
    wait_for_line(p, "holding")
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=20)
    check(e.limits() == [700.0, 250.0, 700.0, 250.0], f"after SIGKILL {e.limits()}")
    check(e.gpus()[1]["throttle_reasons"] == ["sw_power_cap"], "the cap should bind under decode load")
    r = e.run("power", "restore", "--state-file", e.saved)
    e.expect(r, 0, "restored 2 GPU(s)", stream="stdout")
    check(e.limits() == [700.0] * 4, f"after restore {e.limits()}")
    check(not os.path.exists(e.saved), "state file left after restore")


def case_watch(e):
    e.config({"count": 2, "load": "decode"})
    r = e.run("power", "watch", "--interval", "0.2", "--count", "3", "--json")
    e.expect(r, 0)
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    check(len(lines) == 3, f"{len(lines)} samples")
    for rec in lines:
        check(len(rec["gpus"]) == 2, str(rec))
        for g in rec["gpus"]:
            check(g["power_from_energy"], str(g))
            check(abs(g["power_w"] - g["power_reading_w"]) < 0.05 * g["power_reading_w"],
                  f"energy-delta power {g['power_w']} vs reading {g['power_reading_w']}")
            check(g["energy_delta_j"] > 0.15 * g["power_reading_w"], str(g))
    text = e.run("power", "watch", "--interval", "0.1", "--count", "2", "--gpus", "1")
    e.expect(text, 0, "gpu1", stream="stdout")
    check(len(text.stdout.strip().splitlines()) == 3 and "gpu0" not in text.stdout, text.stdout)
    e.expect(e.run("power", "watch", "--interval", "0"), 2, "--interval")


def case_watch_ctrl_c(e):
    p = e.start("power", "watch", "--interval", "0.1")
    lines = wait_for_line(p, " W ")
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    check(p.returncode == 0, f"exit {p.returncode}: {err}")
    check(len(lines) + len(out.splitlines()) >= 2, f"{lines} {out}")
    check("Traceback" not in err and "error" not in err, err)


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}




def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pals", required=True)
    parser.add_argument("--fake-lib", required=True)
    parser.add_argument("--case", default="all")
    parser.add_argument("--expect-cases", help="comma-separated case list that must match this file's")
    args = parser.parse_args()
    names, rc = select_cases(CASES, args.case, args.expect_cases, "test_power_cli.py")
    if names is None:
        return rc
    results = [run_case(n, CASES[n], lambda folder: Env(args.pals, args.fake_lib, folder), "pals_cli")
               for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
