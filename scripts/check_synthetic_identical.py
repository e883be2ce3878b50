"""Check that the synthetic sets are identical to those of an older checkout.

Generates every synthetic dataset (all families, every variant, with irrelevant
variants) for several sizes and seeds with the lgkit found first on ``sys.path`` and
prints a digest per configuration, or compares two runs' digests:

    PYTHONPATH=/path/to/old python scripts/check_synthetic_identical.py dump old.json
    PYTHONPATH=$PWD        python scripts/check_synthetic_identical.py dump new.json
    python scripts/check_synthetic_identical.py compare old.json new.json

The dump holds every record (as JSON), so a difference names the first differing one.
"""

from __future__ import annotations

import dataclasses
import json
import sys

CONFIGS = [(2, 0), (7, 0), (50, 0), (50, 1), (61, 3), (200, 2)]


def _records(n: int, seed: int) -> dict[str, list]:
    from lgkit.data.synthetic import synthetic_groups

    groups = synthetic_groups(n, seed=seed)
    out = {}
    for key in sorted(groups, key=repr):
        out[repr(key)] = [dataclasses.asdict(ex) for ex in groups[key]]
    return out


def dump(path: str) -> None:
    """Write every configuration's records to ``path``."""
    data = {f"n={n},seed={seed}": _records(n, seed) for n, seed in CONFIGS}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)


def compare(old_path: str, new_path: str) -> int:
    """Return 0 when both dumps are equal, else print the first difference and return 1."""
    with open(old_path, encoding="utf-8") as fh:
        old = json.load(fh)
    with open(new_path, encoding="utf-8") as fh:
        new = json.load(fh)
    n_records = 0
    for conf in old:
        if set(old[conf]) != set(new.get(conf, {})):
            print(f"{conf}: variant sets differ")
            return 1
        for key, recs in old[conf].items():
            for i, (a, b) in enumerate(zip(recs, new[conf][key], strict=True)):
                if a != b:
                    print(f"{conf} {key} record {i} differs:\n{a}\n{b}")
                    return 1
            n_records += len(recs)
    print(f"identical: {len(old)} configurations, {n_records} records")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
