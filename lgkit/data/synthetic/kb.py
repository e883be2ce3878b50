"""The synthetic set's hand-written knowledge base, read from the JSON files in ``kb/``.

Popular subjects are real, well-known entities with facts stated conservatively.
Long-tail subjects are *invented* by :mod:`lgkit.data.synthetic.wiki` from the name parts
in ``kb/wiki_invented.json`` (a model cannot have seen them). Tables of records (one JSON
object per row) are exposed as lists of tuples in the files' field order; ``CONFUSABLE``
as a list of sets; everything else as stored.

Example:
    >>> len(COUNTRIES) >= 20 and all(len(c) == 8 for c in COUNTRIES)
    True
    >>> ANIMALS[0][:3]
    ('ant', 'an', 'insect')
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["load_kb"]


def load_kb(name: str) -> dict[str, Any]:
    """Read ``kb/<name>.json``: rows of objects become tuples, ``CONFUSABLE`` sets.

    Example:
        >>> load_kb("arith")["NAMES"][0]
        ('Maya', 'she', 'her')
    """
    text = (
        resources.files("lgkit.data.synthetic")
        .joinpath("kb")
        .joinpath(f"{name}.json")  # one part per call: Python 3.10
        .read_text(encoding="utf-8")
    )
    out: dict[str, Any] = {}
    for key, value in json.loads(text).items():
        if key == "CONFUSABLE":
            value = [set(group) for group in value]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            value = [tuple(row.values()) for row in value]
        out[key] = value
    return out


_COMMONSENSE = load_kb("commonsense")
_ARITH = load_kb("arith")
_POPULAR = load_kb("wiki_popular")
_INVENTED = load_kb("wiki_invented")

# commonsense: (name, article, class, length_cm, weight_kg, habitat, can_fly, lays_eggs, fact)
ANIMALS: list[tuple[Any, ...]] = _COMMONSENSE["ANIMALS"]
# (name, article, length_cm, weight_kg, use)
OBJECTS: list[tuple[Any, ...]] = _COMMONSENSE["OBJECTS"]
CLASS_TRAITS: dict[str, str] = _COMMONSENSE["CLASS_TRAITS"]
#: habitats that must not appear together as options (one could also be right)
CONFUSABLE: list[set[str]] = _COMMONSENSE["CONFUSABLE"]
HABITATS: list[str] = _COMMONSENSE["HABITATS"]
HABITAT_NOTES: dict[str, str] = _COMMONSENSE["HABITAT_NOTES"]

# arithmetic: (name, subject pronoun, possessive), (singular, plural)
NAMES: list[tuple[str, str, str]] = _ARITH["NAMES"]
SHOP_ITEMS: list[tuple[str, str]] = _ARITH["SHOP_ITEMS"]
THINGS_TO_BUY: list[str] = _ARITH["THINGS_TO_BUY"]

# wiki, popular subjects
COUNTRIES: list[tuple[str, ...]] = _POPULAR["COUNTRIES"]
PLANETS: list[tuple[Any, ...]] = _POPULAR["PLANETS"]
ELEMENTS: list[tuple[Any, ...]] = _POPULAR["ELEMENTS"]
PEOPLE: list[tuple[Any, ...]] = _POPULAR["PEOPLE"]
BACKGROUND: dict[str, list[str]] = _POPULAR["BACKGROUND"]

# wiki, invented long-tail subjects (name parts)
GENUS_A: list[str] = _INVENTED["GENUS_A"]
GENUS_B: list[str] = _INVENTED["GENUS_B"]
EPITHETS: list[str] = _INVENTED["EPITHETS"]
MOTH_FAMILIES: list[str] = _INVENTED["MOTH_FAMILIES"]
COLOURS: list[str] = _INVENTED["COLOURS"]
PATTERNS: list[str] = _INVENTED["PATTERNS"]
HOST_PLANTS: list[str] = _INVENTED["HOST_PLANTS"]
MONTHS: list[str] = _INVENTED["MONTHS"]
MOTH_COUNTRIES: list[str] = _INVENTED["MOTH_COUNTRIES"]
FIRST_NAMES: list[str] = _INVENTED["FIRST_NAMES"]
LAST_NAMES: list[str] = _INVENTED["LAST_NAMES"]
SYLL_A: list[str] = _INVENTED["SYLL_A"]
SYLL_B: list[str] = _INVENTED["SYLL_B"]
VILLAGE_COUNTRIES: list[tuple[str, str]] = _INVENTED["VILLAGE_COUNTRIES"]
DIRECTIONS: list[str] = _INVENTED["DIRECTIONS"]
CROPS: list[str] = _INVENTED["CROPS"]
SAINTS: list[str] = _INVENTED["SAINTS"]
NATIONALITIES: list[str] = _INVENTED["NATIONALITIES"]
POSITIONS: list[str] = _INVENTED["POSITIONS"]
CLUB_A: list[str] = _INVENTED["CLUB_A"]
CLUB_B: list[str] = _INVENTED["CLUB_B"]
