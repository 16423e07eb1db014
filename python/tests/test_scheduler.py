import importlib
import logging
import os

import pytest

import pals_vllm.scheduler as pals_scheduler
from pals_vllm import batch_cap


def make(fake, cls_name="PalsScheduler", max_num_seqs=8, async_scheduling=False):
    cls = getattr(pals_scheduler, cls_name)
    return cls(fake.VllmConfig(max_num_seqs, async_scheduling=async_scheduling), None, None, 16)


def fill(scheduler, count, start=0):
    for i in range(start, start + count):
        scheduler.add_request(f"r{i}")


def publish(path, cap):
    path.write_bytes(batch_cap.encode_batch_cap(cap))


def test_module_imports_without_vllm(no_vllm):
    module = importlib.reload(pals_scheduler)
    assert module.BatchCapMixin is not None
    with pytest.raises(ImportError, match="needs vLLM"):
        module.PalsScheduler
    with pytest.raises(ImportError):
        from pals_vllm.scheduler import PalsAsyncScheduler  # noqa: F401
    with pytest.raises(AttributeError):
        module.NoSuchThing


def test_classes_subclass_the_vllm_schedulers(fake_vllm_modules):
    fake = fake_vllm_modules
    assert issubclass(pals_scheduler.PalsScheduler, fake.Scheduler)
    assert issubclass(pals_scheduler.PalsSchedulerAsync, fake.AsyncScheduler)
    assert issubclass(pals_scheduler.PalsSchedulerAsync, pals_scheduler.PalsScheduler)
    # The old name is the same single entry point.
    assert pals_scheduler.PalsAsyncScheduler is pals_scheduler.PalsScheduler
    assert pals_scheduler.PalsScheduler.__module__ == "pals_vllm.scheduler"
    # vLLM resolves --scheduler-cls by importing the module and getattr on it.
    module = importlib.import_module("pals_vllm.scheduler")
    assert getattr(module, "PalsScheduler") is pals_scheduler.PalsScheduler


def test_no_file_behaves_like_stock(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    out = scheduler.schedule()
    assert len(out.admitted) == 8
    assert scheduler.max_num_running_reqs == 8
    assert scheduler.pals_launch_limit == 8


def test_default_path_used_without_env(fake_vllm_modules, monkeypatch):
    monkeypatch.delenv("PALS_BATCH_CAP_FILE", raising=False)
    scheduler = make(fake_vllm_modules)
    assert scheduler._pals_cap_path == "/run/pals/batch_cap"


def test_cap_limits_admission(fake_vllm_modules, cap_file):
    publish(cap_file, 3)
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    out = scheduler.schedule()
    assert len(out.admitted) == 3
    assert scheduler.max_num_running_reqs == 3


def test_cap_is_clamped_to_launch_value(fake_vllm_modules, cap_file):
    publish(cap_file, 1000)
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 8
    assert len(scheduler.running) == 8


def test_cap_read_once_per_schedule(fake_vllm_modules, cap_file, monkeypatch):
    calls = []
    real = batch_cap.read_batch_cap

    def counting(path, max_age=0.0, now=None):
        calls.append(path)
        return real(path, max_age)

    monkeypatch.setattr(batch_cap, "read_batch_cap", counting)
    scheduler = make(fake_vllm_modules)
    assert calls == [str(cap_file)]  # once at construction, for the first acknowledgement
    for _ in range(5):
        scheduler.schedule()
    assert calls == [str(cap_file)] * 6


def test_cap_change_takes_effect_on_next_schedule(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    publish(cap_file, 2)
    scheduler.schedule()
    assert len(scheduler.running) == 2
    publish(cap_file, 5)
    scheduler.schedule()
    assert len(scheduler.running) == 5
    assert scheduler.limits_seen == [2, 5]


def test_lowering_below_running_drains_without_assert(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 30)
    scheduler.schedule()
    assert len(scheduler.running) == 8
    publish(cap_file, 3)
    # Still 8 running: the limit holds at 8 and nothing is admitted.
    out = scheduler.schedule()
    assert out.admitted == []
    assert scheduler.max_num_running_reqs == 8
    # Requests finish; the limit follows the running count down, with no admissions.
    scheduler.finish(2)
    out = scheduler.schedule()
    assert out.admitted == [] and scheduler.max_num_running_reqs == 6
    scheduler.finish(3)
    out = scheduler.schedule()
    assert out.admitted == [] and scheduler.max_num_running_reqs == 3
    # Below the cap: admissions resume, up to the cap.
    scheduler.finish(2)
    out = scheduler.schedule()
    assert len(out.admitted) == 2
    assert len(scheduler.running) == 3 and scheduler.max_num_running_reqs == 3


def test_stand_in_trips_assert_without_drain(fake_vllm_modules):
    """The stand-in is faithful: a limit below the running count trips vLLM's assert."""
    scheduler = fake_vllm_modules.Scheduler(fake_vllm_modules.VllmConfig(8), None, None, 16)
    fill(scheduler, 20)
    scheduler.schedule()
    scheduler.max_num_running_reqs = 3
    with pytest.raises(AssertionError):
        scheduler.schedule()


@pytest.mark.parametrize("content", [b"", b"\x05\x00\x00", b"\x05" * 9, b"\x00" * 8],
                         ids=["empty", "short", "long", "zero"])
def test_malformed_or_zero_restores_launch_value(fake_vllm_modules, cap_file, content):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    publish(cap_file, 2)
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 2
    cap_file.write_bytes(content)
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 8
    assert len(scheduler.running) == 8


def test_file_removed_restores_launch_value(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    publish(cap_file, 2)
    scheduler.schedule()
    cap_file.unlink()
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 8
    assert len(scheduler.running) == 8


def test_file_replaced_by_rename_is_seen(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    publish(cap_file, 2)
    scheduler.schedule()
    tmp = cap_file.with_name("batch_cap.tmp")
    publish(tmp, 4)
    tmp.replace(cap_file)
    scheduler.schedule()
    assert len(scheduler.running) == 4


def test_async_variant_applies_cap_and_drains(fake_vllm_modules, cap_file):
    scheduler = make(fake_vllm_modules, max_num_seqs=8, async_scheduling=True)
    assert scheduler.is_async and isinstance(scheduler, fake_vllm_modules.AsyncScheduler)
    fill(scheduler, 20)
    scheduler.schedule()
    assert len(scheduler.running) == 8
    publish(cap_file, 4)
    out = scheduler.schedule()
    assert out.admitted == [] and scheduler.max_num_running_reqs == 8
    scheduler.finish(5)
    out = scheduler.schedule()
    assert len(out.admitted) == 1 and len(scheduler.running) == 4
    cap_file.unlink()
    scheduler.schedule()
    assert len(scheduler.running) == 8


def test_cap_change_is_logged_once(fake_vllm_modules, cap_file, caplog):
    scheduler = make(fake_vllm_modules)
    publish(cap_file, 4)
    with caplog.at_level(logging.INFO, logger=pals_scheduler.LOGGER_NAME):
        for _ in range(3):
            scheduler.schedule()
    assert sum("batch cap now 4" in r.getMessage() for r in caplog.records) == 1


def test_a_stale_cap_returns_the_engine_to_its_launch_batch_cap(fake_vllm_modules, cap_file,
                                                               monkeypatch):
    # The daemon died (kill -9): its last cap is no longer refreshed. After the maximum age the
    # scheduler admits up to the launch max_num_seqs again, and says why.
    monkeypatch.setenv("PALS_BATCH_CAP_MAX_AGE_S", "5")
    scheduler = make(fake_vllm_modules, max_num_seqs=8)
    fill(scheduler, 20)
    publish(cap_file, 2)
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 2
    old = os.stat(cap_file).st_mtime - 60
    os.utime(cap_file, (old, old))
    scheduler.schedule()
    assert scheduler.max_num_running_reqs == 8


def test_each_data_parallel_rank_reads_its_own_cap_file(fake_vllm_modules, tmp_path, monkeypatch,
                                                        caplog):
    # One file (and one PALS group) per engine core: {dp_rank} in the path is the core's rank.
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "cap.{dp_rank}"))
    cls = getattr(pals_scheduler, "PalsScheduler")
    ranks = [cls(fake_vllm_modules.VllmConfig(8, data_parallel_size=2, data_parallel_rank=r),
                 None, None, 16) for r in (0, 1)]
    (tmp_path / "cap.1").write_bytes(batch_cap.encode_batch_cap(3))
    for s in ranks:
        fill(s, 10)
        s.schedule()
    assert ranks[0].max_num_running_reqs == 8  # no file for rank 0: stock
    assert ranks[1].max_num_running_reqs == 3
    # Without {dp_rank} every rank would read one file: said once per scheduler.
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(tmp_path / "shared"))
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        cls(fake_vllm_modules.VllmConfig(8, data_parallel_size=2, data_parallel_rank=1),
            None, None, 16)
    assert "has no {dp_rank}" in caplog.text


def test_the_rank_is_substituted_in_the_path():
    env = {"PALS_BATCH_CAP_FILE": "/run/pals/cap.{dp_rank}"}
    assert batch_cap.batch_cap_path(env, dp_rank=3) == "/run/pals/cap.3"
    assert batch_cap.batch_cap_path({}, dp_rank=3) == "/run/pals/batch_cap"


def test_logs_go_through_vllms_logger_and_warn_without_a_cap_file(fake_vllm_modules, cap_file,
                                                                  caplog):
    assert pals_scheduler.LOGGER_NAME.startswith("vllm.")  # vLLM's handlers see it
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        make(fake_vllm_modules)
    assert "no file at " + str(cap_file) + " yet" in caplog.text
    caplog.clear()
    publish(cap_file, 4)
    with caplog.at_level(logging.WARNING, logger=pals_scheduler.LOGGER_NAME):
        make(fake_vllm_modules)
    assert "no file at" not in caplog.text
