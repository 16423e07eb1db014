"""The per-step token budget: a second file beside the batch cap, applied as vLLM's
max_num_scheduled_tokens (the token_budget of schedule()) and acknowledged like the cap."""

import logging
import os
import struct
import time

import pytest

import fake_vllm
import pals_vllm.scheduler as pals_scheduler
from pals_vllm import batch_cap


def make(fake, max_num_seqs=8, async_scheduling=False, **kwargs):
    config = fake.VllmConfig(max_num_seqs, async_scheduling=async_scheduling, **kwargs)
    return pals_scheduler.PalsScheduler(config, None, None, 16)


def tokens_file(cap_file):
    return cap_file.with_name(cap_file.name + ".step_tokens")


def publish(path, value):
    path.write_bytes(batch_cap.encode_step_tokens(value))


def ack_of(path):
    return batch_cap.read_ack(str(path) + ".ack")


def fill(scheduler, count, prompt_tokens=1, start=0):
    for i in range(start, start + count):
        scheduler.add_request(f"r{i}", prompt_tokens)


# The file: path, format, expiry.

def test_path_follows_the_cap_file_unless_set():
    assert batch_cap.step_tokens_path({}) == "/run/pals/batch_cap.step_tokens"
    assert batch_cap.step_tokens_path({"PALS_BATCH_CAP_FILE": "/tmp/cap"}) == (
        "/tmp/cap.step_tokens")
    assert batch_cap.step_tokens_path({"PALS_STEP_TOKENS_FILE": ""}) == (
        "/run/pals/batch_cap.step_tokens")
    assert batch_cap.step_tokens_path({"PALS_BATCH_CAP_FILE": "/tmp/cap",
                                       "PALS_STEP_TOKENS_FILE": "/tmp/tokens"}) == "/tmp/tokens"


def test_the_rank_is_substituted_in_either_path():
    env = {"PALS_BATCH_CAP_FILE": "/run/pals/cap.{dp_rank}"}
    assert batch_cap.step_tokens_path(env, dp_rank=2) == "/run/pals/cap.2.step_tokens"
    env["PALS_STEP_TOKENS_FILE"] = "/run/pals/tokens.{dp_rank}"
    assert batch_cap.step_tokens_path(env, dp_rank=2) == "/run/pals/tokens.2"


def test_reads_little_endian_uint64(tmp_path):
    path = tmp_path / "tokens"
    path.write_bytes(struct.pack("<Q", 512))
    assert batch_cap.read_step_tokens(str(path)) == 512
    path.write_bytes(b"\x00\x04\x00\x00\x00\x00\x00\x00")
    assert batch_cap.read_step_tokens(str(path)) == 1024
    path.write_bytes(batch_cap.encode_step_tokens(2**64 - 1))
    assert batch_cap.read_step_tokens(str(path)) == 2**64 - 1
    assert batch_cap.encode_step_tokens(3) == batch_cap.encode_batch_cap(3)  # one format


# Unusable content (empty, short, long, zero) means no budget: test_batch_cap.py runs that
# test for both readers.


def test_missing_or_unreadable_means_no_budget(tmp_path):
    assert batch_cap.read_step_tokens(str(tmp_path / "absent")) is None
    assert batch_cap.read_step_tokens(str(tmp_path)) is None  # a directory
    if os.geteuid() != 0:
        path = tmp_path / "locked"
        publish(path, 64)
        path.chmod(0)
        assert batch_cap.read_step_tokens(str(path)) is None


def test_a_budget_not_refreshed_within_the_maximum_age_expires(tmp_path):
    path = tmp_path / "tokens"
    publish(path, 256)
    mtime = os.stat(path).st_mtime
    assert batch_cap.read_step_tokens(str(path), max_age=10, now=mtime + 5) == 256
    assert batch_cap.read_step_tokens(str(path), max_age=10, now=mtime + 11) is None
    assert batch_cap.read_step_tokens(str(path), max_age=0, now=mtime + 1e6) == 256  # never


# The rule.

@pytest.mark.parametrize("launch, budget, running_limit, floor, expected", [
    (2048, None, 8, 0, 2048),    # no budget: stock
    (2048, 0, 8, 0, 2048),       # zero: stock
    (2048, 512, 8, 0, 512),      # a budget below launch
    (2048, 10**6, 8, 0, 2048),   # never above the launch value
    (2048, 4, 8, 0, 8),          # never below the running limit
    (2048, 4, 100, 0, 100),
    (64, 4, 100, 0, 64),         # ... but the launch value wins (vLLM keeps launch >= seqs)
    (2048, 512, 8, 4096, 2048),  # a floor above launch: the launch value
    (8192, 512, 8, 4096, 4096),  # the engine's floor (chunked prefill off: max_model_len)
    (2048, 1, 1, 0, 1),
])
def test_applied_step_tokens(launch, budget, running_limit, floor, expected):
    assert batch_cap.applied_step_tokens(launch, budget, running_limit, floor) == expected


# The scheduler.

@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "async"])
def test_no_file_behaves_like_stock(fake_vllm_modules, cap_file, async_scheduling):
    s = make(fake_vllm_modules, async_scheduling=async_scheduling, max_num_batched_tokens=64)
    assert s.pals_launch_tokens == 64
    fill(s, 4, prompt_tokens=100)
    out = s.schedule()
    assert out.total_num_scheduled_tokens == 64 and s.max_num_scheduled_tokens == 64
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (64, 0, 64)
    assert s.pals_step_tokens_ack_path == str(tokens_file(cap_file)) + ".ack"


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "async"])
def test_the_budget_limits_the_tokens_scheduled_in_a_step(fake_vllm_modules, cap_file,
                                                           async_scheduling):
    s = make(fake_vllm_modules, async_scheduling=async_scheduling)
    assert isinstance(s, fake_vllm_modules.AsyncScheduler) == async_scheduling
    publish(tokens_file(cap_file), 40)
    fill(s, 4, prompt_tokens=100)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 40
    assert out.total_num_scheduled_tokens == 40
    assert out.num_scheduled_tokens == {"r0": 40}  # a 40-token prefill chunk of the first
    out = s.schedule()
    assert out.total_num_scheduled_tokens == 40
    assert out.num_scheduled_tokens == {"r0": 40}
    out = s.schedule()  # r0 finishes its prompt (20 left), r1 gets the rest of the budget
    assert out.num_scheduled_tokens == {"r0": 20, "r1": 20}
    # Raised: takes effect on the next step.
    publish(tokens_file(cap_file), 1000)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 1000
    assert out.total_num_scheduled_tokens == 1 + 80 + 100 + 100  # r0 decodes, the rest prefill
    assert s.budgets_seen == [40, 40, 40, 1000]
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (1000, 1000, 2048)


def test_never_below_the_running_limit_of_the_same_step(fake_vllm_modules, cap_file):
    # Every running decode can still get a token.
    s = make(fake_vllm_modules, max_num_seqs=8)
    publish(tokens_file(cap_file), 3)
    fill(s, 20)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 8 and len(out.admitted) == 8
    out = s.schedule()
    assert out.total_num_scheduled_tokens == 8  # one token for each of the 8 decodes
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (8, 3, 2048)
    # A batch cap lowers the running limit; while it drains the limit (and the budget floor)
    # is the running count.
    publish(cap_file, 2)
    out = s.schedule()
    assert s.max_num_running_reqs == 8 and s.max_num_scheduled_tokens == 8
    assert out.total_num_scheduled_tokens == 8
    s.finish(5)
    s.schedule()
    assert s.max_num_running_reqs == 3 and s.max_num_scheduled_tokens == 3
    s.finish(2)
    out = s.schedule()
    assert s.max_num_running_reqs == 2 and s.max_num_scheduled_tokens == 3  # B=3 above the cap
    assert len(out.admitted) == 1
    publish(tokens_file(cap_file), 1)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 2 and out.total_num_scheduled_tokens == 2
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (2, 1, 2048)


def test_never_above_the_launch_value(fake_vllm_modules, cap_file):
    s = make(fake_vllm_modules, max_num_batched_tokens=512)
    publish(tokens_file(cap_file), 100_000)
    s.schedule()
    assert s.max_num_scheduled_tokens == 512
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (512, 100_000, 512)


def test_the_launch_value_is_what_vllm_set(fake_vllm_modules, cap_file):
    # The newest main may schedule fewer tokens than it batches (max_num_scheduled_tokens in the
    # scheduler config, for speculative decoding): the launch value is the scheduler's own.
    s = make(fake_vllm_modules, max_num_batched_tokens=2048, max_num_scheduled_tokens=1024)
    assert s.pals_launch_tokens == 1024
    publish(tokens_file(cap_file), 4096)
    s.schedule()
    assert s.max_num_scheduled_tokens == 1024


@pytest.mark.parametrize("content", [b"", b"\x05\x00\x00", b"\x05" * 9, b"\x00" * 8],
                         ids=["empty", "short", "long", "zero"])
def test_malformed_zero_or_removed_restores_the_launch_value(fake_vllm_modules, cap_file,
                                                            content):
    s = make(fake_vllm_modules)
    path = tokens_file(cap_file)
    publish(path, 100)
    s.schedule()
    assert s.max_num_scheduled_tokens == 100
    path.write_bytes(content)
    s.schedule()
    assert s.max_num_scheduled_tokens == 2048
    publish(path, 100)
    s.schedule()
    path.unlink()
    s.schedule()
    assert s.max_num_scheduled_tokens == 2048
    assert tuple(ack_of(path))[:3] == (2048, 0, 2048)


def test_a_stale_budget_returns_the_engine_to_its_launch_budget(fake_vllm_modules, cap_file,
                                                               monkeypatch, caplog):
    monkeypatch.setenv("PALS_BATCH_CAP_MAX_AGE_S", "5")
    s = make(fake_vllm_modules)
    path = tokens_file(cap_file)
    publish(path, 100)
    s.schedule()
    assert s.max_num_scheduled_tokens == 100
    old = os.stat(path).st_mtime - 60
    os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        s.schedule()
    assert s.max_num_scheduled_tokens == 2048
    assert "not refreshed" in caplog.text and "max_num_scheduled_tokens 2048" in caplog.text
    assert tuple(ack_of(path))[:3] == (2048, 0, 2048)


def test_an_explicit_path_and_the_rank(fake_vllm_modules, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "cap.{dp_rank}"))
    monkeypatch.setenv("PALS_STEP_TOKENS_FILE", str(tmp_path / "tokens.{dp_rank}"))
    publish(tmp_path / "tokens.1", 300)
    ranks = [make(fake_vllm_modules, data_parallel_size=2, data_parallel_rank=r) for r in (0, 1)]
    for s in ranks:
        s.schedule()
    assert [s.max_num_scheduled_tokens for s in ranks] == [2048, 300]
    assert tuple(batch_cap.read_ack(str(tmp_path / "tokens.0.ack")))[:3] == (2048, 0, 2048)
    assert tuple(batch_cap.read_ack(str(tmp_path / "tokens.1.ack")))[:3] == (300, 300, 2048)
    # Without {dp_rank} in an explicit path every rank reads one file: said at start.
    monkeypatch.setenv("PALS_STEP_TOKENS_FILE", str(tmp_path / "tokens"))
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        make(fake_vllm_modules, data_parallel_size=2, data_parallel_rank=1)
    assert "PALS_STEP_TOKENS_FILE has no {dp_rank}" in caplog.text
    assert "PALS_BATCH_CAP_FILE has no" not in caplog.text


def test_the_default_path_follows_the_ranks_cap_file(fake_vllm_modules, tmp_path, monkeypatch):
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "cap.{dp_rank}"))
    publish(tmp_path / "cap.1.step_tokens", 200)
    s = make(fake_vllm_modules, data_parallel_size=2, data_parallel_rank=1)
    s.schedule()
    assert s._pals_tokens_path == str(tmp_path / "cap.1.step_tokens")
    assert s.max_num_scheduled_tokens == 200
    assert tuple(batch_cap.read_ack(str(tmp_path / "cap.1.step_tokens.ack")))[:3] == (
        200, 200, 2048)


def test_read_once_per_schedule(fake_vllm_modules, cap_file, monkeypatch):
    calls = []
    real = batch_cap.read_step_tokens

    def counting(path, max_age=0.0, now=None):
        calls.append(path)
        return real(path, max_age)

    monkeypatch.setattr(batch_cap, "read_step_tokens", counting)
    s = make(fake_vllm_modules)
    assert calls == [str(tokens_file(cap_file))]  # at construction, for the first ack
    for _ in range(5):
        s.schedule()
    assert calls == [str(tokens_file(cap_file))] * 6


def test_a_change_is_logged_once(fake_vllm_modules, cap_file, caplog):
    s = make(fake_vllm_modules)
    publish(tokens_file(cap_file), 300)
    with caplog.at_level(logging.INFO, logger=pals_scheduler.LOGGER_NAME):
        for _ in range(3):
            s.schedule()
    assert sum("step token budget now 300 (applied 300" in r.getMessage()
               for r in caplog.records) == 1


# The acknowledgement.

def test_first_ack_at_construction_gives_the_launch_value(fake_vllm_modules, cap_file):
    before = time.time() * 1e6
    make(fake_vllm_modules, max_num_batched_tokens=4096)
    ack = ack_of(tokens_file(cap_file))
    assert (ack.applied, ack.requested, ack.launch) == (4096, 0, 4096)
    assert ack.time_us >= before - 1e6


def test_ack_on_change_and_heartbeat_only(fake_vllm_modules, cap_file, monkeypatch):
    path = str(tokens_file(cap_file)) + ".ack"
    writes = []
    real = batch_cap.write_ack
    monkeypatch.setattr(batch_cap, "write_ack", lambda *a, **k: (writes.append(a), real(*a, **k)))
    s = make(fake_vllm_modules)
    s._pals_ack_interval = 1.0
    clock = [time.monotonic()]
    s._pals_monotonic = lambda: clock[0]
    publish(tokens_file(cap_file), 100)
    for _ in range(50):  # 0.5 s of steps: one write for the change
        s.schedule()
        clock[0] += 0.01
    assert [a for a in writes if a[0] == path] == [(path, 2048, 0, 2048),
                                                   (path, 100, 100, 2048)]
    clock[0] += 0.6  # the heartbeat is due
    s.schedule()
    assert [a for a in writes if a[0] == path][-1] == (path, 100, 100, 2048)
    assert len([a for a in writes if a[0] == path]) == 3


def test_the_heartbeat_thread_acknowledges_a_new_budget_with_the_last_running_limit(
        fake_vllm_modules, cap_file, monkeypatch):
    monkeypatch.setenv("PALS_BATCH_CAP_ACK_INTERVAL_S", "0.05")
    publish(cap_file, 6)
    s = make(fake_vllm_modules, max_num_seqs=8)
    try:
        s.schedule()  # applies the running limit 6
        path = tokens_file(cap_file)
        first = ack_of(path).time_us
        deadline = time.monotonic() + 5
        while ack_of(path).time_us == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ack_of(path).time_us > first  # the heartbeat
        publish(path, 2)  # below the running limit 6: applied 6
        while ack_of(path).requested != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tuple(ack_of(path))[:3] == (6, 2, 2048)
        assert s.max_num_scheduled_tokens == 2048  # the thread never touches the scheduler
    finally:
        s.shutdown()
    assert not s._pals_thread.is_alive()


# Engine configurations where a budget below vLLM's own minimum would stop admissions.

def test_chunked_prefill_off_never_goes_below_max_model_len(fake_vllm_modules, cap_file,
                                                            caplog):
    kwargs = dict(enable_chunked_prefill=False, max_model_len=256, max_num_batched_tokens=1024)
    # The stand-in is faithful: with a budget below a whole prompt nothing is admitted.
    raw = fake_vllm_modules.Scheduler(fake_vllm_modules.VllmConfig(8, **kwargs), None, None, 16)
    raw.add_request("long", 200)
    raw.max_num_scheduled_tokens = 64
    assert raw.schedule().admitted == []
    with caplog.at_level(logging.INFO, logger=pals_scheduler.LOGGER_NAME):
        s = make(fake_vllm_modules, **kwargs)
    assert "never below 256 (chunked prefill off: max_model_len)" in caplog.text
    publish(tokens_file(cap_file), 64)
    s.add_request("long", 200)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 256 and out.admitted == ["long"]
    assert out.total_num_scheduled_tokens == 200
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (256, 64, 1024)
    publish(tokens_file(cap_file), 512)  # above the floor: as published
    s.schedule()
    assert s.max_num_scheduled_tokens == 512


def test_mamba_block_aligned_prefill_never_goes_below_the_block_size(fake_vllm_modules,
                                                                     cap_file):
    kwargs = dict(mamba_cache_mode="align", block_size=64)
    raw = fake_vllm_modules.Scheduler(fake_vllm_modules.VllmConfig(8, **kwargs), None, None, 64)
    raw.add_request("r", 500)
    raw.max_num_scheduled_tokens = 32  # below one block: no prefill chunk at all
    assert raw.schedule().admitted == []
    s = make(fake_vllm_modules, max_num_seqs=8, **kwargs)
    assert pals_scheduler.step_tokens_floor(s) == (64, "mamba block-aligned prefill: block_size")
    publish(tokens_file(cap_file), 32)
    s.add_request("r", 500)
    out = s.schedule()
    assert s.max_num_scheduled_tokens == 64 and out.num_scheduled_tokens == {"r": 64}


def test_the_usual_engine_has_no_floor_but_the_running_limit(fake_vllm_modules, cap_file):
    s = make(fake_vllm_modules)
    assert pals_scheduler.step_tokens_floor(s) == (0, "")


@pytest.mark.parametrize("async_scheduling", [True, False], ids=["async", "sync"])
def test_through_the_engine_core_on_every_line(vllm_line, cap_file, async_scheduling):
    config = fake_vllm.make_engine_config(vllm_line, 8, scheduler_cls=(
        "pals_vllm.scheduler.PalsScheduler"), async_scheduling=async_scheduling)
    s = fake_vllm.EngineCore(config, vllm_line).scheduler
    assert isinstance(s, fake_vllm.AsyncScheduler) == async_scheduling
    publish(cap_file, 3)
    publish(tokens_file(cap_file), 50)
    fill(s, 10, prompt_tokens=30)
    out = s.schedule()
    assert s.max_num_running_reqs == 3 and s.max_num_scheduled_tokens == 50
    assert out.num_scheduled_tokens == {"r0": 30, "r1": 20}
    assert tuple(ack_of(tokens_file(cap_file)))[:3] == (50, 50, 2048)
