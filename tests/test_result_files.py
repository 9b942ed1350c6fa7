"""Result files: group-readable under any umask; commands refuse to overwrite results without
``--force`` (issue 15 item 3)."""

import os
import stat

import pytest

from localcomp.provenance import write_bytes_atomic, write_json_atomic


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o640)])
def test_atomic_writes_are_group_readable_under_any_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    write_json_atomic(tmp_path / "sub" / "b.json", {"a": 1})
    for path in (tmp_path / "a.bin", tmp_path / "sub" / "b.json"):
        assert stat.S_IMODE(path.stat().st_mode) == expected
