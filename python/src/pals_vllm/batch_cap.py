"""The batch-cap file that the PALS daemon publishes, and the drain-down rule.

File format: exactly 8 bytes, one unsigned 64-bit little-endian integer, the largest number of
running sequences (vLLM's ``max_num_running_reqs``) the daemon wants. 0 means "no cap".
A missing, unreadable, short, long or zero file means "no cap": the scheduler then behaves
exactly like stock vLLM (the launch ``--max-num-seqs``).
"""

import os
import struct

ENV_VAR = "PALS_BATCH_CAP_FILE"
DEFAULT_PATH = "/run/pals/batch_cap"
FILE_SIZE = 8
_FORMAT = struct.Struct("<Q")


def batch_cap_path(environ=None):
    """The path of the batch-cap file: ``$PALS_BATCH_CAP_FILE`` or ``/run/pals/batch_cap``."""
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR) or DEFAULT_PATH


def read_batch_cap(path):
    """Read the cap from ``path``; None when there is no usable cap.

    A plain open/read/close on each call (a few microseconds, against a 10-100 ms engine step)
    rather than a long-lived mmap, so a daemon that replaces the file by rename is picked up.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
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
