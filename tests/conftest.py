"""Shared fixtures: the released data folder, small example sets, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "layer_gradient"


def pytest_configure(config: pytest.Config) -> None:
    # tests and CI read the authors' released files from ../shared through LGKIT_DATA_DIR
    if SHARED_DATA.is_dir():
        os.environ.setdefault("LGKIT_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The authors' released example files (../shared/data/layer_gradient)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"released data not found at {SHARED_DATA} (CI clones ../shared beside the repo)"
        )
    return SHARED_DATA


@pytest.fixture
def mixed_examples():
    """Examples of mixed prompt/response lengths, one with an input field."""
    from lgkit.formats.records import Example

    return [
        Example("What is 2+3?", "", "5", dataset="toy", cot="none", correct=True),
        Example(
            "What is 2+3? Think step by step.",
            "",
            "2 plus 3 makes 5.\nThe final answer is 5",
            dataset="toy",
            cot="simplified",
            correct=True,
        ),
        Example(
            "Add the numbers.",
            "7 and 8",
            "First take 7. Then add 8 to it: 7 + 8 = 15. " * 3,
            dataset="toy",
            cot="detailed",
            correct=True,
        ),
        Example("Is the sky green?", "", "no", dataset="toy", cot="none", correct=False),
        Example(
            "Name a prime.",
            "",
            "Seven is prime because its only divisors are 1 and 7.",
            dataset="toy",
            cot="simplified",
            correct=True,
        ),
    ]
