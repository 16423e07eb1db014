"""One scheduler entry point on every supported vLLM line (issue 14, item 1).

The stand-in models each line's configuration behaviour (fake_vllm.py): vLLM 0.10.x-0.11.0,
whose SchedulerConfig.__post_init__ replaces scheduler_cls under async scheduling, and main,
which uses a custom class as given and turns async scheduling on by default.
"""

import logging
import sys

import pytest

import fake_vllm
import pals_vllm
import pals_vllm.compat as compat
import pals_vllm.scheduler as pals_scheduler
from pals_vllm import batch_cap

ENTRY = "pals_vllm.scheduler.PalsScheduler"


def serve(line, async_scheduling, scheduler_cls=ENTRY, load_plugins=True):
    """`vllm serve --max-num-seqs 8 --scheduler-cls ENTRY [--(no-)async-scheduling]` on line,
    up to the scheduler the engine core builds."""
    config = fake_vllm.make_engine_config(line, 8, scheduler_cls=scheduler_cls,
                                          async_scheduling=async_scheduling,
                                          load_plugins=load_plugins)
    return fake_vllm.EngineCore(config, line)


@pytest.mark.parametrize("async_scheduling", [True, False], ids=["async", "sync"])
def test_the_base_class_follows_the_engines_config_on_every_line(vllm_line, cap_file,
                                                                  async_scheduling):
    core = serve(vllm_line, async_scheduling)
    s = core.scheduler
    assert isinstance(s, pals_scheduler.PalsScheduler)
    assert isinstance(s, fake_vllm.AsyncScheduler) == async_scheduling
    assert core.async_scheduling == async_scheduling  # the engine and the scheduler agree
    # And it caps.
    cap_file.write_bytes(batch_cap.encode_batch_cap(3))
    for i in range(10):
        s.add_request(f"r{i}")
    s.schedule()
    assert len(s.running) == 3


def test_main_turns_async_scheduling_on_by_default(install_line, cap_file):
    install_line(fake_vllm.LINE_MAIN)
    core = serve(fake_vllm.LINE_MAIN, async_scheduling=None)  # no flag given
    assert core.async_scheduling
    assert isinstance(core.scheduler, pals_scheduler.PalsSchedulerAsync)
    assert core.scheduler.hash_block_size == 16  # main's newer keyword reaches vLLM's __init__


def test_the_old_lines_drop_a_custom_class_without_the_plugin(install_line, cap_file):
    # The bug the plugin's register() fixes: without it, vLLM 0.10-0.11.0 builds its own
    # AsyncScheduler and the cap silently does nothing (no acknowledgement either).
    install_line(fake_vllm.LINE_0_11)
    core = serve(fake_vllm.LINE_0_11, async_scheduling=True, load_plugins=False)
    assert type(core.scheduler) is fake_vllm.AsyncScheduler
    assert not (cap_file.parent / "batch_cap.ack").exists()


def test_register_keeps_the_pals_class_on_the_old_lines(install_line, cap_file, caplog):
    install_line(fake_vllm.LINE_0_11)
    with caplog.at_level(logging.INFO, logger=compat.LOGGER_NAME):
        core = serve(fake_vllm.LINE_0_11, async_scheduling=True)
    assert isinstance(core.scheduler, pals_scheduler.PalsSchedulerAsync)
    assert core.scheduler.vllm_config.scheduler_config.scheduler_cls == ENTRY
    assert "kept --scheduler-cls " + ENTRY in caplog.text
    assert batch_cap.read_ack(str(cap_file) + ".ack") is not None


def test_register_leaves_other_classes_and_stock_choices_to_vllm(install_line):
    install_line(fake_vllm.LINE_0_11)
    pals_vllm.register()
    config_cls = sys.modules["vllm.config"].SchedulerConfig
    assert config_cls(async_scheduling=True).scheduler_cls == fake_vllm.ASYNC_SCHEDULER_QUALNAME
    assert (config_cls(scheduler_cls="my.Sched", async_scheduling=True).scheduler_cls
            == fake_vllm.ASYNC_SCHEDULER_QUALNAME)
    assert config_cls(scheduler_cls=ENTRY).scheduler_cls == ENTRY  # sync: nothing replaced
    # The old alias is kept too, and a class object as well as a name.
    assert (config_cls(scheduler_cls="pals_vllm.scheduler.PalsAsyncScheduler",
                       async_scheduling=True).scheduler_cls
            == "pals_vllm.scheduler.PalsAsyncScheduler")
    cls = pals_scheduler.PalsScheduler
    assert config_cls(scheduler_cls=cls, async_scheduling=True).scheduler_cls is cls


def test_compat_install_per_line(install_line):
    install_line(fake_vllm.LINE_MAIN)
    assert compat.install() == "not-needed"  # get_scheduler_cls(): a custom class as given
    install_line(fake_vllm.LINE_0_11)
    assert compat.install() == "installed"
    wrapped = sys.modules["vllm.config"].SchedulerConfig.__post_init__
    assert compat.install() == "installed"  # idempotent: not wrapped twice
    assert sys.modules["vllm.config"].SchedulerConfig.__post_init__ is wrapped
    assert compat.install(modules={}) == "no-vllm"
    assert compat.install(modules={"vllm.config": object()}) == "unknown"


def test_register_never_stops_vllm(install_line, monkeypatch, caplog):
    install_line(fake_vllm.LINE_0_11)

    def broken(modules=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(compat, "install", broken)
    with caplog.at_level(logging.WARNING, logger=compat.LOGGER_NAME):
        assert pals_vllm.register() is True
    assert "launch vLLM without --async-scheduling" in caplog.text


def test_the_old_name_is_an_alias_that_follows_the_config_too(vllm_line, cap_file):
    core = serve(vllm_line, async_scheduling=False,
                 scheduler_cls="pals_vllm.scheduler.PalsAsyncScheduler")
    assert type(core.scheduler) is pals_scheduler.PalsScheduler  # sync config: sync base
    core = serve(vllm_line, async_scheduling=True,
                 scheduler_cls="pals_vllm.scheduler.PalsAsyncScheduler")
    assert isinstance(core.scheduler, fake_vllm.AsyncScheduler)


def test_fails_fast_naming_the_flag_without_an_async_scheduler(fake_vllm_modules, monkeypatch,
                                                               cap_file):
    monkeypatch.setitem(sys.modules, "vllm.v1.core.sched.async_scheduler", None)
    pals_scheduler._forget_classes()
    config = fake_vllm.VllmConfig(8, async_scheduling=True)
    with pytest.raises(RuntimeError, match="without --async-scheduling"):
        pals_scheduler.PalsScheduler(config, None, None, 16)
    # Synchronous engines do not need it.
    s = pals_scheduler.PalsScheduler(fake_vllm.VllmConfig(8), None, None, 16)
    assert type(s) is pals_scheduler.PalsScheduler


def test_a_call_without_a_vllm_config_is_refused(fake_vllm_modules):
    with pytest.raises(TypeError, match="no vllm_config"):
        pals_scheduler.PalsScheduler(None, None, None, 16)
