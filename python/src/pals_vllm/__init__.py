"""PALS integration for vLLM.

Two hooks:

* ``pals_vllm.scheduler.PalsScheduler``: pass it to vLLM with ``--scheduler-cls``; it applies
  the batch cap that the PALS daemon publishes and acknowledges it, on vLLM's Scheduler or
  AsyncScheduler as the engine's configuration says (``PalsAsyncScheduler`` is an alias).
* ``register()``: the ``vllm.general_plugins`` entry point (``pals = pals_vllm:register``).

Nothing here imports vLLM at import time.
"""

import logging

__all__ = ["register", "is_registered"]
__version__ = "0.1.0"

# vLLM calls general plugins in every one of its processes (API server, engine core,
# workers), and may call them more than once per process: keep register() idempotent and cheap.
_registered = False


def register():
    """Entry point of the ``vllm.general_plugins`` group.

    Idempotent and cheap: no I/O, and it imports nothing that vLLM has not imported already (not
    the scheduler module). Where this vLLM's ``SchedulerConfig`` would replace a PALS
    ``--scheduler-cls`` under async scheduling (vLLM 0.10.x-0.11.0), it keeps the PALS class
    (``pals_vllm.compat``). The batch cap itself is applied by the scheduler class chosen with
    ``--scheduler-cls``. Returns True on the first call in this process, False on later calls.
    """
    global _registered
    if _registered:
        return False
    _registered = True
    from pals_vllm import compat

    try:
        compat.install()
    except Exception as exc:  # never stop vLLM here; the daemon sees a missing acknowledgement
        logging.getLogger(compat.LOGGER_NAME).warning(
            "PALS: could not keep --scheduler-cls under async scheduling on this vLLM (%s): "
            "launch vLLM without --async-scheduling", exc)
    return True


def is_registered():
    """Whether register() has run in this process."""
    return _registered
