"""The vLLM V1 scheduler that applies the PALS batch cap and step token budget, and acknowledges
them.

One entry point on every supported vLLM line::

    vllm serve MODEL --max-num-seqs N_MAX --scheduler-cls pals_vllm.scheduler.PalsScheduler

``PalsScheduler`` takes its vLLM base class from the engine's own configuration when vLLM
constructs it: ``vllm_config.scheduler_config.async_scheduling`` true gives a subclass of
``vllm.v1.core.sched.async_scheduler.AsyncScheduler`` (the instance's class is
``PalsSchedulerAsync``, itself a subclass of ``PalsScheduler``), false a subclass of
``vllm.v1.core.sched.scheduler.Scheduler``. ``PalsAsyncScheduler`` is an alias of
``PalsScheduler`` kept for old launch lines: it too follows the configuration.

The classes are built on first attribute access (PEP 562 module ``__getattr__``), so this module
imports without vLLM; accessing them without vLLM raises ImportError.
"""

import importlib
import logging
import os
import threading
import time

from pals_vllm import batch_cap as _batch_cap

# The classes are built lazily (see __getattr__), so not in __all__: a star import must not need
# vLLM.
__all__ = ["BatchCapMixin", "scheduler_class_for", "step_tokens_floor"]

# Under "vllm.": vLLM's logging configuration gives handlers to the "vllm" logger only, so a
# logger outside it is dropped in a default vLLM deployment.
LOGGER_NAME = "vllm.pals_vllm.scheduler"
_log = logging.getLogger(LOGGER_NAME)

_SCHEDULER_MODULE = "vllm.v1.core.sched.scheduler"
_ASYNC_SCHEDULER_MODULE = "vllm.v1.core.sched.async_scheduler"
_PUBLIC = ("PalsScheduler", "PalsAsyncScheduler", "PalsSchedulerAsync")

# The heartbeat thread looks at the files this often (an idle engine's schedule() is not
# called, so the acknowledgement of a new cap would otherwise wait for the next request).
_HEARTBEAT_POLL_S = 0.2


class _AckFile:
    """One acknowledgement file and what was last written to it (under ``_pals_lock``)."""

    def __init__(self, path, what):
        self.path = path
        self.what = what        # "batch cap" or "step token budget", for the log
        self.acked = None       # (applied, requested, launch) last written
        self.acked_at = None    # monotonic time of that write
        self.failed = False

    def update(self, state, now, interval, wall_us):
        """Writes ``state`` when it changed or the heartbeat (``interval`` s, 0 = none) is due."""
        due = self.acked_at is None or (interval > 0 and now - self.acked_at >= interval)
        if state == self.acked and not due:
            return
        try:
            _batch_cap.write_ack(self.path, *state, time_us=wall_us())
        except OSError as exc:
            if not self.failed:
                _log.warning("PALS %s: cannot write the acknowledgement %s (%s): the daemon "
                             "will report this engine as not applying its %s; make the folder "
                             "writable by vLLM", self.what, self.path, exc, self.what)
            self.failed = True
            self.acked_at = now  # retried at the next heartbeat, not every step
            return
        if self.failed:
            _log.info("PALS %s: acknowledgement %s written again", self.what, self.path)
        self.failed = False
        self.acked = state
        self.acked_at = now


class BatchCapMixin:
    """Reads the batch-cap file once per schedule() and sets ``max_num_running_reqs``, and the
    per-step token budget file and sets ``max_num_scheduled_tokens``; writes an acknowledgement
    beside each file when what it applies changes, and a heartbeat.

    Must come before the vLLM scheduler in the bases. The launch values (``--max-num-seqs`` and
    the step token budget, ``--max-num-batched-tokens``) are taken from ``max_num_running_reqs``
    and ``max_num_scheduled_tokens`` right after the base ``__init__`` and are never exceeded:
    the model runner's buffers and CUDA graphs are sized from them.

    Threads: schedule() runs on the engine core's thread; the heartbeat thread (one per
    scheduler, a daemon thread) only reads the files and writes the acknowledgements, under
    ``_pals_lock``; the scheduler's own state is changed by schedule() alone.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pals_launch_limit = self.max_num_running_reqs
        self._pals_launch_tokens = self.max_num_scheduled_tokens
        parallel = getattr(getattr(self, "vllm_config", None), "parallel_config", None)
        dp_rank = getattr(parallel, "data_parallel_rank", 0) or 0
        dp_size = getattr(parallel, "data_parallel_size", 1) or 1
        self._pals_cap_path = _batch_cap.batch_cap_path(dp_rank=dp_rank)
        self._pals_ack_path = _batch_cap.ack_path(self._pals_cap_path)
        self._pals_tokens_path = _batch_cap.step_tokens_path(dp_rank=dp_rank)
        self._pals_tokens_ack_path = _batch_cap.ack_path(self._pals_tokens_path)
        if dp_size > 1:
            # The step tokens path follows the cap file's unless set: only a set one is checked.
            for var, path, what in (
                    (_batch_cap.ENV_VAR, self._pals_cap_path, "cap the ranks"),
                    (_batch_cap.STEP_TOKENS_ENV_VAR, self._pals_tokens_path,
                     "set the ranks' step token budgets")):
                value = os.environ.get(var) or ""
                if (value or var == _batch_cap.ENV_VAR) and _batch_cap.DP_RANK_FIELD not in value:
                    _log.warning("PALS batch cap: data parallel size %d but %s has no %s: every "
                                 "rank reads %s, so PALS cannot %s one by one",
                                 dp_size, var, _batch_cap.DP_RANK_FIELD, path, what)
        self._pals_max_age = _batch_cap.max_age_s()
        self._pals_ack_interval = _batch_cap.ack_interval_s()
        self._pals_monotonic = time.monotonic  # tests replace these two clocks
        self._pals_wall_us = lambda: time.time() * 1e6
        self._pals_lock = threading.Lock()
        self._pals_cap = None          # the cap last read (None: no cap)
        self._pals_cap_ack = _AckFile(self._pals_ack_path, "batch cap")
        self._pals_running_limit = self._pals_launch_limit  # the running limit last applied
        self._pals_tokens = None       # the step token budget last read (None: none)
        self._pals_tokens_applied = self._pals_launch_tokens
        self._pals_tokens_floor, floor_reason = step_tokens_floor(self)
        self._pals_tokens_ack = _AckFile(self._pals_tokens_ack_path, "step token budget")
        self._pals_stop = threading.Event()
        self._pals_thread = None
        _log.info("PALS batch cap: file %s, acknowledgement %s, launch max_num_seqs %d, base %s, "
                  "caps expire after %s", self._pals_cap_path, self._pals_ack_path,
                  self._pals_launch_limit, _vllm_base_name(type(self)),
                  "%g s" % self._pals_max_age if self._pals_max_age > 0 else "never")
        _log.info("PALS step token budget: file %s, acknowledgement %s, launch "
                  "max_num_scheduled_tokens %d%s", self._pals_tokens_path,
                  self._pals_tokens_ack_path, self._pals_launch_tokens,
                  ", never below %d (%s)" % (self._pals_tokens_floor, floor_reason)
                  if self._pals_tokens_floor else "")
        if not os.path.exists(self._pals_cap_path):
            _log.warning("PALS batch cap: no file at %s yet: running at the launch "
                         "max_num_seqs %d until PALS writes one (check %s, the daemon's "
                         "batch_cap_file and the mount)", self._pals_cap_path,
                         self._pals_launch_limit, _batch_cap.ENV_VAR)
        # The first acknowledgements tell the daemon the launch values before any cap.
        with self._pals_lock:
            self._pals_refresh()
            self._pals_refresh_tokens(self._pals_running_limit)
        if self._pals_ack_interval > 0:
            self._pals_thread = threading.Thread(
                target=self._pals_heartbeat, name="pals-batch-cap-ack", daemon=True)
            self._pals_thread.start()

    def schedule(self, *args, **kwargs):
        self._pals_apply_batch_cap()
        return super().schedule(*args, **kwargs)

    def shutdown(self):
        """Stops the heartbeat thread, then vLLM's own shutdown (if the base has one)."""
        self.pals_stop_heartbeat()
        base = getattr(super(), "shutdown", None)
        if base is not None:
            base()

    def pals_stop_heartbeat(self, timeout=2.0):
        """Stops the heartbeat thread (idempotent); the acknowledgements then go stale."""
        self._pals_stop.set()
        thread = self._pals_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _pals_apply_batch_cap(self):
        """Sets the running limit and the step token budget for the schedule() about to run."""
        with self._pals_lock:
            cap = self._pals_refresh()
            limit = _batch_cap.effective_limit(self._pals_launch_limit, cap, len(self.running))
            self._pals_running_limit = limit
            tokens = self._pals_refresh_tokens(limit)
        self.max_num_running_reqs = limit
        self.max_num_scheduled_tokens = tokens

    def _pals_heartbeat(self):
        poll = min(_HEARTBEAT_POLL_S, self._pals_ack_interval)
        while not self._pals_stop.wait(poll):
            try:
                with self._pals_lock:
                    self._pals_refresh()
                    self._pals_refresh_tokens(self._pals_running_limit)
            except Exception:  # never let the thread die silently; keep serving
                _log.exception("PALS batch cap: heartbeat failed")

    def _pals_refresh(self):
        """Reads the cap file; logs a change; writes the acknowledgement when what is applied
        changed or the heartbeat is due. Returns the cap (None: none). Under _pals_lock."""
        cap = _batch_cap.read_batch_cap(self._pals_cap_path, self._pals_max_age)
        if cap != self._pals_cap:
            if cap is None and self._pals_cap is not None:
                self._pals_warn_expired(self._pals_cap_path, "launch max_num_seqs",
                                        self._pals_launch_limit)
            self._pals_cap = cap
            _log.info("PALS batch cap now %s (applied %d of launch max_num_seqs %d; %d running)",
                      "none" if cap is None else cap,
                      _batch_cap.applied_cap(self._pals_launch_limit, cap),
                      self._pals_launch_limit, len(self.running))
        state = (_batch_cap.applied_cap(self._pals_launch_limit, cap), cap or 0,
                 self._pals_launch_limit)
        self._pals_cap_ack.update(state, self._pals_monotonic(), self._pals_ack_interval,
                                  self._pals_wall_us)
        return cap

    def _pals_refresh_tokens(self, running_limit):
        """Reads the step token budget file; logs a change of what is applied; writes its
        acknowledgement like _pals_refresh(). Returns the budget to apply with ``running_limit``
        (the running limit of the same step). Under _pals_lock."""
        budget = _batch_cap.read_step_tokens(self._pals_tokens_path, self._pals_max_age)
        applied = _batch_cap.applied_step_tokens(self._pals_launch_tokens, budget,
                                                 running_limit, self._pals_tokens_floor)
        if budget != self._pals_tokens or applied != self._pals_tokens_applied:
            if budget is None and self._pals_tokens is not None:
                self._pals_warn_expired(self._pals_tokens_path, "launch max_num_scheduled_tokens",
                                        self._pals_launch_tokens)
            self._pals_tokens = budget
            self._pals_tokens_applied = applied
            _log.info("PALS step token budget now %s (applied %d of launch "
                      "max_num_scheduled_tokens %d; running limit %d)",
                      "none" if budget is None else budget, applied, self._pals_launch_tokens,
                      running_limit)
        state = (applied, budget or 0, self._pals_launch_tokens)
        self._pals_tokens_ack.update(state, self._pals_monotonic(), self._pals_ack_interval,
                                     self._pals_wall_us)
        return applied

    def _pals_warn_expired(self, path, what, launch):
        age = _batch_cap.file_age_s(path)
        if age is not None and self._pals_max_age > 0 and age > self._pals_max_age:
            _log.warning("PALS file %s not refreshed for %.0f s (more than %g s): the daemon "
                         "is gone; back to the %s %d", path, age, self._pals_max_age, what,
                         launch)

    @property
    def pals_launch_limit(self):
        """The launch ``max_num_seqs`` that the cap is clamped to."""
        return self._pals_launch_limit

    @property
    def pals_launch_tokens(self):
        """The launch ``max_num_scheduled_tokens`` that the step token budget is clamped to."""
        return self._pals_launch_tokens

    @property
    def pals_ack_path(self):
        """Where this scheduler acknowledges the cap it applies."""
        return self._pals_ack_path

    @property
    def pals_step_tokens_ack_path(self):
        """Where this scheduler acknowledges the step token budget it applies."""
        return self._pals_tokens_ack_path


def step_tokens_floor(scheduler):
    """The smallest step token budget ``scheduler`` (a vLLM V1 Scheduler after its ``__init__``)
    can run with, whatever the daemon publishes, and why: ``(tokens, reason)``, ``(0, "")``
    for the usual engine (chunked prefill on), where the running limit is the only floor.

    * Chunked prefill off (``scheduler_config.enable_chunked_prefill`` false, e.g. encoder-
      decoder and some pooling models): vLLM schedules a prompt only whole, so a budget below
      the prompt stops admissions (the waiting loop breaks); vLLM itself requires
      ``max_num_batched_tokens >= max_model_len`` then. Floor: ``max_model_len``.
    * Mamba block-aligned prefill (``need_mamba_block_aligned_split``, vLLM main with
      ``mamba_cache_mode="align"``): prefill chunks are rounded down to a multiple of the KV
      block size, so a budget below it schedules no prefill at all; vLLM requires
      ``block_size <= max_num_scheduled_tokens``. Floor: ``cache_config.block_size``.
    """
    floor, reasons = 0, []
    config = getattr(scheduler, "scheduler_config", None)
    chunked = getattr(config, "enable_chunked_prefill", None)
    if chunked is None:  # older lines: the field may be None and the flag derived from it
        chunked = getattr(config, "chunked_prefill_enabled", True)
    if chunked is not None and not chunked:
        max_model_len = getattr(scheduler, "max_model_len", None)
        floor = max_model_len or scheduler.max_num_scheduled_tokens
        reasons.append("chunked prefill off: max_model_len")
    if getattr(scheduler, "need_mamba_block_aligned_split", False):
        block_size = getattr(getattr(scheduler, "cache_config", None), "block_size", None)
        floor = max(floor, block_size or scheduler.max_num_scheduled_tokens)
        reasons.append("mamba block-aligned prefill: block_size")
    return floor, ", ".join(reasons)


def _vllm_base_name(cls):
    for base in cls.__mro__:
        if base.__module__ in (_SCHEDULER_MODULE, _ASYNC_SCHEDULER_MODULE):
            return base.__name__
    return "?"


def _config_of(args, kwargs):
    config = kwargs.get("vllm_config", args[0] if args else None)
    scheduler_config = getattr(config, "scheduler_config", None)
    if scheduler_config is None:
        raise TypeError("pals_vllm.scheduler.PalsScheduler: vLLM passed no vllm_config with a "
                        "scheduler_config (an unsupported vLLM version?)")
    return config


def scheduler_class_for(vllm_config):
    """The class PalsScheduler(vllm_config, ...) builds: PalsSchedulerAsync (AsyncScheduler base)
    when ``vllm_config.scheduler_config.async_scheduling`` is true, else PalsScheduler (Scheduler
    base). Raises RuntimeError naming the flag when async scheduling is on and vLLM's
    AsyncScheduler cannot be imported."""
    pals = _get("PalsScheduler")
    if not getattr(vllm_config.scheduler_config, "async_scheduling", False):
        return pals
    try:
        return _get("PalsSchedulerAsync")
    except ImportError as exc:
        raise RuntimeError(
            "PALS: vLLM runs with async scheduling but its AsyncScheduler cannot be imported "
            f"({exc}): relaunch vLLM without --async-scheduling (vLLM main: "
            "--no-async-scheduling)") from exc


def _build(name):
    if name == "PalsSchedulerAsync":
        pals = _get("PalsScheduler")
        base = importlib.import_module(_ASYNC_SCHEDULER_MODULE).AsyncScheduler
        return type(name, (pals, base), {
            "__doc__": "PalsScheduler on vLLM's AsyncScheduler (async scheduling on).",
            "__module__": __name__,
        })
    base = importlib.import_module(_SCHEDULER_MODULE).Scheduler

    def __new__(cls, *args, **kwargs):
        # vLLM constructs the class it resolved from --scheduler-cls: pick the base from the
        # configuration it passes. A subclass is returned, so Python runs its __init__.
        if cls is pals_cls:
            cls = scheduler_class_for(_config_of(args, kwargs))
        return super(pals_cls, cls).__new__(cls)

    pals_cls = type("PalsScheduler", (BatchCapMixin, base), {
        "__doc__": "vLLM V1 scheduler with the PALS batch cap; its base (Scheduler or "
                   "AsyncScheduler) follows vllm_config.scheduler_config.async_scheduling.",
        "__module__": __name__,
        "__new__": __new__,
    })
    return pals_cls


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "PalsAsyncScheduler":  # the old name: the same single entry point
        cls = _get("PalsScheduler")
    else:
        try:
            cls = _build(name)
        except ImportError as exc:
            raise ImportError(
                f"pals_vllm.scheduler.{name} needs vLLM (V1 scheduler): {exc}") from exc
    globals()[name] = cls
    return cls


def _get(name):
    cls = globals().get(name)
    return cls if cls is not None else __getattr__(name)


def _forget_classes():
    """Drop the built classes so the next access rebuilds them (tests swap the vLLM modules)."""
    for name in _PUBLIC:
        globals().pop(name, None)
