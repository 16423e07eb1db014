"""A small stand-in for the parts of vLLM that the PALS scheduler meets, with vLLM's names.

Written for these tests from facts read in vLLM's source (python/README.md cites the commits),
not copied from vLLM:

* ``Scheduler.__init__(vllm_config, kv_cache_config, structured_output_manager, block_size,
  hash_block_size=None, mm_registry=..., include_finished_set=False, log_stats=False)`` (vLLM
  main; ``hash_block_size`` is the newest parameter) sets ``max_num_running_reqs =
  scheduler_config.max_num_seqs`` and ``running = []``; ``schedule()`` admits waiting requests
  until ``len(running) == max_num_running_reqs`` (an equality test) and then asserts
  ``len(running) <= max_num_running_reqs``. ``AsyncScheduler`` subclasses ``Scheduler`` and
  inherits ``schedule()``. The engine core passes every argument by keyword.
* The per-step token budget: ``__init__`` sets ``max_num_scheduled_tokens`` from
  ``scheduler_config.max_num_batched_tokens`` (the newest main first takes
  ``scheduler_config.max_num_scheduled_tokens`` when it is not None); ``schedule()`` copies it
  into ``token_budget``, schedules the running requests first (each gets
  ``min(tokens it still needs, token_budget)``; the loop stops at a budget of 0), then admits
  waiting requests while ``token_budget > 0``, each with ``min(prompt tokens left,
  token_budget)`` (a prefill chunk); with chunked prefill off a prompt that does not fit stops
  admissions (``break``). With ``need_mamba_block_aligned_split`` (main, a Mamba model with
  ``mamba_cache_mode="align"``) a prefill chunk is rounded down to a multiple of the block size.
  After scheduling it asserts ``total_num_scheduled_tokens <= max_num_scheduled_tokens`` and
  ``token_budget >= 0``, then advances ``num_computed_tokens`` (``_update_after_schedule``); a
  request whose tokens are all computed samples one more (what ``update_from_output`` does), so
  a decode needs one token a step. The stand-in's requests carry only these token counts.
* Two lines of configuration behaviour (``LINES``):

  - ``"0.11"`` (vLLM 0.10.x-0.11.0): ``scheduler_cls`` defaults to the Scheduler's qualified
    name, ``async_scheduling`` to False, and ``SchedulerConfig.__post_init__`` replaces
    ``scheduler_cls`` with the AsyncScheduler's name whenever ``async_scheduling`` is on; the
    engine core resolves ``scheduler_cls`` itself.
  - ``"main"`` (from vLLM PR #28250 on): ``scheduler_cls`` defaults to None,
    ``async_scheduling`` is None until the VllmConfig turns it on (the default on main), and
    ``SchedulerConfig.get_scheduler_cls()`` picks Scheduler / AsyncScheduler for None and uses
    a custom class as given.

  ``make_engine_config()`` builds a configuration the way ``vllm serve`` does (general plugins
  are loaded in ``EngineArgs.__post_init__``, before the configuration), ``EngineCore`` builds
  the scheduler the way that line's engine core does.
"""

import collections
import dataclasses
import importlib
import sys
import types

LINE_MAIN = "main"
LINE_0_11 = "0.11"
LINES = (LINE_MAIN, LINE_0_11)

SCHEDULER_QUALNAME = "vllm.v1.core.sched.scheduler.Scheduler"
ASYNC_SCHEDULER_QUALNAME = "vllm.v1.core.sched.async_scheduler.AsyncScheduler"


def resolve_obj_by_qualname(qualname):
    module_name, _, name = qualname.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


@dataclasses.dataclass
class SchedulerConfigLegacy:
    """vLLM 0.10.x-0.11.0: __post_init__ replaces scheduler_cls under async scheduling."""

    max_num_seqs: int = 128
    max_num_batched_tokens: int = 2048
    scheduler_cls: object = SCHEDULER_QUALNAME
    async_scheduling: bool = False
    enable_chunked_prefill: bool = True

    def __post_init__(self):
        self.max_num_batched_tokens = max(self.max_num_batched_tokens, self.max_num_seqs)
        if self.async_scheduling:
            self.scheduler_cls = ASYNC_SCHEDULER_QUALNAME


@dataclasses.dataclass
class SchedulerConfigMain:
    """vLLM main: a custom scheduler_cls is used as given; None picks by async_scheduling."""

    max_num_seqs: int = 128
    max_num_batched_tokens: int = 2048
    scheduler_cls: object = None
    async_scheduling: object = None  # resolved by VllmConfig (on by default)
    enable_chunked_prefill: bool = True
    max_num_scheduled_tokens: object = None  # newest main; None: max_num_batched_tokens

    def __post_init__(self):
        self.max_num_batched_tokens = max(self.max_num_batched_tokens, self.max_num_seqs)

    def get_scheduler_cls(self):
        if self.scheduler_cls is None:
            return resolve_obj_by_qualname(
                ASYNC_SCHEDULER_QUALNAME if self.async_scheduling else SCHEDULER_QUALNAME)
        if isinstance(self.scheduler_cls, str):
            return resolve_obj_by_qualname(self.scheduler_cls)
        return self.scheduler_cls


# What existing tests construct directly: an already resolved configuration.
SchedulerConfig = SchedulerConfigMain


class ParallelConfig:
    """vllm/config/parallel.py: each data-parallel engine core gets its rank."""

    def __init__(self, data_parallel_size=1, data_parallel_rank=0):
        self.data_parallel_size = data_parallel_size
        self.data_parallel_rank = data_parallel_rank


class ModelConfig:
    def __init__(self, max_model_len=8192):
        self.max_model_len = max_model_len


class CacheConfig:
    """The two fields the scheduler's Mamba block-aligned split reads (``"none"`` or
    ``"align"``; the stand-in has no KV cache groups, so "align" stands for a Mamba model)."""

    def __init__(self, block_size=16, mamba_cache_mode="none"):
        self.block_size = block_size
        self.mamba_cache_mode = mamba_cache_mode


class VllmConfig:
    def __init__(self, max_num_seqs=128, data_parallel_size=1, data_parallel_rank=0,
                 async_scheduling=False, scheduler_config=None, line=LINE_MAIN,
                 max_num_batched_tokens=2048, enable_chunked_prefill=True,
                 max_num_scheduled_tokens=None, max_model_len=8192, block_size=16,
                 mamba_cache_mode="none"):
        if scheduler_config is None:
            scheduler_config = SchedulerConfigMain(
                max_num_seqs=max_num_seqs, async_scheduling=async_scheduling,
                max_num_batched_tokens=max_num_batched_tokens,
                enable_chunked_prefill=enable_chunked_prefill,
                max_num_scheduled_tokens=max_num_scheduled_tokens)
        if line == LINE_MAIN and scheduler_config.async_scheduling is None:
            scheduler_config.async_scheduling = True  # main: on unless turned off
        self.scheduler_config = scheduler_config
        self.parallel_config = ParallelConfig(data_parallel_size, data_parallel_rank)
        self.model_config = ModelConfig(max_model_len)
        self.cache_config = CacheConfig(block_size, mamba_cache_mode)


def load_general_plugins():
    """vllm.plugins.load_general_plugins(): here only the PALS entry point."""
    import pals_vllm

    pals_vllm.register()


def make_engine_config(line, max_num_seqs=8, scheduler_cls=None, async_scheduling=None,
                       load_plugins=True, **parallel):
    """The configuration ``vllm serve --max-num-seqs N [--scheduler-cls C]
    [--async-scheduling | --no-async-scheduling]`` builds on ``line``: plugins first (vLLM
    calls them from EngineArgs.__post_init__), then the SchedulerConfig of the installed
    ``vllm.config`` module, then the VllmConfig."""
    if load_plugins:
        load_general_plugins()
    config_cls = sys.modules["vllm.config"].SchedulerConfig
    kwargs = {"max_num_seqs": max_num_seqs}
    if scheduler_cls is not None:
        kwargs["scheduler_cls"] = scheduler_cls
    if line == LINE_0_11:
        kwargs["async_scheduling"] = bool(async_scheduling)
    else:
        kwargs["async_scheduling"] = async_scheduling
    return VllmConfig(scheduler_config=config_cls(**kwargs), line=line, **parallel)


class EngineCore:
    """Builds the scheduler as that line's vllm/v1/engine/core.py does (keyword arguments)."""

    def __init__(self, vllm_config, line):
        sc = vllm_config.scheduler_config
        if line == LINE_0_11:
            cls = (resolve_obj_by_qualname(sc.scheduler_cls) if isinstance(sc.scheduler_cls, str)
                   else sc.scheduler_cls)
            extra = {}
        else:
            cls = sc.get_scheduler_cls()
            extra = {"hash_block_size": 16}
        self.async_scheduling = bool(sc.async_scheduling)
        self.scheduler = cls(vllm_config=vllm_config, kv_cache_config=None,
                             structured_output_manager=None, include_finished_set=False,
                             log_stats=False, block_size=16, **extra)


class Request:
    """The token counts of vLLM's Request that schedule() reads."""

    def __init__(self, request_id, num_prompt_tokens=1):
        self.request_id = request_id
        self.num_prompt_tokens = num_prompt_tokens
        self.num_tokens = num_prompt_tokens  # prompt + output tokens
        self.num_computed_tokens = 0


class Scheduler:
    def __init__(self, vllm_config, kv_cache_config, structured_output_manager, block_size,
                 hash_block_size=None, mm_registry=None, include_finished_set=False,
                 log_stats=False):
        self.vllm_config = vllm_config
        self.scheduler_config = vllm_config.scheduler_config
        self.cache_config = vllm_config.cache_config
        self.block_size = block_size
        self.hash_block_size = block_size if hash_block_size is None else hash_block_size
        self.max_num_running_reqs = self.scheduler_config.max_num_seqs
        scheduled = getattr(self.scheduler_config, "max_num_scheduled_tokens", None)
        self.max_num_scheduled_tokens = (
            scheduled if scheduled is not None else self.scheduler_config.max_num_batched_tokens)
        self.max_model_len = vllm_config.model_config.max_model_len
        self.need_mamba_block_aligned_split = self.cache_config.mamba_cache_mode == "align"
        self.requests = {}
        self.waiting = collections.deque()
        self.running = []  # request ids (vLLM: Request objects)
        self.limits_seen = []  # max_num_running_reqs at each schedule() entry
        self.budgets_seen = []  # max_num_scheduled_tokens at each schedule() entry
        self.shut_down = False

    def add_request(self, request_id, num_prompt_tokens=1):
        self.requests[request_id] = Request(request_id, num_prompt_tokens)
        self.waiting.append(request_id)

    def finish(self, count):
        """Finish the ``count`` oldest running requests (as update_from_output would)."""
        for request_id in self.running[:count]:
            del self.requests[request_id]
        del self.running[:count]

    def _mamba_block_aligned_split(self, request, num_new_tokens):
        # A prefill chunk ends on a block boundary unless it reaches the last full block.
        computed = request.num_computed_tokens
        if computed >= max(request.num_prompt_tokens, request.num_tokens - 1):
            return num_new_tokens  # a decode
        block = self.cache_config.block_size
        last_cache_position = request.num_tokens - request.num_tokens % block
        if computed + num_new_tokens < last_cache_position:
            return num_new_tokens // block * block
        if computed < last_cache_position < computed + num_new_tokens:
            return last_cache_position - computed
        return num_new_tokens

    def schedule(self):
        self.limits_seen.append(self.max_num_running_reqs)
        self.budgets_seen.append(self.max_num_scheduled_tokens)
        token_budget = self.max_num_scheduled_tokens
        num_scheduled_tokens = {}
        # First the running requests.
        index = 0
        while index < len(self.running) and token_budget > 0:
            request = self.requests[self.running[index]]
            index += 1
            num_new_tokens = min(request.num_tokens - request.num_computed_tokens, token_budget)
            if self.need_mamba_block_aligned_split:
                num_new_tokens = self._mamba_block_aligned_split(request, num_new_tokens)
            if num_new_tokens == 0:
                continue
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens
        # Then the waiting ones.
        admitted = []
        while self.waiting and token_budget > 0:
            if len(self.running) == self.max_num_running_reqs:
                break
            request = self.requests[self.waiting[0]]
            num_new_tokens = request.num_tokens - request.num_computed_tokens
            if (not self.scheduler_config.enable_chunked_prefill
                    and num_new_tokens > token_budget):
                break
            num_new_tokens = min(num_new_tokens, token_budget)
            if self.need_mamba_block_aligned_split:
                num_new_tokens = self._mamba_block_aligned_split(request, num_new_tokens)
                if num_new_tokens == 0:
                    break
            self.waiting.popleft()
            self.running.append(request.request_id)
            admitted.append(request.request_id)
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens
        total_num_scheduled_tokens = sum(num_scheduled_tokens.values())
        assert total_num_scheduled_tokens <= self.max_num_scheduled_tokens
        assert token_budget >= 0
        assert len(self.running) <= self.max_num_running_reqs
        for request_id, num_tokens in num_scheduled_tokens.items():
            request = self.requests[request_id]
            request.num_computed_tokens += num_tokens
            if request.num_computed_tokens >= request.num_tokens:
                request.num_tokens += 1  # the token sampled in this step
        return types.SimpleNamespace(admitted=admitted, num_running=len(self.running),
                                     num_scheduled_tokens=num_scheduled_tokens,
                                     total_num_scheduled_tokens=total_num_scheduled_tokens)

    def shutdown(self):
        self.shut_down = True


class AsyncScheduler(Scheduler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_async = True


# vLLM's own module names, as the PALS scheduler logs its base class by them.
Scheduler.__module__ = "vllm.v1.core.sched.scheduler"
AsyncScheduler.__module__ = "vllm.v1.core.sched.async_scheduler"


def modules(line=LINE_MAIN):
    """Fresh stand-in modules for ``line`` (a fresh SchedulerConfig class each time, so that a
    test's patch of it does not leak)."""
    base = SchedulerConfigLegacy if line == LINE_0_11 else SchedulerConfigMain
    config_cls = type("SchedulerConfig", (base,), {"__module__": "vllm.config"})

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    return {
        "vllm": module("vllm"),
        "vllm.config": module("vllm.config", SchedulerConfig=config_cls, VllmConfig=VllmConfig),
        "vllm.v1": module("vllm.v1"),
        "vllm.v1.core": module("vllm.v1.core"),
        "vllm.v1.core.sched": module("vllm.v1.core.sched"),
        "vllm.v1.core.sched.scheduler": module("vllm.v1.core.sched.scheduler",
                                               Scheduler=Scheduler),
        "vllm.v1.core.sched.async_scheduler": module("vllm.v1.core.sched.async_scheduler",
                                                     AsyncScheduler=AsyncScheduler),
    }
