"""A small stand-in for vLLM V1's scheduler, with the attribute names of the real one.

Mirrors the facts PALS relies on (vllm/v1/core/sched/scheduler.py, checked at vLLM commit
00024d314514900f361ad072af6931e403b7f589): ``__init__`` sets
``max_num_running_reqs = scheduler_config.max_num_seqs`` and ``running = []``; ``schedule()``
admits waiting requests until ``len(running) == max_num_running_reqs`` (an equality test) and
then asserts ``len(running) <= max_num_running_reqs``. ``AsyncScheduler`` subclasses
``Scheduler`` and inherits ``schedule()``. Written for these tests, not copied from vLLM.
"""

import collections
import types


class SchedulerConfig:
    def __init__(self, max_num_seqs):
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max(2048, max_num_seqs)


class ParallelConfig:
    """vllm/config/parallel.py: each data-parallel engine core gets its rank."""

    def __init__(self, data_parallel_size=1, data_parallel_rank=0):
        self.data_parallel_size = data_parallel_size
        self.data_parallel_rank = data_parallel_rank


class VllmConfig:
    def __init__(self, max_num_seqs, data_parallel_size=1, data_parallel_rank=0):
        self.scheduler_config = SchedulerConfig(max_num_seqs)
        self.parallel_config = ParallelConfig(data_parallel_size, data_parallel_rank)


class Scheduler:
    def __init__(self, vllm_config, kv_cache_config=None, structured_output_manager=None,
                 block_size=16, include_finished_set=False, log_stats=False):
        self.vllm_config = vllm_config
        self.scheduler_config = vllm_config.scheduler_config
        self.max_num_running_reqs = self.scheduler_config.max_num_seqs
        self.max_num_scheduled_tokens = self.scheduler_config.max_num_batched_tokens
        self.waiting = collections.deque()
        self.running = []
        self.limits_seen = []  # max_num_running_reqs at each schedule() entry

    def add_request(self, request_id):
        self.waiting.append(request_id)

    def finish(self, count):
        """Finish the ``count`` oldest running requests (as update_from_output would)."""
        del self.running[:count]

    def schedule(self):
        self.limits_seen.append(self.max_num_running_reqs)
        admitted = []
        while self.waiting:
            if len(self.running) == self.max_num_running_reqs:
                break
            request = self.waiting.popleft()
            self.running.append(request)
            admitted.append(request)
        assert len(self.running) <= self.max_num_running_reqs
        return types.SimpleNamespace(admitted=admitted, num_running=len(self.running))


class AsyncScheduler(Scheduler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_async = True
