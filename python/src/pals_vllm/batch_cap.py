"""The batch-cap file that the PALS daemon publishes, and the drain-down rule.

File format: exactly 8 bytes, one unsigned 64-bit little-endian integer, the largest number of
running sequences (vLLM's ``max_num_running_reqs``) the daemon wants. 0 means "no cap".
A missing, unreadable, short, long or zero file means "no cap": the scheduler then behaves
exactly like stock vLLM (the launch ``--max-num-seqs``).

Caps expire: the daemon rewrites the file every control period, so a file not modified for
longer than the maximum age (``$PALS_BATCH_CAP_MAX_AGE_S``, default 10 s; 0 = never) belongs
to a daemon that is gone (a crash, ``kill -9``) and counts as "no cap" too: the engine returns
to its launch batch cap within that age instead of keeping the last cap forever.
"""

import os
import struct
import time

ENV_VAR = "PALS_BATCH_CAP_FILE"
MAX_AGE_ENV_VAR = "PALS_BATCH_CAP_MAX_AGE_S"
DEFAULT_PATH = "/run/pals/batch_cap"
DEFAULT_MAX_AGE_S = 10.0
FILE_SIZE = 8
_FORMAT = struct.Struct("<Q")


DP_RANK_FIELD = "{dp_rank}"


def batch_cap_path(environ=None, dp_rank=0):
    """The path of the batch-cap file: ``$PALS_BATCH_CAP_FILE`` or ``/run/pals/batch_cap``,
    with ``{dp_rank}`` replaced by the engine core's data-parallel rank (one file, and one PALS
    group, per rank: ``PALS_BATCH_CAP_FILE=/run/pals/batch_cap.{dp_rank}``)."""
    env = os.environ if environ is None else environ
    return (env.get(ENV_VAR) or DEFAULT_PATH).replace(DP_RANK_FIELD, str(dp_rank))


def max_age_s(environ=None):
    """The age after which a cap file counts as absent: ``$PALS_BATCH_CAP_MAX_AGE_S`` seconds
    (a number >= 0; 0 = never), else 10. An unusable value gives the default."""
    env = os.environ if environ is None else environ
    try:
        value = float(env.get(MAX_AGE_ENV_VAR, ""))
    except ValueError:
        return DEFAULT_MAX_AGE_S
    return value if value >= 0 and value == value and value != float("inf") else DEFAULT_MAX_AGE_S


def file_age_s(path, now=None):
    """Seconds since ``path`` was last modified; None when it cannot be read."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - mtime


def read_batch_cap(path, max_age=0.0, now=None):
    """Read the cap from ``path``; None when there is no usable cap, or when the file is older
    than ``max_age`` seconds (> 0; ``now`` defaults to the wall clock).

    A plain open/read/close on each call (a few microseconds, against a 10-100 ms engine step)
    rather than a long-lived mmap, so a daemon that replaces the file by rename is picked up.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if max_age > 0:
            mtime = os.fstat(fd).st_mtime
            if (time.time() if now is None else now) - mtime > max_age:
                return None
        data = os.read(fd, FILE_SIZE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != FILE_SIZE:
        return None
    (cap,) = _FORMAT.unpack(data)
    return cap or None


def encode_batch_cap(cap):
    """The 8 bytes that publish ``cap`` (what the daemon writes; used by tests and tools)."""
    return _FORMAT.pack(cap)


def effective_limit(launch_limit, cap, num_running):
    """The running-request limit to give vLLM for one schedule() call.

    ``min(launch_limit, cap)``, never below ``num_running``: vLLM V1 stops admitting waiting
    requests on ``len(running) == max_num_running_reqs`` and then asserts
    ``len(running) <= max_num_running_reqs``, so a limit below the running count would keep
    admitting and trip the assert. Holding the limit at the running count drains instead: no
    admissions until enough requests finish. ``cap`` None (or 0) gives the launch value.
    """
    if not cap:
        return launch_limit
    return max(min(launch_limit, cap), num_running)
