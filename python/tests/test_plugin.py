import importlib
import os
import sys

import pytest

import pals_vllm

PYPROJECT = os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")


def test_register_is_idempotent(monkeypatch):
    monkeypatch.setattr(pals_vllm, "_registered", False)
    assert pals_vllm.register() is True
    assert pals_vllm.is_registered()
    for _ in range(100):
        assert pals_vllm.register() is False
    assert pals_vllm.is_registered()


def test_register_imports_nothing_heavy(monkeypatch):
    monkeypatch.setattr(pals_vllm, "_registered", False)
    monkeypatch.delitem(sys.modules, "pals_vllm.scheduler", raising=False)
    before = set(sys.modules)
    pals_vllm.register()
    new = set(sys.modules) - before
    assert not any(name == "vllm" or name.startswith("vllm.") for name in new)
    assert "pals_vllm.scheduler" not in new


def test_entry_point_declared_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(PYPROJECT, "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["entry-points"]["vllm.general_plugins"] == {"pals": "pals_vllm:register"}
    assert project.get("dependencies", []) == []


def test_entry_point_target_resolves():
    module_name, attr = "pals_vllm:register".split(":")
    target = getattr(importlib.import_module(module_name), attr)
    assert callable(target)
