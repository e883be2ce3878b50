"""``lgkit.train.finished``: a finished run is known by its data's content, not its path."""

from __future__ import annotations

import json
import shutil

import pytest

from lgkit.errors import InputError
from lgkit.formats.records import Example, write_examples
from lgkit.train import TrainConfig, finished, train

CFG = TrainConfig(steps=1, batch_size=2, probe_every=0, save_every=0, checkpoints=False,
                  probe_limit=2, progress=False)  # fmt: skip


def _examples(n: int) -> list[Example]:
    return [Example(f"What is {i} plus {i}?", "", f"It is {2 * i}.", id=f"q{i}") for i in range(n)]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished run whose data file lives inside the folder that is later moved."""
    top = tmp_path_factory.mktemp("finished") / "project"
    data = write_examples(top / "data" / "train.jsonl", _examples(4))
    train("tiny-random-llama", data, top / "run", CFG)
    return top


def _copy(top, tmp_path):
    dst = tmp_path / "moved"
    shutil.copytree(top, dst)
    return dst


def test_a_finished_run_is_recognised(done):
    assert finished("tiny-random-llama", done / "data" / "train.jsonl", done / "run", CFG)
    rec = json.loads((done / "run" / "run.json").read_text())
    raw = (done / "data" / "train.jsonl").read_bytes()
    assert rec["data_content"]["bytes"] == len(raw)


def test_a_moved_run_folder_is_accepted(done, tmp_path):
    moved = _copy(done, tmp_path)
    assert finished("tiny-random-llama", moved / "data" / "train.jsonl", moved / "run", CFG)


def test_a_data_file_edited_in_place_is_refused(done, tmp_path):
    moved = _copy(done, tmp_path)
    data = moved / "data" / "train.jsonl"
    write_examples(data, [*_examples(3), Example("What is 3 plus 3?", "", "It is 7.", id="q3")])
    with pytest.raises(InputError, match="differs in: data"):
        finished("tiny-random-llama", data, moved / "run", CFG)


def test_records_given_as_a_list_are_compared_by_content(tmp_path):
    out = tmp_path / "run"
    train("tiny-random-llama", _examples(4), out, CFG)
    assert finished("tiny-random-llama", _examples(4), out, CFG)
    with pytest.raises(InputError, match="differs in: data"):
        finished("tiny-random-llama", _examples(3), out, CFG)


def test_a_run_json_without_content_is_compared_by_path(done, tmp_path):
    moved = _copy(done, tmp_path)
    rec = json.loads((moved / "run" / "run.json").read_text())
    del rec["data_content"]  # as written before contents were recorded
    (moved / "run" / "run.json").write_text(json.dumps(rec))
    assert finished("tiny-random-llama", rec["data"], moved / "run", CFG)
    with pytest.raises(InputError, match="differs in: data"):
        finished("tiny-random-llama", moved / "data" / "train.jsonl", moved / "run", CFG)
