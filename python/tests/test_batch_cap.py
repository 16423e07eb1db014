import os
import struct

import pytest

from pals_vllm import batch_cap


def test_default_path_and_env_override():
    assert batch_cap.batch_cap_path({}) == "/run/pals/batch_cap"
    assert batch_cap.batch_cap_path({"PALS_BATCH_CAP_FILE": ""}) == "/run/pals/batch_cap"
    assert batch_cap.batch_cap_path({"PALS_BATCH_CAP_FILE": "/tmp/x"}) == "/tmp/x"


def test_reads_little_endian_uint64(tmp_path):
    path = tmp_path / "cap"
    path.write_bytes(struct.pack("<Q", 48))
    assert batch_cap.read_batch_cap(str(path)) == 48
    path.write_bytes(b"\x01\x02\x00\x00\x00\x00\x00\x00")
    assert batch_cap.read_batch_cap(str(path)) == 0x0201


def test_encode_round_trips(tmp_path):
    path = tmp_path / "cap"
    path.write_bytes(batch_cap.encode_batch_cap(2**64 - 1))
    assert batch_cap.read_batch_cap(str(path)) == 2**64 - 1


@pytest.mark.parametrize("read", [batch_cap.read_batch_cap, batch_cap.read_step_tokens],
                         ids=["batch-cap", "step-tokens"])
@pytest.mark.parametrize("content", [b"", b"\x10", b"\x10" * 7, b"\x10" * 9, b"\x00" * 8],
                         ids=["empty", "one-byte", "short", "long", "zero"])
def test_unusable_content_means_none(tmp_path, content, read):
    path = tmp_path / "cap"
    path.write_bytes(content)
    assert read(str(path)) is None


def test_missing_or_unreadable_means_no_cap(tmp_path):
    assert batch_cap.read_batch_cap(str(tmp_path / "absent")) is None
    assert batch_cap.read_batch_cap(str(tmp_path)) is None  # a directory
    if os.geteuid() != 0:
        path = tmp_path / "locked"
        path.write_bytes(batch_cap.encode_batch_cap(4))
        path.chmod(0)
        assert batch_cap.read_batch_cap(str(path)) is None


@pytest.mark.parametrize("launch, cap, running, expected", [
    (256, None, 0, 256),   # no cap: stock
    (256, 0, 10, 256),     # zero: stock
    (256, 64, 10, 64),     # cap below launch
    (256, 1000, 10, 256),  # never above the launch value
    (256, 64, 100, 100),   # drain: never below the running count
    (256, 64, 64, 64),
    (256, 1, 0, 1),
])
def test_effective_limit(launch, cap, running, expected):
    assert batch_cap.effective_limit(launch, cap, running) == expected


def test_a_cap_not_refreshed_within_the_maximum_age_expires(tmp_path):
    path = tmp_path / "cap"
    path.write_bytes(batch_cap.encode_batch_cap(32))
    mtime = os.stat(path).st_mtime
    assert batch_cap.read_batch_cap(str(path), max_age=10, now=mtime + 5) == 32
    assert batch_cap.read_batch_cap(str(path), max_age=10, now=mtime + 11) is None
    assert batch_cap.read_batch_cap(str(path), max_age=0, now=mtime + 1e6) == 32  # never
    assert batch_cap.file_age_s(str(path), now=mtime + 3) == pytest.approx(3)
    assert batch_cap.file_age_s(str(tmp_path / "absent")) is None


@pytest.mark.parametrize("value, expected", [
    (None, 10.0), ("", 10.0), ("30", 30.0), ("0", 0.0), ("-1", 10.0), ("x", 10.0),
    ("nan", 10.0), ("inf", 10.0)])
def test_maximum_age_from_the_environment(value, expected):
    env = {} if value is None else {"PALS_BATCH_CAP_MAX_AGE_S": value}
    assert batch_cap.max_age_s(env) == expected
