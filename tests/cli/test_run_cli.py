#!/usr/bin/env python3
"""CLI tests of `pals run` (the live daemon) against the fake libnvidia-ml.so.1 and a vLLM stand-in.

Plain python3, no pytest: `test_run_cli.py --pals PATH --fake-lib PATH --source-dir DIR --case NAME`
runs one case (ctest runs each as `cli.run.<case>`, tests/cli/CMakeLists.txt); `--case all` runs
every case. The vLLM stand-in is an http.server thread in this process serving a /metrics text
whose counters grow with every scrape (its latency can be made high). Each case gets a private
folder for the fake driver's state, the daemon's config, token, saved controls and batch-cap
files, and ends by checking that no GPU limit was left changed.
"""

import argparse
import http.server
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from cli_harness import CaseFailure, check, expect, run_case, select_cases

DEFAULT_LIMIT_W = 700.0
TOKEN = "s3cret-token"
PERIOD_S = 0.5




# ---- the vLLM stand-in ----------------------------------------------------------------------------

ITL_BOUNDS = ["0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"]
LATENCY_BOUNDS = ["0.1", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]


ACK = struct.Struct("<8sQQQQ")  # docs/vllm.md: PALSACK1, applied, requested, launch, time_us


class VllmStandIn:
    """Serves GET /metrics like a busy vLLM server: each scrape adds 100 requests' worth of tokens.
    `itl_s` is where every inter-token latency falls (above the TPOT SLO: the batch must shrink).

    With `cap_file`, it also plays the PALS scheduler's side of the batch cap (`ack`): "apply"
    reads the cap file and acknowledges applying it in `<cap_file>.ack` (every 0.1 s), "ignore"
    acknowledges reading it but running at `launch` (an engine that ignores the cap), None
    writes nothing (vLLM without the PALS scheduler). `ack` may change while it runs."""

    def __init__(self, port=0, itl_s=0.02, cap_file=None, ack="apply", launch=256):
        self.itl_s = itl_s
        self.scrapes = 0
        self.lock = threading.Lock()
        self.port = port
        self.server = None
        self.thread = None
        self.cap_file = cap_file
        self.ack = ack
        self.launch = launch
        self.acking = None
        self.stop_acking = threading.Event()
        self.start()
        if cap_file:
            self.acking = threading.Thread(target=self.ack_loop, daemon=True)
            self.acking.start()

    def ack_loop(self):
        while not self.stop_acking.wait(0.1):
            mode = self.ack
            if mode is None:
                continue
            try:
                with open(self.cap_file, "rb") as f:
                    data = f.read(9)
                requested = struct.unpack("<Q", data)[0] if len(data) == 8 else 0
            except OSError:
                requested = 0
            applied = min(requested, self.launch) if requested and mode == "apply" else self.launch
            tmp = self.cap_file + ".ack.tmp"
            with open(tmp, "wb") as f:
                f.write(ACK.pack(b"PALSACK1", applied, requested, self.launch, int(time.time() * 1e6)))
            os.replace(tmp, self.cap_file + ".ack")

    def metrics(self):
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        labels = 'engine="0",model_name="m"'
        lines = []

        def gauge(name, v):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name}{{{labels}}} {v}")

        def counter(name, v, extra=""):
            lines.append(f"# TYPE {name} counter")
            lines.append(f"{name}{{{labels}{extra}}} {v}")

        def histogram(name, bounds, value, count):
            lines.append(f"# TYPE {name} histogram")
            for le in bounds:
                inside = le == "+Inf" or value <= float(le)
                lines.append(f'{name}_bucket{{engine="0",le="{le}",model_name="m"}} {count if inside else 0}')
            lines.append(f"{name}_sum{{{labels}}} {value * count}")
            lines.append(f"{name}_count{{{labels}}} {count}")

        gauge("vllm:num_requests_running", 64)
        gauge("vllm:num_requests_waiting", 0)
        gauge("vllm:kv_cache_usage_perc", 0.4)
        counter("vllm:prompt_tokens_total", 50000 * n)
        counter("vllm:generation_tokens_total", 20000 * n)
        counter("vllm:request_success_total", 100 * n, ',finished_reason="stop"')
        counter("vllm:num_preemptions_total", 0)
        histogram("vllm:time_to_first_token_seconds", LATENCY_BOUNDS, 0.3, 100 * n)
        histogram("vllm:inter_token_latency_seconds", ITL_BOUNDS, self.itl_s, 20000 * n)
        histogram("vllm:e2e_request_latency_seconds", LATENCY_BOUNDS, 4.0, 100 * n)
        return ("\n".join(lines) + "\n").encode()

    def start(self):
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = stand_in.metrics()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_acking.set()
        if self.acking:
            self.acking.join()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def url(self):
        return f"http://127.0.0.1:{self.port}"


# ---- one case's world -----------------------------------------------------------------------------

class Env:
    def __init__(self, pals, fake_lib, source_dir, shared_dir, folder):
        self.shared_dir = shared_dir
        self.pals = pals
        self.fake_lib = fake_lib
        self.source_dir = source_dir
        self.folder = folder
        self.state = os.path.join(folder, "fake_state.json")
        self.saved = os.path.join(folder, "saved_controls.json")
        self.token = os.path.join(folder, "token")
        with open(self.token, "w") as f:
            f.write(TOKEN + "\n")
        self.fake_config = None
        self.stand_ins = []

    def path(self, name):
        return os.path.join(self.folder, name)

    def config_fake(self, obj):
        self.fake_config = self.path("fake_nvml.json")
        with open(self.fake_config, "w") as f:
            json.dump(obj, f)

    def environ(self, extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
        env["PALS_NVML_LIB"] = self.fake_lib
        env["PALS_FAKE_NVML_STATE"] = self.state
        if self.fake_config:
            env["PALS_FAKE_NVML_CONFIG"] = self.fake_config
        env.update(extra or {})
        return env

    def run(self, *args, env=None, timeout=60):
        return subprocess.run([self.pals, *args], env=self.environ(env), capture_output=True, text=True,
                              timeout=timeout)

    expect = staticmethod(expect)

    def limits(self):
        r = self.run("gpus", "--json")
        self.expect(r, 0)
        return [g["power_limit_w"] for g in json.loads(r.stdout)["gpus"]]

    def write_config(self, text, name="pals.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def stand_in(self, **kwargs):
        s = VllmStandIn(**kwargs)
        self.stand_ins.append(s)
        return s

    def config_text(self, groups, policy="cap-only", budget_w=1200, extra="", max_num_seqs=256):
        text = (f'policy = "{policy}"\nbudget_w = {budget_w}\nperiod_s = {PERIOD_S}\n'
                f'latency_window_s = 2.0\nlisten = "127.0.0.1:0"\ntoken_file = "token"\n'
                f'saved_controls = "saved_controls.json"\nretry_periods = 2\nlog_level = "info"\n{extra}\n')
        for i, (url, gpus) in enumerate(groups):
            text += (f'[[group]]\nurl = "{url}"\ngpus = {json.dumps(gpus)}\nmax_num_seqs = {max_num_seqs}\n'
                     f'batch_cap_file = "batch_cap_{i}"\n\n')
        return text

    def assert_untouched(self):
        check(not os.path.exists(self.saved), f"{self.saved} was left behind")
        if not os.path.exists(self.state):
            return
        with open(self.state) as f:
            state = json.load(f)
        for i, d in enumerate(state["devices"]):
            check(d["limit_w"] == DEFAULT_LIMIT_W, f"GPU {i} left at {d['limit_w']} W")
            check(d["locked_max_mhz"] == 0, f"GPU {i} left with locked clocks")

    def close(self):
        for s in self.stand_ins:
            try:
                s.stop()
            except Exception:  # already stopped
                pass


class Daemon:
    """A running `pals run`; its API port comes from the "listening on" line."""

    def __init__(self, env, *args, extra_env=None):
        self.env = env
        self.stderr_path = env.path("daemon.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([env.pals, "run", *args], env=env.environ(extra_env), cwd=env.folder,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            self.proc.kill()
            raise CaseFailure(f"no 'listening on' line: {line!r}\n{self.log()}")
        self.base = line.strip().split("listening on ", 1)[1]

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def request(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, path):
        code, body = self.request("GET", path)
        check(code == 200, f"GET {path}: {code} {body}")
        return json.loads(body)

    def state_if(self, predicate):
        """/v1/state when it satisfies predicate, else None (also before the first period: 503)."""
        code, body = self.request("GET", "/v1/state")
        if code != 200:
            return None
        state = json.loads(body)
        return state if predicate(state) else None

    def wait_for(self, predicate, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, f"daemon exited ({self.proc.returncode}) waiting for {what}\n{self.log()}")
            last = predicate()
            if last:
                return last
            time.sleep(0.05)
        raise CaseFailure(f"timed out waiting for {what}\n{self.log()}")

    def health(self):
        code, body = self.request("GET", "/healthz")
        return json.loads(body)["status"] if code == 200 else f"http {code}"

    def stop(self, sig=signal.SIGTERM, expect_code=0):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise CaseFailure(f"daemon did not stop on {sig}\n{self.log()}")
        self.summary = self.proc.stdout.read()  # what `pals run` prints when it stops
        self.stderr.close()
        check(code == expect_code, f"daemon exit {code}, expected {expect_code}\n{self.log()}")


def read_batch_cap(path):
    with open(path, "rb") as f:
        data = f.read()
    check(len(data) == 8, f"{path}: {len(data)} bytes, expected 8")
    return struct.unpack("<Q", data)[0]


# ---- cases ----------------------------------------------------------------------------------------

def case_config_errors(e):
    s = e.stand_in()
    good_group = f'[[group]]\nurl = "{s.url()}"\ngpus = [0]\n'
    cases = [
        ("unknown.toml", 'policy = "cap-only"\nbudget_watts = 5\n' + good_group,
         ["unknown.toml:2:1: unknown key 'budget_watts'", "did you mean 'budget_w'"]),
        ("type.toml", 'policy = "cap-only"\nperiod_s = "fast"\n' + good_group,
         ["type.toml:2:1: period_s: must be a number"]),
        ("overlap.toml", 'policy = "cap-only"\n' + good_group + 'batch_cap_file = "a"\n'
         + '[[group]]\nurl = "http://127.0.0.1:1"\ngpus = [0, 1]\nbatch_cap_file = "b"\n',
         ["overlap.toml:8:1: group[1].gpus: GPU 0 is also in group 0"]),
        ("url.toml", 'policy = "cap-only"\n[[group]]\nurl = "https://127.0.0.1:8000"\ngpus = [0]\n',
         ["url.toml:3:1: group[0].url:", "only http://"]),
        ("nomodel.toml", 'policy = "pals"\n' + good_group,
         ["nomodel.toml:1:1: policy: policy 'pals' needs power_model"]),
        ("syntax.toml", 'policy = "cap-only\n', ["syntax.toml:1:"]),
    ]
    for name, text, expected in cases:
        path = e.write_config(text, name)
        for extra in ([], ["--check"]):
            e.expect(e.run("run", "--config", path, *extra), 2, *expected)
    ok = e.write_config('policy = "cap-only"\n' + good_group, "ok.toml")
    e.expect(e.run("run", "--config", ok, "--period-s", "abc"), 2, "--period-s: must be a number, got 'abc'")
    e.expect(e.run("run", "--config", ok, env={"PALS_BUDGET_W": "lots"}), 2,
             "PALS_BUDGET_W: must be a number, got 'lots'")
    e.expect(e.run("run", "--config", ok, "--group", "url=http://127.0.0.1:1,gpu=0"), 2,
             "--group #1: unknown key 'gpu'")
    e.expect(e.run("run", "--config", "/nonexistent/pals.toml"), 2, "/nonexistent/pals.toml")
    # GPUs are checked against NVML at start (the fake has 8): nothing is written.
    e.expect(e.run("run", "--config", ok, "--group", f"url={s.url()},gpus=7+8"), 2,
             "--group #1: gpus: GPU 8 does not exist (NVML reports 8 GPUs: 0-7)")
    e.expect(e.run("run", "--config", ok, env={"PALS_NVML_LIB": e.path("missing/libnvidia-ml.so.1")}), 3)


def case_check_deploy(e):
    deploy = os.path.join(e.source_dir, "deploy", "pals.toml")
    # --check touches no GPU: it works without any NVML library.
    r = e.run("run", "--config", deploy, "--check", env={"PALS_NVML_LIB": e.path("missing.so")})
    e.expect(r, 0, "[[group]]", 'policy = "pals"', stream="stdout")
    r = e.run("run", "--check", "--json", "--budget-w", "3000", env={"PALS_CONFIG": deploy, "PALS_SLO_TPOT_S": "0.05"})
    e.expect(r, 0)
    cfg = json.loads(r.stdout)
    check(cfg["budget_w"] == 3000 and cfg["origins"]["budget_w"] == "--budget-w", str(cfg))
    check(cfg["slo_tpot_s"] == 0.05 and cfg["origins"]["slo_tpot_s"] == "PALS_SLO_TPOT_S", str(cfg))
    check(len(cfg["group"]) == 2 and cfg["group"][1]["gpus"] == [4, 5, 6, 7], str(cfg["group"]))
    # The printed TOML is a valid configuration itself.
    r = e.run("run", "--config", deploy, "--check")
    again = e.write_config(r.stdout, "again.toml")
    e.expect(e.run("run", "--config", again, "--check"), 0)


def case_budget_api(e):
    s = e.stand_in()
    # An operator's limit on GPU 1, saved by `pals power set` in its own state file.
    other_state = e.path("operator_saved.json")
    e.expect(e.run("power", "set", "--gpus", "1", "--limit", "650", "--state-file", other_state), 0)
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=1200))
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: d.health() == "ok", "healthz ok")
        state = d.wait_for(lambda: d.state_if(lambda st: st["decisions_total"] >= 1),
                           "a first decision")
        check(state["policy"] == "cap-only" and not state["degraded"], str(state))
        check(len(state["groups"]) == 1 and state["groups"][0]["gpus"] == [0, 1], str(state["groups"]))
        check(state["groups"][0]["power_cap_w"] == 600.0, f"cap {state['groups'][0]}")
        check(state["budget_w"] == 1200.0, str(state))
        check(e.limits()[:2] == [600.0, 600.0], f"limits {e.limits()}")

        code, body = d.request("PUT", "/v1/budget", {"watts": 800})
        check(code == 401, f"PUT without token: {code} {body}")
        code, body = d.request("PUT", "/v1/budget", {"watts": 800}, token="wrong")
        check(code == 401, f"PUT with a wrong token: {code} {body}")
        check(e.limits()[:2] == [600.0, 600.0], "a refused PUT changed the limits")

        t0 = time.monotonic()
        code, body = d.request("PUT", "/v1/budget", {"watts": 800}, token=TOKEN)
        check(code == 200, f"PUT with token: {code} {body}")
        d.wait_for(lambda: e.limits()[:2] == [400.0, 400.0], "the fake GPUs' limits to follow", timeout=5)
        elapsed = time.monotonic() - t0
        print(f"limits followed the budget change in {elapsed:.3f} s (period {PERIOD_S} s)")
        check(elapsed <= 2 * PERIOD_S + 0.25, f"limits followed after {elapsed:.2f} s, more than 2 periods")
        # The daemon writes the limits, then publishes the state: the two are not atomic.
        d.wait_for(lambda: d.state_if(lambda st: st["budget_w"] == 800.0), "budget_w 800 in /v1/state",
                   timeout=2)
        metrics = d.request("GET", "/metrics")[1]
        check("pals_budget_updates_total 1" in metrics, metrics)
        check("pals_power_budget_watts 800" in metrics, metrics)
        check("pals_degraded 0" in metrics, metrics)
        check("budget changed to 800 W" in d.log(), d.log())

        # {"watts": null} clears the budget: the caps go back to the maximum.
        code, body = d.request("PUT", "/v1/budget", {"watts": None}, token=TOKEN)
        check(code == 200, f"PUT null: {code} {body}")
        d.wait_for(lambda: e.limits()[:2] == [700.0, 700.0], "the limits to rise without a budget",
                   timeout=5)
        d.wait_for(lambda: d.state_if(lambda st: st["budget_w"] is None), "no budget (null) in /v1/state",
                   timeout=2)
        check("budget cleared" in d.log(), d.log())
    finally:
        if d.proc.poll() is None:
            d.stop()
    # On stop, a summary of the run on stdout.
    check(re.search(r"pals run: \d+ s, [0-9.]+ kJ, \d+ output tokens, .* tokens/J, \d+ s over budget, "
                    r"\d+ cap changes", d.summary), f"summary: {d.summary!r}")
    # Back to the values found at start (650 W on GPU 1 is the operator's), not the defaults.
    check(e.limits()[:2] == [700.0, 650.0], f"limits after SIGTERM: {e.limits()}")
    check(not os.path.exists(e.saved), "the daemon left its saved-controls file")
    check("saved limits restored" in d.log(), d.log())
    e.expect(e.run("power", "restore", "--state-file", other_state), 0)


def case_batch_cap_file(e):
    cap_file = e.path("batch_cap_0")
    # ITL far above the 0.1 s TPOT SLO: batch-only shrinks the batch; the stand-in applies it.
    s = e.stand_in(itl_s=0.5, cap_file=cap_file)
    cfg = e.write_config(e.config_text([(s.url(), [2])], policy="batch-only", budget_w=0))
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: os.path.exists(cap_file), "the batch-cap file")
        cap = read_batch_cap(cap_file)
        check(1 <= cap < 256, f"batch cap {cap}")
        state = d.wait_for(lambda: d.state_if(lambda st: st["groups"][0]["batch_cap"] < 256),
                           "the batch cap in /v1/state")
        metrics = d.request("GET", "/metrics")[1]
        check("pals_batch_cap_changes_total 0" not in metrics, metrics)
        check('pals_group_batch_cap{group="0"}' in metrics, metrics)
        check(state["generation_tokens"] > 0, f"tokens {state['generation_tokens']}")
        # Requested and applied, as the engine acknowledges it.
        state = d.wait_for(lambda: d.state_if(
            lambda st: st["groups"][0]["batch_cap_ack"] == "ok"
            and st["groups"][0]["batch_cap_applied"] == st["groups"][0]["batch_cap_requested"]),
            "the engine's acknowledgement in /v1/state")
        g = state["groups"][0]
        # requested/applied are the pair of the last reading: requested trails batch_cap (this
        # period's decision) by a period while the policy keeps shrinking the batch.
        check(1 <= g["batch_cap_requested"] < 256 and g["engine_max_num_seqs"] == 256, str(g))
        metrics = d.request("GET", "/metrics")[1]
        check(re.search(r'pals_group_batch_cap_applied\{group="0"\} \d+', metrics), metrics)
        check('pals_group_batch_cap_mismatch{group="0"} 0' in metrics, metrics)
        check(d.health() == "ok" and not state["degraded"], str(state))
    finally:
        if d.proc.poll() is None:
            d.stop(signal.SIGINT)
    # A clean exit removes the cap file: the engine is back at its launch batch cap.
    check(not os.path.exists(cap_file), "the batch-cap file is left after a clean exit")

    # After a kill -9 the cap outlives the daemon until `pals power restore` (or its expiry).
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: os.path.exists(cap_file) and read_batch_cap(cap_file) < 256,
                   "a batch cap below the launch value")
    finally:
        d.proc.kill()
        d.proc.wait(timeout=10)
        d.stderr.close()
    check(os.path.exists(cap_file), "the cap file should outlive a killed daemon")
    with open(e.saved) as f:
        check(cap_file in json.load(f).get("engine_cap_files", []), "cap file not in the state file")
    r = e.run("power", "restore", "--state-file", e.saved)
    e.expect(r, 0)
    check(not os.path.exists(cap_file), "pals power restore left the batch-cap file")


def case_batch_cap_fault(e):
    # vLLM without the PALS scheduler: the cap is requested and never acknowledged. After
    # batch_cap_fault_periods (3) periods the daemon degrades, says why, counts it, and keeps the
    # budget; it resumes once the engine acknowledges, and degrades again when an engine reads the
    # cap but does not apply it.
    cap_file = e.path("batch_cap_0")
    s = e.stand_in(itl_s=0.5, cap_file=cap_file, ack=None)
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], policy="batch-only", budget_w=1000))
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: d.health() == "degraded", "healthz degraded (no acknowledgement)")
        code, body = d.request("GET", "/healthz")
        reason = json.loads(body)["reason"]
        check("not acknowledged" in reason and "pals_vllm.scheduler.PalsScheduler" in reason
              and cap_file + ".ack" in reason, reason)
        metrics = d.request("GET", "/metrics")[1]
        check("pals_batch_cap_faults_total 1" in metrics and "pals_degraded 1" in metrics, metrics)
        check("control degraded: group 0: batch cap" in d.log(), d.log())
        state = d.json("/v1/state")
        g = state["groups"][0]
        check(g["batch_cap_ack"] == "missing" and g["batch_cap_applied"] is None, str(g))
        check(sum(e.limits()[:2]) <= 1000.0, f"limits {e.limits()} above the 1000 W budget")
        # Retries fail while nothing acknowledges: still one fault.
        time.sleep(4 * PERIOD_S)
        check(d.health() == "degraded", "resumed without an acknowledgement")
        s.ack = "apply"
        d.wait_for(lambda: d.health() == "ok", "control resumed once the engine acknowledges")
        d.wait_for(lambda: d.state_if(lambda st: st["groups"][0]["batch_cap_ack"] == "ok"), "ack ok")
        s.ack = "ignore"
        d.wait_for(lambda: d.health() == "degraded", "degraded again (cap read, not applied)")
        reason = json.loads(d.request("GET", "/healthz")[1])["reason"]
        check("but the engine applies 256" in reason, reason)
        check("pals_batch_cap_faults_total 2" in d.request("GET", "/metrics")[1], "second fault")
        check(sum(e.limits()[:2]) <= 1000.0, f"limits {e.limits()} above the 1000 W budget")
    finally:
        if d.proc.poll() is None:
            d.stop()
    check(e.limits()[:2] == [700.0, 700.0], f"limits after SIGTERM: {e.limits()}")


def case_sim_serve_ignores_cap(e):
    # The stand-in engine of the live tests, `pals sim-serve`, playing an engine that reads the cap
    # but does not apply it (--batch-cap-mode ignore), under load, with the daemon's batch-only
    # policy shrinking the batch (a TPOT SLO far below its ITL): a mismatch, then a fault.
    model = os.path.join(e.shared_dir, "models", "meta-llama__Llama-3.1-8B-Instruct.json")
    if not os.path.exists(model):
        print(f"skipped: {model} is missing")
        return
    sim = e.path("sim")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
    server_log = open(e.path("sim-serve.stderr"), "w")
    server = subprocess.Popen([e.pals, "sim-serve", "--model", model, "--port", "0", "--state-dir", sim,
                               "--max-num-seqs", "64", "--batch-cap-mode", "ignore"],
                              env=env, stdout=subprocess.PIPE, stderr=server_log, text=True)
    stop_load = threading.Event()
    load = []
    d = None
    try:
        line = server.stdout.readline()
        check("listening on http://" in line, f"sim-serve: {line!r}")
        base = line.strip().split("listening on ", 1)[1]

        def client():
            body = json.dumps({"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": "x",
                               "max_tokens": 100}).encode()
            while not stop_load.is_set():
                req = urllib.request.Request(base + "/v1/completions", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(req, timeout=30).read()
                except OSError:
                    time.sleep(0.05)

        load = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in load:
            t.start()
        cfg = e.write_config(
            f'policy = "batch-only"\nperiod_s = {PERIOD_S}\nlatency_window_s = 2.0\nslo_tpot_s = 0.001\n'
            f'listen = "127.0.0.1:0"\ntoken_file = "token"\nsaved_controls = "saved_controls.json"\n'
            f'retry_periods = 2\n[[group]]\nurl = "{base}"\ngpus = [0]\nmax_num_seqs = 64\n'
            f'batch_cap_file = "{os.path.join(sim, "batch_cap")}"\n')
        d = Daemon(e, "--config", cfg, extra_env={
            "PALS_FAKE_NVML_CONFIG": os.path.join(sim, "fake-nvml.json"),
            "PALS_FAKE_NVML_STATE": os.path.join(sim, "fake-nvml-state.json")})
        state = d.wait_for(lambda: d.state_if(lambda st: st["groups"][0]["batch_cap_ack"] == "mismatch"),
                           "a mismatch: the cap read, not applied", timeout=20)
        g = state["groups"][0]
        check(g["batch_cap_applied"] == 64 and g["batch_cap_requested"] < 64, str(g))
        d.wait_for(lambda: d.health() == "degraded", "healthz degraded", timeout=10)
        reason = json.loads(d.request("GET", "/healthz")[1])["reason"]
        check("but the engine applies 64" in reason and "launch max_num_seqs 64" in reason, reason)
        check("pals_batch_cap_faults_total 1" in d.request("GET", "/metrics")[1], "fault counted")
    finally:
        stop_load.set()
        if d is not None and d.proc.poll() is None:
            d.stop()
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            code = None
        server_log.close()
    check(code == 0, f"sim-serve exit {code}")


def case_max_num_seqs_check(e):
    # The engine was launched with --max-num-seqs 128, pals.toml says 256: PALS says so at start
    # (naming the group and both values) and caps at most 128.
    cap_file = e.path("batch_cap_0")
    s = e.stand_in(itl_s=0.02, cap_file=cap_file, launch=128)
    cfg = e.write_config(e.config_text([(s.url(), [0])], policy="batch-only", budget_w=0))
    d = Daemon(e, "--config", cfg)
    try:
        state = d.wait_for(lambda: d.state_if(
            lambda st: st["groups"][0]["engine_max_num_seqs"] == 128 and st["decisions_total"] >= 3),
            "the engine's launch max_num_seqs in /v1/state")
        check(state["groups"][0]["batch_cap"] <= 128, str(state["groups"][0]))
        check("group0: the engine was launched with max_num_seqs 128" in d.log()
              and "the group's max_num_seqs is 256" in d.log(), d.log())
        check('pals_group_engine_max_num_seqs{group="0"} 128' in d.request("GET", "/metrics")[1],
              "pals_group_engine_max_num_seqs")
        check(d.health() == "ok", d.health())
    finally:
        if d.proc.poll() is None:
            d.stop()


def case_vllm_outage(e):
    s = e.stand_in()
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=1000))
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: d.health() == "ok" and e.limits()[:2] == [500.0, 500.0], "control at 500 W")
        port = s.port
        s.stop()
        t0 = time.monotonic()
        d.wait_for(lambda: d.health() == "degraded", "healthz degraded")
        print(f"degraded {time.monotonic() - t0:.3f} s after the stand-in went away")
        # Degraded: the saved limits are back, lowered to an even share of the budget (the
        # policy is not running, the budget still holds); the API keeps answering and a budget
        # change is held at once.
        d.wait_for(lambda: e.limits()[:2] == [500.0, 500.0], "the budget held while degraded")
        code, body = d.request("PUT", "/v1/budget", {"watts": 800}, token=TOKEN)
        check(code == 200, f"PUT while degraded: {code} {body}")
        d.wait_for(lambda: e.limits()[:2] == [400.0, 400.0], "a budget change held while degraded")
        state = d.json("/v1/state")
        check(state["degraded"] and state["errors_total"] >= 1, str(state))
        check("degraded" in state["last_decision"], state["last_decision"])
        metrics = d.request("GET", "/metrics")[1]
        check("pals_degraded 1" in metrics, metrics)
        s2 = e.stand_in(port=port)
        t0 = time.monotonic()
        d.wait_for(lambda: d.health() == "ok", "healthz ok again")
        d.wait_for(lambda: d.state_if(lambda st: not st["degraded"] and st["decisions_total"] > 0
                                      and st["groups"][0]["power_cap_w"] == 400.0), "control again")
        check(e.limits()[:2] == [400.0, 400.0], f"limits after resuming: {e.limits()}")
        print(f"control resumed {time.monotonic() - t0:.3f} s after the stand-in came back")
        check(s2.scrapes > 0, "the new stand-in was not scraped")
        log = d.log()
        check("control degraded:" in log and "control resumed after" in log, log)
    finally:
        if d.proc.poll() is None:
            d.stop()
    check(e.limits()[:2] == [700.0, 700.0], f"limits after SIGTERM: {e.limits()}")


def case_pals_policy(e):
    profile = e.path("profile.csv")
    model = e.path("model.json")
    model_spec = os.path.join(e.shared_dir, "models", "meta-llama__Llama-3.1-8B-Instruct.json")
    e.expect(e.run("profile", "--model", model_spec, "--caps", "300,500,700", "--batches", "8,32,128",
                   "--warmup", "2", "--window", "5", "--out", profile, "--quiet"), 0)
    e.expect(e.run("fit", profile, "--out", model), 0)
    # The pals policy sets batch caps: the stand-ins acknowledge them as the PALS scheduler does.
    s0 = e.stand_in(cap_file=e.path("batch_cap_0"))
    s1 = e.stand_in(cap_file=e.path("batch_cap_1"))
    cfg = e.write_config(e.config_text([(s0.url(), [0]), (s1.url(), [1])], policy="pals", budget_w=900,
                                       extra='power_model = "model.json"\nworkload = "default"\n'))
    d = Daemon(e, "--config", cfg)
    try:
        state = d.wait_for(lambda: d.state_if(lambda st: st["decisions_total"] >= 6),
                           "six decisions")
        check(state["policy"] == "pals" and not state["degraded"], str(state))
        check(all(g["batch_cap_ack"] in ("ok", "unchecked") for g in state["groups"]), str(state))
        check(len(state["groups"]) == 2, str(state["groups"]))
        caps = [g["power_cap_w"] for g in state["groups"]]
        check(sum(caps) <= 900.0 + 1e-6, f"caps {caps} above the 900 W budget")
        limits = e.limits()
        # NVML takes whole milliwatts: a cap is written rounded down to one.
        check(all(0.0 <= caps[i] - limits[i] < 1e-3 for i in range(2)),
              f"limits {limits[:2]} vs caps {caps}")
    finally:
        if d.proc.poll() is None:
            d.stop(signal.SIGINT)
    check(e.limits()[:2] == [700.0, 700.0], f"limits after SIGINT: {e.limits()}")


def case_permission_denied(e):
    e.config_fake({"root": False})
    s = e.stand_in()
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=800))
    r = e.run("run", "--config", cfg, timeout=30)
    e.expect(r, 4, "insufficient permissions")


def case_infeasible_budget(e):
    # The fake's H100s cannot go below 200 W each: 2 GPUs hold no less than 400 W.
    s = e.stand_in()
    low = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=300), "low.toml")
    e.expect(e.run("run", "--config", low, timeout=30), 2,
             "budget_w: 300 W is below the minimum of 400 W")
    e.expect(e.run("run", "--config", low, "--budget-w", "350", timeout=30), 2,
             "--budget-w: 350 W is below the minimum of 400 W")
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=800))
    d = Daemon(e, "--config", cfg)
    try:
        d.wait_for(lambda: d.health() == "ok", "healthz ok")
        code, body = d.request("PUT", "/v1/budget", {"watts": 399}, token=TOKEN)
        check(code == 409 and "below the minimum of 400 W" in body, f"PUT 399 W: {code} {body}")
        code, body = d.request("PUT", "/v1/budget", {"steps": [[0, 800], [60, 100]]}, token=TOKEN)
        check(code == 409 and "minimum of 400 W" in body, f"PUT a step of 100 W: {code} {body}")
        code, body = d.request("PUT", "/v1/budget", {"watts": 400}, token=TOKEN)
        check(code == 200, f"PUT 400 W: {code} {body}")
        d.wait_for(lambda: e.limits()[:2] == [200.0, 200.0], "the minimum caps", timeout=5)
        state = d.json("/v1/state")
        check(state["budget_feasible"] and state["budget_min_w"] == 400.0, str(state))
        check("pals_budget_feasible 1" in d.request("GET", "/metrics")[1], "pals_budget_feasible")
    finally:
        if d.proc.poll() is None:
            d.stop()


def case_permission_after_writes(e):
    # Writes succeed twice (700 -> 300 W on both GPUs), then NO_PERMISSION: the daemon must not
    # claim that nothing was changed, and must keep the saved controls for `pals power restore`.
    e.config_fake({"faults": [{"function": "nvmlDeviceSetPowerManagementLimit",
                               "error": "NO_PERMISSION", "after_calls": 2}]})
    s = e.stand_in()
    cfg = e.write_config(e.config_text([(s.url(), [0, 1])], budget_w=600))
    d = Daemon(e, "--config", cfg)
    d.wait_for(lambda: e.limits()[:2] == [300.0, 300.0], "the 300 W caps", timeout=10)
    code, body = d.request("PUT", "/v1/budget", {"watts": 500}, token=TOKEN)
    check(code == 200, f"PUT: {code} {body}")
    try:
        code = d.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        raise CaseFailure(f"the daemon did not stop after a refused write\n{d.log()}")
    d.stderr.close()
    log = d.log()
    check(code == 4, f"exit {code}, expected 4\n{log}")
    check("nothing was changed" not in log, log)
    check(f"pals power restore --state-file {e.saved}" in log, log)
    check(os.path.exists(e.saved), "the saved controls were discarded")
    check(e.limits()[:2] == [300.0, 300.0], f"limits {e.limits()}")
    with open(e.saved) as f:
        saved = json.load(f)
    check([g["power_limit_w"] for g in saved["gpus"]] == [700.0, 700.0], str(saved))
    # As root (no fault): the documented command puts the originals back.
    e.config_fake({})
    e.expect(e.run("power", "restore", "--state-file", e.saved), 0)
    check(e.limits()[:2] == [700.0, 700.0], f"limits after pals power restore: {e.limits()}")


CASES = {
    "config_errors": case_config_errors,
    "check_deploy": case_check_deploy,
    "budget_api": case_budget_api,
    "batch_cap_file": case_batch_cap_file,
    "batch_cap_fault": case_batch_cap_fault,
    "max_num_seqs_check": case_max_num_seqs_check,
    "sim_serve_ignores_cap": case_sim_serve_ignores_cap,
    "vllm_outage": case_vllm_outage,
    "pals_policy": case_pals_policy,
    "permission_denied": case_permission_denied,
    "infeasible_budget": case_infeasible_budget,
    "permission_after_writes": case_permission_after_writes,
}




def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pals", required=True)
    parser.add_argument("--fake-lib", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--shared-dir", help="the shared data folder (default: SOURCE/../shared)")
    parser.add_argument("--case", default="all")
    parser.add_argument("--expect-cases", help="comma-separated case list that must match this file's")
    args = parser.parse_args()
    names, rc = select_cases(CASES, args.case, args.expect_cases, "test_run_cli.py")
    if names is None:
        return rc
    args.pals, args.fake_lib, args.source_dir = (os.path.abspath(p) for p in (args.pals, args.fake_lib, args.source_dir))
    shared_dir = args.shared_dir or os.path.join(args.source_dir, "..", "shared")
    def make_env(folder):
        return Env(args.pals, args.fake_lib, args.source_dir, shared_dir, folder)

    results = [run_case(n, CASES[n], make_env, "pals-run") for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
