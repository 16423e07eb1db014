"""Helpers shared by the live-path scripts (tests/e2e/test_live_*.py, tools/soak.py): background
`pals` processes that print where they listen, HTTP on loopback, Prometheus text, checked runs."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_put_json(url, body, token, timeout=5.0):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_values(text, name):
    """{labels text: value} of the samples of `name` in a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name):]] = float(value)
    return out


class Process:
    """A background `pals` process whose first stdout line says where it listens."""

    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines = []
        self.base = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                self.base = line.split("listening on ", 1)[1].strip()
                break
        if self.base is None:
            self.proc.kill()
            raise Failure(f"{name} did not start: {self.lines}\n{self.stderr()}")
        # Keep draining stdout so the process never blocks on a full pipe.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stderr(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def terminate(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure(f"{self.name} did not exit within {timeout} s of SIGTERM\n{self.stderr()}")


def run(cmd, env, timeout):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def fake_nvml_env(env, fake_lib, state_dir):
    """`env` plus the variables that point NVML at sim-serve's fake GPUs in `state_dir`."""
    nvml_env = dict(env)
    nvml_env["PALS_NVML_LIB"] = fake_lib
    nvml_env["PALS_FAKE_NVML_CONFIG"] = os.path.join(state_dir, "fake-nvml.json")
    nvml_env["PALS_FAKE_NVML_STATE"] = os.path.join(state_dir, "fake-nvml-state.json")
    return nvml_env


def start_daemon(pals, folder, server, state_dir, nvml_env, token, settings, max_num_seqs):
    """Writes the token file and a pals.toml (the `settings` lines, then one group over GPUs 0-1
    of `server`), starts `pals run` and waits until it publishes a state. Returns the Process."""
    token_file = os.path.join(folder, "token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    config = os.path.join(folder, "pals.toml")
    with open(config, "w") as f:
        f.write("\n".join(settings) + f"""
listen = "127.0.0.1:0"
token_file = "{token_file}"
saved_controls = "{os.path.join(folder, 'saved_controls.json')}"

[[group]]
url = "{server.base}"
gpus = [0, 1]
max_num_seqs = {max_num_seqs}
batch_cap_file = "{os.path.join(state_dir, 'batch_cap')}"
""")
    daemon = Process("pals-run", [pals, "run", "--config", config], nvml_env, folder)
    deadline = time.time() + 15
    while True:
        try:
            json.loads(http_get(daemon.base + "/v1/state"))
            return daemon
        except OSError:
            if time.time() >= deadline:
                daemon.terminate()
                raise Failure(f"pals run published no state within 15 s\n{daemon.stderr()}")
            time.sleep(0.2)


def report_failure(error, procs):
    """Prints a Failure and the stderr of every process; returns the exit code 1."""
    print(f"FAIL: {error}", file=sys.stderr)
    for p in procs:
        print(f"--- {p.name} stderr ---\n{p.stderr()}", file=sys.stderr)
    return 1


def kill_all(procs):
    """Kills every process still running (the last resort of a script's `finally`)."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
