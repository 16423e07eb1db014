import os
import sys
import types

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import fake_vllm  # noqa: E402
import pals_vllm.scheduler  # noqa: E402


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def fake_vllm_modules(monkeypatch):
    """Install the stand-in as vllm.v1.core.sched.{scheduler,async_scheduler}."""
    modules = {
        "vllm": _module("vllm"),
        "vllm.v1": _module("vllm.v1"),
        "vllm.v1.core": _module("vllm.v1.core"),
        "vllm.v1.core.sched": _module("vllm.v1.core.sched"),
        "vllm.v1.core.sched.scheduler": _module(
            "vllm.v1.core.sched.scheduler", Scheduler=fake_vllm.Scheduler),
        "vllm.v1.core.sched.async_scheduler": _module(
            "vllm.v1.core.sched.async_scheduler", AsyncScheduler=fake_vllm.AsyncScheduler),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    pals_vllm.scheduler._forget_classes()
    yield fake_vllm
    pals_vllm.scheduler._forget_classes()


@pytest.fixture
def cap_file(tmp_path, monkeypatch):
    """A batch-cap path in tmp_path, set in PALS_BATCH_CAP_FILE; the file is not created."""
    path = tmp_path / "batch_cap"
    monkeypatch.setenv("PALS_BATCH_CAP_FILE", str(path))
    return path


@pytest.fixture
def no_vllm(monkeypatch):
    """Make ``import vllm`` fail, as on a machine without vLLM."""
    for name in list(sys.modules):
        if name == "vllm" or name.startswith("vllm."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "vllm", None)
    pals_vllm.scheduler._forget_classes()
    yield
    pals_vllm.scheduler._forget_classes()
