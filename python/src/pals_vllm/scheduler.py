"""vLLM V1 scheduler classes that apply the PALS batch cap.

Launch vLLM with::

    vllm serve MODEL --max-num-seqs N_MAX --scheduler-cls pals_vllm.scheduler.PalsScheduler
    # with --async-scheduling (or where the installed vLLM turns it on by default):
    vllm serve MODEL --max-num-seqs N_MAX --async-scheduling \
        --scheduler-cls pals_vllm.scheduler.PalsAsyncScheduler

``PalsScheduler`` subclasses ``vllm.v1.core.sched.scheduler.Scheduler`` and
``PalsAsyncScheduler`` subclasses ``vllm.v1.core.sched.async_scheduler.AsyncScheduler``. The
classes are built on first attribute access (PEP 562 module ``__getattr__``), so this module
imports without vLLM; accessing them without vLLM raises ImportError.
"""

import logging
import os

from pals_vllm import batch_cap as _batch_cap

# PalsScheduler and PalsAsyncScheduler are built lazily (see __getattr__), so not in __all__:
# a star import must not need vLLM.
__all__ = ["BatchCapMixin"]

# Under "vllm.": vLLM's logging configuration gives handlers to the "vllm" logger only, so a
# logger outside it is dropped in a default vLLM deployment.
LOGGER_NAME = "vllm.pals_vllm.scheduler"
_log = logging.getLogger(LOGGER_NAME)

_SCHEDULER_MODULE = "vllm.v1.core.sched.scheduler"
_ASYNC_SCHEDULER_MODULE = "vllm.v1.core.sched.async_scheduler"


class BatchCapMixin:
    """Reads the batch-cap file once per schedule() and sets ``max_num_running_reqs``.

    Must come before the vLLM scheduler in the bases. The launch value (``--max-num-seqs``) is
    taken from ``max_num_running_reqs`` right after the base ``__init__`` and is never exceeded:
    the model runner's buffers and CUDA graphs are sized from it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pals_launch_limit = self.max_num_running_reqs
        parallel = getattr(getattr(self, "vllm_config", None), "parallel_config", None)
        dp_rank = getattr(parallel, "data_parallel_rank", 0) or 0
        dp_size = getattr(parallel, "data_parallel_size", 1) or 1
        self._pals_cap_path = _batch_cap.batch_cap_path(dp_rank=dp_rank)
        if dp_size > 1 and _batch_cap.DP_RANK_FIELD not in (
                os.environ.get(_batch_cap.ENV_VAR) or ""):
            _log.warning("PALS batch cap: data parallel size %d but %s has no %s: every rank "
                         "reads %s, so PALS cannot cap the ranks one by one",
                         dp_size, _batch_cap.ENV_VAR, _batch_cap.DP_RANK_FIELD,
                         self._pals_cap_path)
        self._pals_max_age = _batch_cap.max_age_s()
        self._pals_last_cap = None
        _log.info("PALS batch cap: file %s, launch max_num_seqs %d, caps expire after %s",
                  self._pals_cap_path, self._pals_launch_limit,
                  "%g s" % self._pals_max_age if self._pals_max_age > 0 else "never")
        if not os.path.exists(self._pals_cap_path):
            _log.warning("PALS batch cap: no file at %s yet: running at the launch "
                         "max_num_seqs %d until PALS writes one (check %s, the daemon's "
                         "batch_cap_file and the mount)", self._pals_cap_path,
                         self._pals_launch_limit, _batch_cap.ENV_VAR)

    def schedule(self, *args, **kwargs):
        self._pals_apply_batch_cap()
        return super().schedule(*args, **kwargs)

    def _pals_apply_batch_cap(self):
        cap = _batch_cap.read_batch_cap(self._pals_cap_path, self._pals_max_age)
        self.max_num_running_reqs = _batch_cap.effective_limit(
            self._pals_launch_limit, cap, len(self.running))
        if cap != self._pals_last_cap:
            if cap is None and self._pals_last_cap is not None:
                age = _batch_cap.file_age_s(self._pals_cap_path)
                if age is not None and self._pals_max_age > 0 and age > self._pals_max_age:
                    _log.warning("PALS batch cap file %s not refreshed for %.0f s (more than "
                                 "%g s): the daemon is gone; back to the launch max_num_seqs %d",
                                 self._pals_cap_path, age, self._pals_max_age,
                                 self._pals_launch_limit)
            self._pals_last_cap = cap
            _log.info("PALS batch cap now %s (limit %d, running %d)",
                      "none" if cap is None else cap, self.max_num_running_reqs,
                      len(self.running))

    @property
    def pals_launch_limit(self):
        """The launch ``max_num_seqs`` that the cap is clamped to."""
        return self._pals_launch_limit


def _build(name):
    import importlib

    if name == "PalsScheduler":
        base = importlib.import_module(_SCHEDULER_MODULE).Scheduler
        doc = "vLLM V1 Scheduler with the PALS batch cap."
    else:
        base = importlib.import_module(_ASYNC_SCHEDULER_MODULE).AsyncScheduler
        doc = "vLLM V1 AsyncScheduler with the PALS batch cap."
    cls = type(name, (BatchCapMixin, base), {"__doc__": doc, "__module__": __name__})
    return cls


def __getattr__(name):
    if name not in ("PalsScheduler", "PalsAsyncScheduler"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        cls = _build(name)
    except ImportError as exc:
        raise ImportError(f"pals_vllm.scheduler.{name} needs vLLM (V1 scheduler): {exc}") from exc
    globals()[name] = cls
    return cls


def _forget_classes():
    """Drop the built classes so the next access rebuilds them (tests swap the vLLM modules)."""
    for name in ("PalsScheduler", "PalsAsyncScheduler"):
        globals().pop(name, None)
