"""Keeps ``--scheduler-cls pals_vllm.scheduler.PalsScheduler`` on vLLM lines that would drop it.

On vLLM 0.10.x and 0.11.0 ``SchedulerConfig.__post_init__`` replaces ``scheduler_cls`` with
vLLM's own AsyncScheduler whenever ``async_scheduling`` is on, so a custom scheduler given with
``--scheduler-cls`` is silently never constructed. From vLLM PR #28250 on, the class is resolved
by ``SchedulerConfig.get_scheduler_cls()``, which uses a custom class as given; that method's
presence is how the two behaviours are told apart (no version parsing).

``install()`` (called by ``pals_vllm.register()``, the ``vllm.general_plugins`` entry point that
vLLM runs in ``EngineArgs.__post_init__``, before the configuration is built) wraps the old
lines' ``__post_init__``: when the class chosen on the command line is a PALS scheduler and
vLLM replaced it, the PALS class is put back. PalsScheduler then takes AsyncScheduler as its
base from ``async_scheduling`` when vLLM constructs it, so the engine keeps async scheduling and
the cap. Other classes are left to vLLM. Stdlib only; it imports nothing vLLM has not imported.
"""

import logging
import sys

LOGGER_NAME = "vllm.pals_vllm.compat"
_log = logging.getLogger(LOGGER_NAME)

_MARK = "_pals_keeps_scheduler_cls"
_PALS_MODULE = "pals_vllm.scheduler"


def names_pals_scheduler(value):
    """True when ``value`` (a qualified name or a class) is one of the PALS scheduler classes."""
    if isinstance(value, str):
        return value.startswith(_PALS_MODULE + ".")
    return isinstance(value, type) and getattr(value, "__module__", "") == _PALS_MODULE


def install(modules=None):
    """Wraps ``vllm.config.SchedulerConfig.__post_init__`` where it would drop a PALS scheduler.

    Returns what it found: "no-vllm" (vllm.config is not imported in this process: nothing to
    do), "not-needed" (this vLLM resolves --scheduler-cls as given), "installed" (now or
    before) or "unknown" (no SchedulerConfig with a __post_init__: nothing changed).
    Idempotent.
    """
    modules = sys.modules if modules is None else modules
    config = modules.get("vllm.config")
    if config is None:
        return "no-vllm"
    cls = getattr(config, "SchedulerConfig", None)
    if cls is None or not callable(getattr(cls, "__post_init__", None)):
        return "unknown"
    if hasattr(cls, "get_scheduler_cls"):
        return "not-needed"
    original = cls.__post_init__
    if getattr(original, _MARK, False):
        return "installed"

    def __post_init__(self, *args, **kwargs):
        chosen = getattr(self, "scheduler_cls", None)
        original(self, *args, **kwargs)
        replaced = getattr(self, "scheduler_cls", None)
        if names_pals_scheduler(chosen) and replaced != chosen:
            self.scheduler_cls = chosen
            _log.info("PALS: kept --scheduler-cls %s, which this vLLM replaced with %s under "
                      "async scheduling (the PALS scheduler takes AsyncScheduler as its base)",
                      chosen, replaced)

    setattr(__post_init__, _MARK, True)
    __post_init__.__wrapped__ = original
    __post_init__.__doc__ = original.__doc__
    cls.__post_init__ = __post_init__
    _log.debug("PALS: SchedulerConfig.__post_init__ wrapped to keep a PALS --scheduler-cls")
    return "installed"
