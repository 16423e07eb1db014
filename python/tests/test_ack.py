"""The acknowledgement beside the cap file (issue 14, item 2): what the scheduler applies."""

import logging
import os
import time

import pytest

import pals_vllm.scheduler as pals_scheduler
from pals_vllm import batch_cap


def make(fake, max_num_seqs=8, **kwargs):
    return pals_scheduler.PalsScheduler(fake.VllmConfig(max_num_seqs, **kwargs), None, None, 16)


def ack_of(cap_file):
    return batch_cap.read_ack(str(cap_file) + ".ack")


class Clock:
    """A monotonic clock the test moves; it starts where the real one is, so that times the
    scheduler took at construction (before the test installs it) stay comparable."""

    def __init__(self):
        self.t = time.monotonic()

    def __call__(self):
        return self.t


def with_clock(scheduler):
    clock = Clock()
    scheduler._pals_monotonic = clock
    return clock


def test_format_round_trip_and_rejects():
    data = batch_cap.encode_ack(64, 64, 256, 1_700_000_000_123_456)
    assert len(data) == batch_cap.ACK_FILE_SIZE == 40
    assert data[:8] == b"PALSACK1"
    ack = batch_cap.decode_ack(data)
    assert (ack.applied, ack.requested, ack.launch, ack.time_us) == (64, 64, 256,
                                                                    1_700_000_000_123_456)
    assert batch_cap.decode_ack(data[:39]) is None
    assert batch_cap.decode_ack(data + b"x") is None
    assert batch_cap.decode_ack(b"PALSACK2" + data[8:]) is None
    # Exactly what the C++ adapter decodes (tests/unit/engine/vllm_engine_test.cpp).
    assert batch_cap.encode_ack(3, 0, 256, 1).hex() == (
        "50414c5341434b31" "0300000000000000" "0000000000000000" "0001000000000000"
        "0100000000000000")


def test_first_ack_at_construction_gives_the_launch_value(fake_vllm_modules, cap_file):
    before = time.time() * 1e6
    make(fake_vllm_modules, max_num_seqs=8)
    ack = ack_of(cap_file)
    assert (ack.applied, ack.requested, ack.launch) == (8, 0, 8)
    assert ack.time_us >= before - 1e6


def test_ack_follows_the_cap_at_once(fake_vllm_modules, cap_file):
    s = make(fake_vllm_modules, max_num_seqs=8)
    clock = with_clock(s)
    cap_file.write_bytes(batch_cap.encode_batch_cap(3))
    s.schedule()
    assert tuple(ack_of(cap_file))[:3] == (3, 3, 8)
    cap_file.write_bytes(batch_cap.encode_batch_cap(1000))  # clamped to the launch value
    clock.t += 0.01
    s.schedule()
    assert tuple(ack_of(cap_file))[:3] == (8, 1000, 8)
    cap_file.unlink()
    s.schedule()
    assert tuple(ack_of(cap_file))[:3] == (8, 0, 8)


def test_ack_is_not_rewritten_every_step_only_on_change_and_heartbeat(fake_vllm_modules,
                                                                      cap_file, monkeypatch):
    writes = []
    real = batch_cap.write_ack
    monkeypatch.setattr(batch_cap, "write_ack", lambda *a, **k: (writes.append(a), real(*a, **k)))
    s = make(fake_vllm_modules)  # no thread (conftest); the schedule() path alone
    s._pals_ack_interval = 1.0
    clock = with_clock(s)
    cap_file.write_bytes(batch_cap.encode_batch_cap(4))
    cap_ack = str(cap_file) + ".ack"
    tokens_ack = str(cap_file) + ".step_tokens.ack"
    for _ in range(50):  # 50 steps within 0.5 s: one write for the change
        s.schedule()
        clock.t += 0.01
    assert [a[0] for a in writes].count(cap_ack) == 2  # construction + the change
    assert [a[0] for a in writes].count(tokens_ack) == 1  # construction: nothing changed
    clock.t += 0.6  # the heartbeat is due: both acknowledgements
    s.schedule()
    assert [a[0] for a in writes].count(cap_ack) == 3
    assert [a[0] for a in writes].count(tokens_ack) == 2
    assert len(writes) == 5


def test_ack_written_atomically(fake_vllm_modules, cap_file, monkeypatch):
    renames = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real(a, b)))
    make(fake_vllm_modules)
    # One rename per acknowledgement: the cap's and the step token budget's.
    assert sorted(final for _, final in renames) == [str(cap_file) + ".ack",
                                                     str(cap_file) + ".step_tokens.ack"]
    assert all(os.path.dirname(tmp) == str(cap_file.parent) for tmp, _ in renames)
    assert sorted(os.listdir(cap_file.parent)) == [  # no temporary file left
        "batch_cap.ack", "batch_cap.step_tokens.ack"]


def test_the_heartbeat_keeps_an_idle_engine_fresh_and_picks_up_a_new_cap(fake_vllm_modules,
                                                                        cap_file, monkeypatch):
    # vLLM does not call schedule() while it has no request: the heartbeat thread answers.
    monkeypatch.setenv("PALS_BATCH_CAP_ACK_INTERVAL_S", "0.05")
    s = make(fake_vllm_modules)
    try:
        first = ack_of(cap_file).time_us
        deadline = time.monotonic() + 5
        while ack_of(cap_file).time_us == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ack_of(cap_file).time_us > first
        cap_file.write_bytes(batch_cap.encode_batch_cap(2))
        while ack_of(cap_file).applied != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tuple(ack_of(cap_file))[:3] == (2, 2, 8)
        assert s.max_num_running_reqs == 8  # the thread never touches the scheduler's limit
    finally:
        s.shutdown()
    assert s.shut_down and not s._pals_thread.is_alive()


def test_an_unwritable_folder_warns_once_and_serving_goes_on(fake_vllm_modules, tmp_path,
                                                             monkeypatch, caplog):
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "missing" / "cap"))
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        s = make(fake_vllm_modules)
        clock = with_clock(s)
        for _ in range(5):
            clock.t += 2.0
            s.schedule()
    # Once for each acknowledgement (the cap's, the step token budget's), not once a step.
    messages = [r.getMessage() for r in caplog.records
                if "cannot write the acknowledgement" in r.getMessage()]
    assert len(messages) == 2
    assert sum(str(tmp_path / "missing" / "cap.ack ") in m for m in messages) == 1
    assert sum(str(tmp_path / "missing" / "cap.step_tokens.ack ") in m for m in messages) == 1


def test_each_rank_acknowledges_beside_its_own_cap_file(fake_vllm_modules, tmp_path,
                                                        monkeypatch):
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "cap.{dp_rank}"))
    (tmp_path / "cap.1").write_bytes(batch_cap.encode_batch_cap(3))
    for rank in (0, 1):
        make(fake_vllm_modules, data_parallel_size=2, data_parallel_rank=rank)
    assert tuple(batch_cap.read_ack(str(tmp_path / "cap.0.ack")))[:3] == (8, 0, 8)
    assert tuple(batch_cap.read_ack(str(tmp_path / "cap.1.ack")))[:3] == (3, 3, 8)


@pytest.mark.parametrize("value,expected", [("", 1.0), ("0", 0.0), ("0.5", 0.5), ("-1", 1.0),
                                            ("x", 1.0), ("inf", 1.0)])
def test_ack_interval_from_the_environment(value, expected):
    assert batch_cap.ack_interval_s({"PALS_BATCH_CAP_ACK_INTERVAL_S": value}) == expected
