#!/usr/bin/env python3
"""A cluster power budget with the real thing (issue 16, docs/cluster.md): a 3-member etcd cluster
on loopback and 4 `pals run` daemons, each with its own fake-NVML node (2 simulated H100s) served
by its own `pals sim-serve` (Llama-3.1-8B, 2 replicas) under uneven load from `pals loadgen`.

Steps, and what is checked after each (the sum of the power limits in force is read every 100 ms
from the fake NVML state files of the nodes alive):
  1. the cluster budget is set (PUT /v1/cluster/budget on one node): one coordinator, every node
     allocated, the caps within the budget, the busiest node holding the largest share;
  2. the budget drops: the sum never exceeds the old budget, and is within the new one within 2
     control periods plus etcd round trips (the demand-response time is printed);
  3. the coordinator's node dies (SIGKILL of its daemon, its engine and its load: the node is
     gone): another node is elected, and the share above the dead node's floor (which stays
     reserved: it might be partitioned, not dead) is re-allocated within TTL + 2 periods;
  4. the etcd leader is killed (SIGKILL): nothing changes: no node falls back, the sum holds, a
     budget change still goes through;
  5. SIGTERM: every daemon exits 0, its caps at its floor (not the uncapped saved limits).
No daemon may crash at any time. Everything started is killed at the end, also on failure.

Plain python3: `test_cluster.py --pals PATH --fake-lib PATH --shared DIR [--etcd PATH] [--keep DIR]`.
Exit 77 (skipped) when etcd is not installed (tools/install_deps.sh installs etcd-server).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from live_harness import Failure, Process, check, http_get, kill_all

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
NODES = 4
GPUS_PER_NODE = 2
PERIOD_S = 0.5
LEASE_TTL_S = 3
TOKEN = "cluster-e2e"
RATES = [16.0, 6.0, 2.0, 0.5]  # requests/s per node: uneven load
BUDGET_1_W = 2600.0  # 4 nodes x 2 x 700 W = 5600 W uncapped; minimum 4 x 2 x 200 W = 1600 W
BUDGET_2_W = 2200.0
BUDGET_3_W = 2000.0
SAMPLE_S = 0.1
# The demand response must be in force within 2 control periods plus etcd round trips.
RESPONSE_LIMIT_S = 2 * PERIOD_S + 0.5
# A dead node's share moves within TTL + 2 periods (+ etcd's lease-expiry check, every 0.5 s).
REALLOCATE_LIMIT_S = LEASE_TTL_S + 2 * PERIOD_S + 0.5


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def http_put(url, body, token=TOKEN, timeout=5.0):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def etcd_post(endpoint, path, body, timeout=2.0):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Etcd:
    """A 3-member etcd cluster on loopback, data in `folder`."""

    def __init__(self, etcd, folder, members=3):
        ports = free_ports(2 * members)
        self.names = [f"e{i}" for i in range(members)]
        self.client = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(members)]
        self.peer = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(members)]
        initial = ",".join(f"{n}={p}" for n, p in zip(self.names, self.peer))
        self.procs = []
        self.logs = []
        for i, name in enumerate(self.names):
            log = open(os.path.join(folder, f"etcd-{name}.log"), "w")
            self.logs.append(log)
            self.procs.append(subprocess.Popen([
                etcd, "--name", name, "--data-dir", os.path.join(folder, f"etcd-{name}"),
                "--listen-client-urls", self.client[i], "--advertise-client-urls", self.client[i],
                "--listen-peer-urls", self.peer[i], "--initial-advertise-peer-urls", self.peer[i],
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "pals-e2e",
                # Fast failure detection on loopback: leader elections in about a second.
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.leader() is not None:
                return
            time.sleep(0.2)
        raise Failure("etcd cluster elected no leader within 30 s")

    def status(self, i):
        return etcd_post(self.client[i], "/v3/maintenance/status", {}, timeout=1.0)

    def leader(self):
        """Index of the leader member, or None."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                continue
            try:
                st = self.status(i)
            except OSError:
                continue
            leader_id = st.get("leader")
            for j, q in enumerate(self.procs):
                if q.poll() is not None:
                    continue
                try:
                    if self.status(j)["header"]["member_id"] == leader_id:
                        return j
                except (OSError, KeyError):
                    continue
        return None

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(timeout=10)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for log in self.logs:
            log.close()


class Node:
    """One node: sim-serve (its fake NVML GPUs), its load, and pals run."""

    def __init__(self, k, args, folder, env, etcd):
        self.name = f"n{k}"
        self.folder = os.path.join(folder, self.name)
        os.makedirs(self.folder)
        self.state_dir = os.path.join(self.folder, "sim")
        self.server = Process(f"{self.name}-sim-serve", [
            args.pals, "sim-serve", "--model", MODEL, "--tp", "1", "--replicas", str(GPUS_PER_NODE),
            "--max-num-seqs", "128", "--port", "0", "--state-dir", self.state_dir,
            "--tick-us", "5000"], env, self.folder)
        self.state_file = os.path.join(self.state_dir, "fake-nvml-state.json")
        self.nvml_env = dict(env)
        self.nvml_env["PALS_NVML_LIB"] = args.fake_lib
        self.nvml_env["PALS_FAKE_NVML_CONFIG"] = os.path.join(self.state_dir, "fake-nvml.json")
        self.nvml_env["PALS_FAKE_NVML_STATE"] = self.state_file
        token_file = os.path.join(self.folder, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        endpoints = ", ".join(f'"{e}"' for e in etcd.client)
        self.config = os.path.join(self.folder, "pals.toml")
        with open(self.config, "w") as f:
            f.write(f"""policy = "cap-only"
period_s = {PERIOD_S}
listen = "127.0.0.1:0"
token_file = "{token_file}"
saved_controls = "{os.path.join(self.folder, 'saved_controls.json')}"

[cluster]
endpoints = [{endpoints}]
name = "e2e"
node = "{self.name}"
lease_ttl_s = {LEASE_TTL_S}
request_timeout_s = 1.0

[[group]]
url = "{self.server.base}"
gpus = [0, 1]
max_num_seqs = 128
batch_cap_file = "{os.path.join(self.state_dir, 'batch_cap')}"
""")
        self.daemon = None
        self.loadgen = None
        self.alive = True

    def start_daemon(self, pals):
        self.daemon = Process(f"{self.name}-pals-run", [pals, "run", "--config", self.config],
                              self.nvml_env, self.folder)

    def start_load(self, pals, rate, seconds, env):
        if rate <= 0:
            return
        self.loadgen = subprocess.Popen(
            [pals, "loadgen", "--url", self.server.base, "--rate", str(rate), "--duration", str(seconds),
             "--input-len", "uniform:256:1024", "--output-len", "uniform:128:256", "--seed", "1",
             "--request-timeout", "60", "--json", "--out", os.path.join(self.folder, "loadgen.json")],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.folder, "loadgen.log"), "w"))

    def caps_w(self):
        """Sum of the power limits in force on this node's fake GPUs (None if unreadable now)."""
        for _ in range(5):
            try:
                with open(self.state_file) as f:
                    state = json.load(f)
                return sum(d["limit_w"] for d in state["devices"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.005)  # a write in progress
        return None

    def state(self):
        return json.loads(http_get(self.daemon.base + "/v1/state", timeout=2.0))

    def die(self):
        """Node death: the daemon, its engine and its load, SIGKILLed."""
        self.alive = False
        for p in (self.daemon.proc, self.server.proc, self.loadgen):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in (self.daemon.proc, self.server.proc, self.loadgen):
            if p is not None:
                p.wait(timeout=10)


class Sampler(threading.Thread):
    """Reads the sum of the caps in force of the live nodes every 100 ms."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes = nodes
        self.samples = []  # (t, sum W)
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop_flag.is_set():
            t = time.time()
            total = 0.0
            for n in self.nodes:
                if n.alive:
                    w = n.caps_w()
                    if w is None:
                        break
                    total += w
            else:
                with self.lock:
                    self.samples.append((t, total))
            self.stop_flag.wait(max(0.0, SAMPLE_S - (time.time() - t)))

    def between(self, t0, t1):
        with self.lock:
            return [(t, w) for t, w in self.samples if t0 <= t < t1]

    def first_at_or_below(self, t0, watts):
        with self.lock:
            for t, w in self.samples:
                if t >= t0 and w <= watts + 1e-3:
                    return t
        return None


def check_alive(nodes):
    for n in nodes:
        if n.alive:
            for p in (n.daemon, n.server):
                rc = p.proc.poll()
                check(rc is None, f"{p.name} exited with {rc} (a crash)\n{p.stderr()}")


def wait_for(what, predicate, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.1)
    raise Failure(f"timed out after {timeout} s waiting for {what} (last: {last})")


def cluster_states(nodes):
    return {n.name: n.state()["cluster"] for n in nodes if n.alive}


def coordinator(nodes):
    leaders = [name for name, c in cluster_states(nodes).items() if c["coordinator"]]
    return leaders[0] if len(leaders) == 1 else None


def allocations(nodes):
    """{node: allocation_w} of the live nodes (None while one has none)."""
    out = {}
    for name, c in cluster_states(nodes).items():
        if c["allocation_w"] is None:
            return None
        out[name] = c["allocation_w"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pals", required=True)
    ap.add_argument("--fake-lib", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    ap.add_argument("--keep", help="work in this folder and keep it (logs, configs)")
    args = ap.parse_args()
    if not os.access(args.etcd, os.X_OK):
        print(f"SKIP: no etcd at {args.etcd} (apt-get install etcd-server)")
        return 77
    folder = args.keep or tempfile.mkdtemp(prefix="pals-cluster-")
    os.makedirs(folder, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALS_")}
    env["PALS_SHARED_DIR"] = args.shared
    env["PALS_LOG_LEVEL"] = "info"
    etcd = None
    nodes = []
    sampler = None
    procs = []
    report = {}
    started = time.time()
    try:
        etcd = Etcd(args.etcd, folder)
        report["etcd_up_s"] = round(time.time() - started, 2)
        for k in range(NODES):
            nodes.append(Node(k, args, folder, env, etcd))
            procs.append(nodes[-1].server)
        for n in nodes:
            n.start_daemon(args.pals)
            procs.append(n.daemon)
        wait_for("4 members", lambda: all(c["member"] for c in cluster_states(nodes).values()), 20)
        for n, rate in zip(nodes, RATES):
            n.start_load(args.pals, rate, 120, env)
        sampler = Sampler(nodes)
        sampler.start()

        # 1. The cluster budget.
        t1 = time.time()
        status, body = http_put(nodes[1].daemon.base + "/v1/cluster/budget", {"watts": BUDGET_1_W})
        check(status == 200, f"PUT /v1/cluster/budget: {status} {body}")
        wait_for("one coordinator", lambda: coordinator(nodes), 10)
        alloc = wait_for("an allocation for every node",
                         lambda: (a := allocations(nodes)) and sum(a.values()) >= BUDGET_1_W - 50 and a, 15)
        time.sleep(4.0)  # the load's demand shows in the curves
        check_alive(nodes)
        worst = max(w for _, w in sampler.between(t1, time.time()))
        check(worst <= BUDGET_1_W + 1e-3, f"caps summed to {worst:.1f} W > {BUDGET_1_W} W after it was set")
        alloc = allocations(nodes)
        report["step1_allocations_w"] = {k: round(v) for k, v in alloc.items()}
        lead = next(c for c in cluster_states(nodes).values() if c["coordinator"])
        report["step1_demand_tok_s"] = {sh["node"]: round(sh["demand_tok_s"]) for sh in lead["shares"]}
        report["step1_power_w"] = {n.name: round(n.state()["power_w"]) for n in nodes}
        report["allocation_round_ms"] = round(1e3 * lead["last_round_s"], 2)
        check(alloc["n0"] > alloc["n3"], f"the busiest node (n0) should hold more than the idlest: {alloc}")

        # 2. Demand response: the budget drops.
        t2 = time.time()
        status, body = http_put(nodes[2].daemon.base + "/v1/cluster/budget", {"watts": BUDGET_2_W})
        check(status == 200, f"PUT /v1/cluster/budget: {status} {body}")
        time.sleep(RESPONSE_LIMIT_S + 2.0)
        check_alive(nodes)
        during = sampler.between(t2, time.time())
        worst = max(w for _, w in during)
        check(worst <= BUDGET_1_W + 1e-3, f"during the drop the caps summed to {worst:.1f} W > {BUDGET_1_W} W")
        reached = sampler.first_at_or_below(t2, BUDGET_2_W)
        check(reached is not None, f"the caps never went within {BUDGET_2_W} W: {during[-5:]}")
        response_s = reached - t2
        report["demand_response_s"] = round(response_s, 3)
        check(response_s <= RESPONSE_LIMIT_S, f"demand response took {response_s:.2f} s > {RESPONSE_LIMIT_S} s")
        after = [w for t, w in during if t >= t2 + RESPONSE_LIMIT_S]
        check(after and max(after) <= BUDGET_2_W + 1e-3,
              f"caps above {BUDGET_2_W} W after the response time: {max(after) if after else None}")

        # 3. The coordinator's node dies.
        dead_name = coordinator(nodes)
        check(dead_name is not None, "no single coordinator before the kill")
        dead = next(n for n in nodes if n.name == dead_name)
        floor_dead = dead.state()["cluster"]["floor_w"]
        t3 = time.time()
        dead.die()
        # The live nodes may take what the dead node held above its reserved floor.
        target = BUDGET_2_W - floor_dead
        new_coordinator = wait_for("a new coordinator", lambda: coordinator(nodes), LEASE_TTL_S + 5)
        report["coordinator_failover_s"] = round(time.time() - t3, 2)

        def reallocated():
            a = allocations(nodes)
            return a is not None and len(a) == NODES - 1 and sum(a.values()) >= target - 5.0

        wait_for("the dead node's share re-allocated", reallocated, REALLOCATE_LIMIT_S + 5)
        realloc_s = time.time() - t3
        report["reallocated_after_s"] = round(realloc_s, 2)
        check(realloc_s <= REALLOCATE_LIMIT_S,
              f"the dead node's share moved after {realloc_s:.2f} s > TTL + 2 periods ({REALLOCATE_LIMIT_S} s)")
        time.sleep(1.0)
        check_alive(nodes)
        worst = max(w for _, w in sampler.between(t3, time.time()))
        check(worst <= BUDGET_2_W + 1e-3, f"after the node death the caps summed to {worst:.1f} W > {BUDGET_2_W} W")
        report["new_coordinator"] = new_coordinator

        # 4. The etcd leader dies: nothing changes.
        leader = etcd.leader()
        check(leader is not None, "no etcd leader")
        t4 = time.time()
        etcd.kill(leader)
        report["etcd_leader_killed"] = etcd.names[leader]
        time.sleep(3.0)
        status, body = http_put(nodes[[n.alive for n in nodes].index(True)].daemon.base + "/v1/cluster/budget",
                                {"watts": BUDGET_3_W})
        check(status == 200, f"PUT /v1/cluster/budget with one etcd member down: {status} {body}")
        t4b = time.time()
        time.sleep(RESPONSE_LIMIT_S + 1.5)
        check_alive(nodes)
        states = cluster_states(nodes)
        check(not any(c["fallback"] for c in states.values()), f"a node fell back: {states}")
        check(sum(1 for c in states.values() if c["coordinator"]) == 1, "not one coordinator")
        worst = max(w for _, w in sampler.between(t4, t4b + 0.2))
        check(worst <= BUDGET_2_W + 1e-3, f"after the etcd leader died the caps summed to {worst:.1f} W")
        reached = sampler.first_at_or_below(t4b, BUDGET_3_W)
        check(reached is not None and reached - t4b <= RESPONSE_LIMIT_S,
              f"a budget change with one etcd member down took {None if reached is None else reached - t4b} s")
        report["demand_response_one_etcd_member_down_s"] = round(reached - t4b, 3)

        # 5. SIGTERM: exit 0, caps at the floor.
        sampler.stop_flag.set()
        sampler.join()
        for n in nodes:
            if n.alive:
                rc = n.daemon.terminate()
                check(rc == 0, f"{n.name}: pals run exited {rc} after SIGTERM\n{n.daemon.stderr()}")
                caps = n.caps_w()
                floor = GPUS_PER_NODE * 200.0
                check(caps is not None and caps <= floor + 1e-3,
                      f"{n.name}: caps sum to {caps} W after exit, not the floor {floor} W")
        report["samples"] = len(sampler.samples)
        report["max_sum_caps_w"] = round(max(w for _, w in sampler.samples), 1)
        report["wall_s"] = round(time.time() - started, 1)
        print(json.dumps(report, indent=1))
        print("PASS")
        return 0
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print(json.dumps(report, indent=1), file=sys.stderr)
        for p in procs:
            print(f"--- {p.name} stderr ---\n{p.stderr()[-2000:]}", file=sys.stderr)
        return 1
    finally:
        if sampler is not None:
            sampler.stop_flag.set()
        for n in nodes:
            if n.loadgen is not None and n.loadgen.poll() is None:
                n.loadgen.kill()
        kill_all(procs)
        if etcd is not None:
            etcd.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
