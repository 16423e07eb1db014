"""PALS integration for vLLM.

Two hooks:

* ``pals_vllm.scheduler.PalsScheduler`` / ``PalsAsyncScheduler``: pass one to vLLM with
  ``--scheduler-cls``; it applies the batch cap that the PALS daemon publishes.
* ``register()``: the ``vllm.general_plugins`` entry point (``pals = pals_vllm:register``).

Nothing here imports vLLM at import time.
"""

__all__ = ["register", "is_registered"]
__version__ = "0.1.0"

# vLLM calls general plugins in every one of its processes (API server, engine core,
# workers), and may call them more than once per process: keep register() idempotent and cheap.
_registered = False


def register():
    """Entry point of the ``vllm.general_plugins`` group.

    Idempotent and cheap: it imports nothing (not vLLM, not the scheduler module) and does no
    I/O. The batch cap itself is applied by the scheduler class chosen with ``--scheduler-cls``.
    Returns True on the first call in this process, False on later calls.
    """
    global _registered
    if _registered:
        return False
    _registered = True
    return True


def is_registered():
    """Whether register() has run in this process."""
    return _registered
