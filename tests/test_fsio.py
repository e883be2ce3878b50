"""Tests of lgkit.fsio: the one atomic-write helper."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lgkit.fsio import (
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    temp_name,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_create_the_folder_and_leave_no_temporary(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"k": [1, 2]}, indent=1, newline=True)
    assert target.read_text() == '{\n "k": [\n  1,\n  2\n ]\n}\n'
    atomic_write_text(tmp_path / "t.txt", "héllo", fsync=True)
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01", fsync=True)
    assert (tmp_path / "t.txt").read_text("utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_json_options_pass_through(tmp_path):
    p = atomic_write_json(tmp_path / "j", {"é": object()}, default=lambda o: "obj", indent=None)
    assert json.loads(p.read_text("utf-8")) == {"é": "obj"}
    assert "\\u00e9" in p.read_text("utf-8")  # ensure_ascii by default
    p = atomic_write_json(tmp_path / "j", {"é": 1}, indent=None, ensure_ascii=False)
    assert p.read_text("utf-8") == '{"é": 1}'


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "x.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target) as fh:
            fh.write("half a line")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})  # not serialisable: nothing written
    assert target.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_atomic_path_for_path_writers(tmp_path):
    target = tmp_path / "parts" / "part-r000-00001.parquet"
    with atomic_path(target, fsync=True) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".tmp"
        assert not target.exists()
        pq.write_table(pa.table({"a": [1, 2]}), tmp)
    assert pq.read_table(target).column("a").to_pylist() == [1, 2]
    assert _leftovers(target.parent) == []


def test_temporary_name_matches_the_store_cleanup_patterns(tmp_path):
    # formats.parts.clean_temporaries globs ".*-r000-*.tmp" and ".manifest.json.*.tmp"
    assert temp_name(tmp_path / "part-r000-00001.parquet").match(".*-r000-*.tmp")
    assert temp_name(tmp_path / "manifest.json").match(".manifest.json.*.tmp")


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path):
    target = tmp_path / "shared.json"
    payloads = [{"writer": i, "data": list(range(2000))} for i in range(6)]

    def write(obj):
        for _ in range(5):
            atomic_write_json(target, obj)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(target.read_text()) in payloads
    assert _leftovers(tmp_path) == []
