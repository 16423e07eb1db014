import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import fake_vllm  # noqa: E402
import pals_vllm  # noqa: E402
import pals_vllm.scheduler  # noqa: E402


def _install(monkeypatch, line):
    for name, module in fake_vllm.modules(line).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(pals_vllm, "_registered", False)
    pals_vllm.scheduler._forget_classes()


@pytest.fixture(autouse=True)
def no_heartbeat_thread(monkeypatch):
    """Schedulers start no heartbeat thread unless a test sets the interval itself."""
    monkeypatch.setenv("PALS_BATCH_CAP_ACK_INTERVAL_S", "0")


@pytest.fixture(autouse=True)
def no_step_tokens_file_from_the_environment(monkeypatch):
    """The step token budget file follows the cap file unless a test sets it."""
    monkeypatch.delenv("PALS_STEP_TOKENS_FILE", raising=False)


@pytest.fixture
def fake_vllm_modules(monkeypatch):
    """Install the stand-in (vLLM main's behaviour) as vllm.* in sys.modules."""
    _install(monkeypatch, fake_vllm.LINE_MAIN)
    yield fake_vllm
    pals_vllm.scheduler._forget_classes()


@pytest.fixture(params=fake_vllm.LINES)
def vllm_line(request, monkeypatch):
    """Each supported line's configuration behaviour in turn: yields the line's name."""
    _install(monkeypatch, request.param)
    yield request.param
    pals_vllm.scheduler._forget_classes()


@pytest.fixture
def install_line(monkeypatch):
    """Installs the stand-in of one line: install_line("0.11")."""
    def install(line):
        _install(monkeypatch, line)
        return line
    yield install
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
