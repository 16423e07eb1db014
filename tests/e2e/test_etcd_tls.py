#!/usr/bin/env python3
"""EtcdClusterStore against a real etcd with TLS and authentication (docs/cluster.md): makes a CA,
a server certificate for 127.0.0.1 and a client certificate with openssl, then runs
cluster_test's EtcdLiveTest.* against two one-member etcds serving https with
--client-cert-auth: one with the store's CA, certificate and key, one with etcd's authentication
on as well (user root and a password, and a client certificate without a CommonName: etcd's
gateway refuses a certificate's CN once authentication is on). Both check failover past a dead
endpoint and refuse a server signed by another CA. Everything is stopped at the end.

Plain python3: `test_etcd_tls.py --cluster-test PATH [--etcd PATH]`. Exit 77 (skipped) without
etcd, etcdctl or openssl.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def sh(*argv, **kw):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60, **kw)


def make_ca(d, name):
    key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
       "-keyout", key, "-out", crt)
    return key, crt


def make_cert(d, name, ca_key, ca_crt, san=None, subject=None):
    key, csr, crt = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "crt"))
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject or f"/CN={name}", "-keyout", key,
       "-out", csr)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=serverAuth,clientAuth\n" + (f"subjectAltName={san}\n" if san else ""))
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
       "-extfile", ext, "-out", crt)
    return key, crt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster-test", required=True)
    ap.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    ap.add_argument("--etcdctl", default=shutil.which("etcdctl") or "/usr/bin/etcdctl")
    args = ap.parse_args()
    for tool in (args.etcd, args.etcdctl, shutil.which("openssl") or ""):
        if not tool or not os.access(tool, os.X_OK):
            print(f"SKIP: {tool or 'openssl'} is missing")
            return 77
    d = tempfile.mkdtemp(prefix="pals-etcd-tls-")
    procs = []
    try:
        ca_key, ca_crt = make_ca(d, "ca")
        _, other_ca = make_ca(d, "other-ca")
        srv_key, srv_crt = make_cert(d, "server", ca_key, ca_crt, "IP:127.0.0.1")
        cli_key, cli_crt = make_cert(d, "root", ca_key, ca_crt)
        # No CommonName: etcd's gateway refuses a certificate's CN once authentication is on.
        nocn_key, nocn_crt = make_cert(d, "nocn", ca_key, ca_crt, subject="/O=pals")
        env = dict(os.environ, ETCDCTL_API="3")

        def start(name, client_cert_auth):
            client, peer = free_ports(2)
            url = f"https://127.0.0.1:{client}"
            log = os.path.join(d, f"{name}.log")
            p = subprocess.Popen([
                args.etcd, "--name", name, "--data-dir", os.path.join(d, name),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"{name}=http://127.0.0.1:{peer}",
                "--cert-file", srv_crt, "--key-file", srv_key, "--trusted-ca-file", ca_crt,
                "--logger", "zap", "--log-level", "warn"] + (["--client-cert-auth"] if client_cert_auth else []),
                stdout=open(log, "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            ctl = [args.etcdctl, "--endpoints", url, "--cacert", ca_crt, "--cert", cli_crt, "--key", cli_key,
                   "--command-timeout=10s"]
            deadline = time.time() + 20
            while subprocess.run(ctl + ["endpoint", "health"], env=env, capture_output=True).returncode != 0:
                if time.time() > deadline or p.poll() is not None:
                    raise RuntimeError(f"etcd {name} did not come up\n{open(log).read()[-3000:]}")
                time.sleep(0.2)
            return url, ctl

        base = {"PALS_TEST_ETCD_CA": ca_crt, "PALS_TEST_ETCD_OTHER_CA": other_ca}
        # 1. TLS with a client certificate (etcd --client-cert-auth).
        url, _ = start("certs", True)
        cert_env = dict(os.environ, PALS_TEST_ETCD_ENDPOINT=url, PALS_TEST_ETCD_CERT=cli_crt,
                        PALS_TEST_ETCD_KEY=cli_key, **base)
        r1 = subprocess.run([args.cluster_test, "--gtest_filter=EtcdLiveTest.*"], env=cert_env, timeout=120)
        # 2. The same with etcd's authentication on (user root, a password) and a client
        # certificate without a CommonName (the gateway refuses a CN once authentication is on).
        url, ctl = start("auth", True)
        sh(*ctl, "user", "add", "root", "--new-user-password=pals-secret", env=env)
        sh(*ctl, "user", "grant-role", "root", "root", env=env)
        sh(*ctl, "auth", "enable", env=env)
        auth_env = dict(os.environ, PALS_TEST_ETCD_ENDPOINT=url, PALS_TEST_ETCD_CERT=nocn_crt,
                        PALS_TEST_ETCD_KEY=nocn_key, PALS_TEST_ETCD_USER="root",
                        PALS_TEST_ETCD_PASSWORD="pals-secret", **base)
        r2 = subprocess.run([args.cluster_test, "--gtest_filter=EtcdLiveTest.*"], env=auth_env, timeout=120)
        if r1.returncode == 0 and r2.returncode == 0:
            print("PASS")
            return 0
        return 1
    except subprocess.CalledProcessError as e:
        print(f"FAIL: {' '.join(e.cmd)}: {e.stderr.decode(errors='replace')[-2000:]}")
        return 1
    except RuntimeError as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
