"""The batch-cap file that the PALS daemon publishes, and the drain-down rule.

File format: exactly 8 bytes, one unsigned 64-bit little-endian integer, the largest number of
running sequences (vLLM's ``max_num_running_reqs``) the daemon wants. 0 means "no cap".
A missing, unreadable, short, long or zero file means "no cap": the scheduler then behaves
exactly like stock vLLM (the launch ``--max-num-seqs``).

Caps expire: the daemon rewrites the file every control period, so a file not modified for
longer than the maximum age (``$PALS_BATCH_CAP_MAX_AGE_S``, default 10 s; 0 = never) belongs
to a daemon that is gone (a crash, ``kill -9``) and counts as "no cap" too: the engine returns
to its launch batch cap within that age instead of keeping the last cap forever.

The acknowledgement (``<cap file>.ack``, written by the scheduler, read by the daemon): exactly
40 bytes, little-endian: the 8 ASCII bytes ``PALSACK1``, then four unsigned 64-bit integers:
``applied`` (the batch cap the scheduler enforces: ``min(requested, launch)``, or ``launch``
without a cap), ``requested`` (the cap it read from the cap file; 0 = none, also when the file
is missing, malformed or expired), ``launch`` (the launch ``max_num_seqs``) and ``time_us`` (when
it was written, Unix microseconds). It is replaced atomically (temporary file + rename) when one
of the first three values changes, and at least once a second otherwise (a heartbeat, so that
the daemon can tell a live engine from a stale acknowledgement).

The per-step token budget (a second file, same format): the largest number of tokens the daemon
wants scheduled in one engine step (vLLM's ``max_num_scheduled_tokens``, the ``token_budget`` of
schedule(); launched from ``--max-num-batched-tokens``). Its path is ``$PALS_STEP_TOKENS_FILE``
(``{dp_rank}`` replaced as in the cap file's path), else the cap file's path (after that
replacement) + ``.step_tokens``. Missing, unreadable, short, long, zero or expired (the same
maximum age) = no budget. A budget ``B`` is applied as ``min(launch, max(B, running limit))``,
where the running limit is the ``max_num_running_reqs`` applied in the same step, so that every
running decode can still get a token (vLLM itself requires ``max_num_batched_tokens >=
max_num_seqs``); never above the launch value (the model runner's buffers are sized from it).
Engines with chunked prefill off or Mamba block-aligned prefill also keep a floor of their own
(``pals_vllm.scheduler.step_tokens_floor``; none in the usual chunked-prefill engine). It is
acknowledged in ``<step tokens file>.ack``, in the same 40-byte format (values in tokens).
"""

import os
import struct
import time

ENV_VAR = "PALS_BATCH_CAP_FILE"
MAX_AGE_ENV_VAR = "PALS_BATCH_CAP_MAX_AGE_S"
DEFAULT_PATH = "/run/pals/batch_cap"
DEFAULT_MAX_AGE_S = 10.0
ACK_INTERVAL_ENV_VAR = "PALS_BATCH_CAP_ACK_INTERVAL_S"
DEFAULT_ACK_INTERVAL_S = 1.0
FILE_SIZE = 8
_FORMAT = struct.Struct("<Q")

STEP_TOKENS_ENV_VAR = "PALS_STEP_TOKENS_FILE"
STEP_TOKENS_SUFFIX = ".step_tokens"


DP_RANK_FIELD = "{dp_rank}"

ACK_SUFFIX = ".ack"
ACK_MAGIC = b"PALSACK1"
_ACK_FORMAT = struct.Struct("<8sQQQQ")
ACK_FILE_SIZE = _ACK_FORMAT.size  # 40


def batch_cap_path(environ=None, dp_rank=0):
    """The path of the batch-cap file: ``$PALS_BATCH_CAP_FILE`` or ``/run/pals/batch_cap``,
    with ``{dp_rank}`` replaced by the engine core's data-parallel rank (one file, and one PALS
    group, per rank: ``PALS_BATCH_CAP_FILE=/run/pals/batch_cap.{dp_rank}``)."""
    env = os.environ if environ is None else environ
    return (env.get(ENV_VAR) or DEFAULT_PATH).replace(DP_RANK_FIELD, str(dp_rank))


def _seconds(environ, name, default):
    env = os.environ if environ is None else environ
    try:
        value = float(env.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 and value == value and value != float("inf") else default


def max_age_s(environ=None):
    """The age after which a cap file counts as absent: ``$PALS_BATCH_CAP_MAX_AGE_S`` seconds
    (a number >= 0; 0 = never), else 10. An unusable value gives the default."""
    return _seconds(environ, MAX_AGE_ENV_VAR, DEFAULT_MAX_AGE_S)


def ack_interval_s(environ=None):
    """How often the acknowledgement is rewritten when nothing changes (the heartbeat):
    ``$PALS_BATCH_CAP_ACK_INTERVAL_S`` seconds, else 1; 0 turns the heartbeat off (the daemon
    then reports the acknowledgement as stale while nothing changes)."""
    return _seconds(environ, ACK_INTERVAL_ENV_VAR, DEFAULT_ACK_INTERVAL_S)


def file_age_s(path, now=None):
    """Seconds since ``path`` was last modified; None when it cannot be read."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - mtime


def step_tokens_path(environ=None, dp_rank=0):
    """The path of the per-step token budget file: ``$PALS_STEP_TOKENS_FILE`` with ``{dp_rank}``
    replaced by the engine core's data-parallel rank, else the batch-cap file's path (after that
    replacement) + ``.step_tokens`` (``/run/pals/batch_cap.step_tokens``)."""
    env = os.environ if environ is None else environ
    path = env.get(STEP_TOKENS_ENV_VAR)
    if path:
        return path.replace(DP_RANK_FIELD, str(dp_rank))
    return batch_cap_path(env, dp_rank) + STEP_TOKENS_SUFFIX


def read_batch_cap(path, max_age=0.0, now=None):
    """Read the cap from ``path``; None when there is no usable cap, or when the file is older
    than ``max_age`` seconds (> 0; ``now`` defaults to the wall clock).

    A plain open/read/close on each call (a few microseconds, against a 10-100 ms engine step)
    rather than a long-lived mmap, so a daemon that replaces the file by rename is picked up.
    """
    return _read_uint64(path, max_age, now)


def read_step_tokens(path, max_age=0.0, now=None):
    """Read the per-step token budget from ``path``: the same format and rules as
    read_batch_cap() (None: no budget, also when older than ``max_age`` seconds)."""
    return _read_uint64(path, max_age, now)


def _read_uint64(path, max_age, now):
    """The non-zero little-endian uint64 of an 8-byte file not older than ``max_age``; else
    None."""
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


def encode_step_tokens(tokens):
    """The 8 bytes that publish a per-step token budget (the cap file's format)."""
    return _FORMAT.pack(tokens)


def applied_cap(launch_limit, cap):
    """The batch cap a scheduler enforces for ``cap`` (None or 0: no cap): ``min(launch, cap)``,
    else the launch value. This is the ``applied`` value of the acknowledgement."""
    return min(launch_limit, cap) if cap else launch_limit


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


def applied_step_tokens(launch_tokens, budget, running_limit, floor=0):
    """The per-step token budget a scheduler gives vLLM (``max_num_scheduled_tokens``) for a
    published ``budget`` (None or 0: none) and the running limit applied in the same step.

    ``min(launch_tokens, max(budget, running_limit, floor))``: never below the running limit, so
    that every running decode can still get a token in a step (vLLM requires
    ``max_num_batched_tokens >= max_num_seqs``), nor below ``floor`` (what this engine's
    configuration needs, see ``pals_vllm.scheduler``; 0 for the usual chunked-prefill engine), and
    never above the launch value, which sizes the model runner's buffers. Without a budget, the
    launch value. This is the ``applied`` value of the step tokens acknowledgement.
    """
    if not budget:
        return launch_tokens
    return min(launch_tokens, max(budget, running_limit, floor))


class Ack(tuple):
    """One decoded acknowledgement: (applied, requested, launch, time_us)."""

    __slots__ = ()

    def __new__(cls, applied, requested, launch, time_us):
        return tuple.__new__(cls, (applied, requested, launch, time_us))

    applied = property(lambda self: self[0])
    requested = property(lambda self: self[1])
    launch = property(lambda self: self[2])
    time_us = property(lambda self: self[3])


def ack_path(cap_path):
    """The acknowledgement written beside a cap (or step tokens) file: ``<cap_path>.ack``."""
    return str(cap_path) + ACK_SUFFIX


def encode_ack(applied, requested, launch, time_us):
    """The 40 bytes of an acknowledgement (see the module docstring)."""
    return _ACK_FORMAT.pack(ACK_MAGIC, applied, requested or 0, launch, int(time_us))


def decode_ack(data):
    """An Ack from 40 bytes; None for anything else (wrong size or magic)."""
    if len(data) != ACK_FILE_SIZE:
        return None
    magic, applied, requested, launch, time_us = _ACK_FORMAT.unpack(data)
    if magic != ACK_MAGIC:
        return None
    return Ack(applied, requested, launch, time_us)


def read_ack(path):
    """The acknowledgement at ``path``; None when missing or malformed."""
    try:
        with open(path, "rb") as f:
            return decode_ack(f.read(ACK_FILE_SIZE + 1))
    except OSError:
        return None


def write_ack(path, applied, requested, launch, time_us=None):
    """Replaces ``path`` atomically (a temporary file in the same folder, then rename) with an
    acknowledgement. Raises OSError when the folder is not writable."""
    if time_us is None:
        time_us = time.time() * 1e6
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, ".%s.%d.tmp" % (name, os.getpid()))
    data = encode_ack(applied, requested, launch, time_us)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
