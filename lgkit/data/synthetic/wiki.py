"""Synthetic wiki (``synth_wiki_<popularity>_<length>``): "Tell me about X." answers.

Popular subjects are real (``kb/wiki_popular.json``); long-tail subjects are invented
from the name parts in ``kb/wiki_invented.json`` and marked ``meta["fictional"]``.

Example:
    >>> items = synth_wiki_items(2, seed=0)
    >>> sorted(items), len(items["short"])
    (['long', 'medium', 'short'], 2)
"""

from __future__ import annotations

import random

from lgkit.data.items import Item
from lgkit.data.synthetic import kb
from lgkit.data.synthetic.common import WIKI_LENGTHS
from lgkit.data.text import count_words, cut_words, subseed
from lgkit.errors import InputError

__all__ = ["N_POPULAR_SUBJECTS", "synth_wiki_items"]


def _ordinal(k: int) -> str:
    return {
        1: "first",
        2: "second",
        3: "third",
        4: "fourth",
        5: "fifth",
        6: "sixth",
        7: "seventh",
        8: "eighth",
    }[k]


def _popular_subjects() -> list[tuple[str, str, list[str]]]:
    """(title, category, specific sentences) of the real, well-known subjects."""
    out = []
    for name, region, capital, lang, cur, landmark, e1, e2 in kb.COUNTRIES:
        the = "the " if name in ("United Kingdom", "United States", "Netherlands") else ""
        out.append(
            (
                name,
                "country",
                [
                    f"{the.capitalize()}{name} is a country in {region}.",
                    f"Its capital is {capital}.",
                    lang,
                    f"Its currency is {cur}.",
                    landmark,
                    e1,
                    e2,
                ],
            )
        )
    for name, pos, kind, sents in kb.PLANETS:
        art = "an" if kind[0] in "aeiou" else "a"
        out.append(
            (
                name,
                "planet",
                [
                    f"{name} is the {_ordinal(pos)} planet from the Sun.",
                    f"It is {art} {kind}.",
                    *sents,
                ],
            )
        )
    for name, sym, num, state, group, sents in kb.ELEMENTS:
        out.append(
            (
                name,
                "element",
                [
                    f"{name} is a chemical element with the symbol {sym} and atomic number {num}.",
                    f"It is {group}.",
                    f"At room temperature it is a {state}.",
                    *sents,
                ],
            )
        )
    for name, year, place, field, sents in kb.PEOPLE:
        out.append((name, "person", [f"{name} was a {field} born in {year} in {place}.", *sents]))
    return out


def _invented_subject(category: str, rng: random.Random) -> tuple[str, list[str]]:
    if category == "moth":
        genus = rng.choice(kb.GENUS_A) + rng.choice(kb.GENUS_B)
        title = f"{genus} {rng.choice(kb.EPITHETS)}"
        c1, c2 = rng.sample(kb.MOTH_COUNTRIES, 2)
        m1, m2 = sorted(rng.sample(range(12), 2))
        col1, col2 = rng.sample(kb.COLOURS, 2)
        return title, [
            f"{title} is a moth of the family {rng.choice(kb.MOTH_FAMILIES)}.",
            f"It was described by {rng.choice(kb.FIRST_NAMES)} {rng.choice(kb.LAST_NAMES)} in {rng.randint(1850, 1990)}.",
            f"It is found in {c1} and {c2}.",
            f"The wingspan is about {rng.randint(12, 48)} mm.",
            f"The forewings are {col1} with {rng.choice(kb.PATTERNS)}.",
            f"The hindwings are {col2}.",
            f"The larvae feed on {rng.choice(kb.HOST_PLANTS)} species.",
            f"Adults have been recorded in {kb.MONTHS[m1]} and {kb.MONTHS[m2]}.",
            f"The type specimen was collected at an altitude of about {rng.randrange(200, 2600, 50)} metres.",
            f"It is similar to {rng.choice(kb.GENUS_A) + rng.choice(kb.GENUS_B)} {rng.choice(kb.EPITHETS)}, "
            f"but has {rng.choice(['darker', 'paler', 'narrower', 'broader'])} forewings.",
            "Its conservation status has not been evaluated.",
        ]
    if category == "village":
        name = rng.choice(kb.SYLL_A) + rng.choice(kb.SYLL_B)
        admin = rng.choice(kb.SYLL_A) + rng.choice(kb.SYLL_B)
        town = rng.choice(kb.SYLL_A) + rng.choice(kb.SYLL_B)
        river = rng.choice(kb.SYLL_A) + rng.choice(kb.SYLL_B)
        if len({name, admin, town, river}) < 4:
            return _invented_subject(category, rng)
        country, unit = rng.choice(kb.VILLAGE_COUNTRIES)
        cr1, cr2 = rng.sample(kb.CROPS, 2)
        return name, [
            f"{name} is a village in the {admin} {unit}, in {country}.",
            f"It lies approximately {rng.randint(3, 40)} kilometres {rng.choice(kb.DIRECTIONS)} of the town of {town}.",
            f"At the {rng.choice([2002, 2006, 2011, 2016, 2021])} census it had a population of {rng.randint(40, 1900)}.",
            f"The village is first mentioned in records from {rng.randint(1180, 1650)}.",
            f"Its church of Saint {rng.choice(kb.SAINTS)} dates from the {rng.choice(['16th', '17th', '18th', '19th'])} century.",
            f"Most residents work in farming, growing {cr1} and {cr2}.",
            f"The small river {river} flows through the village.",
            f"The nearest railway station is in {town}.",
            f"A stone bridge over the {river} was built in {rng.randint(1780, 1930)}.",
            f"The village has a volunteer fire brigade founded in {rng.randint(1880, 1960)}.",
        ]
    first = rng.choice(
        [
            "Anton",
            "Victor",
            "Emil",
            "Jonas",
            "Tomas",
            "Pavel",
            "Mikkel",
            "Rasmus",
            "Andrés",
            "Kaspar",
        ]
    )
    title = f"{first} {rng.choice(kb.LAST_NAMES)}"
    nat, pos = rng.choice(kb.NATIONALITIES), rng.choice(kb.POSITIONS)
    year = rng.randint(1975, 2001)
    c1, c2 = rng.sample([f"{a} {b}" for a in kb.CLUB_A for b in kb.CLUB_B], 2)
    apps = rng.randint(20, 260)
    record = (
        f"He kept {rng.randint(5, apps // 3)} clean sheets for {c2}."
        if pos == "goalkeeper"
        else f"He scored {rng.randint(1, max(2, apps // (2 if pos == 'forward' else 8)))} league goals for {c2}."
    )
    return title, [
        f"{title} (born {rng.randint(1, 28)} {rng.choice(kb.MONTHS)} {year}) is a {nat} footballer who plays as a {pos}.",
        f"He began his career in the youth academy of {c1}.",
        f"He made his senior debut in {year + rng.randint(17, 20)}.",
        f"In {year + rng.randint(21, 24)} he joined {c2}, where he made {apps} league appearances.",
        record,
        f"He has been capped {rng.randint(1, 40)} times by the {nat} national team.",
        f"He is {rng.randint(172, 194)} centimetres tall.",
        f"Before turning professional he studied {rng.choice(['economics', 'sports science', 'engineering', 'history'])}.",
        f"His younger brother also played for {c1}.",
    ]


def synth_wiki_items(
    n: int, seed: int = 0, *, popularity: str = "popular", lengths: dict[str, int] | None = None
) -> dict[str, list[Item]]:
    """Knowledge items "Tell me about X." at several lengths (same subjects at each length).

    Args:
        n: number of subjects (at most the number of popular subjects, 61, for ``popular``).
        seed: random seed (subject order, background sentences, invented subjects).
        popularity: ``popular`` (real subjects) or ``long_tail`` (invented subjects).
        lengths: ``name -> target words`` (default :data:`WIKI_LENGTHS`).

    Returns:
        ``length name -> items`` (the text cut at the sentence boundary nearest the target).

    Example:
        >>> out = synth_wiki_items(2, seed=0, popularity="long_tail")
        >>> sorted(out), out["short"][0].meta["fictional"]
        (['long', 'medium', 'short'], True)
    """
    lengths = dict(lengths or WIKI_LENGTHS)
    rng = random.Random(subseed(seed, "synth_wiki", popularity))
    if popularity == "popular":
        subjects = _popular_subjects()
        rng.shuffle(subjects)
        if n > len(subjects):
            raise InputError(
                f"the synthetic set has {len(subjects)} popular wiki subjects, asked for {n}"
            )
        chosen = [(t, c, s, False) for t, c, s in subjects[:n]]
    elif popularity == "long_tail":
        cats = ["moth", "village", "athlete"]
        chosen, seen = [], set()
        k = 0
        while len(chosen) < n:
            cat = cats[k % 3]
            k += 1
            title, sents = _invented_subject(cat, rng)
            if title in seen:
                continue
            seen.add(title)
            chosen.append((title, cat, sents, True))
    else:
        raise InputError(f"popularity must be 'popular' or 'long_tail', got {popularity!r}")
    out: dict[str, list[Item]] = {ln: [] for ln in lengths}
    for title, cat, sents, fictional in chosen:
        bg = list(kb.BACKGROUND[cat])
        rng.shuffle(bg)
        text = " ".join(sents) + "\n\n" + " ".join(bg)
        for ln, words in lengths.items():
            cut = cut_words(text, words)
            out[ln].append(
                Item(
                    f"Tell me about {title}.",
                    None,
                    {"none": cut},
                    meta={
                        "title": title,
                        "category": cat,
                        "fictional": fictional,
                        "popularity": popularity,
                        "length": ln,
                        "words": words,
                        "n_words": count_words(cut),
                        "variant": f"{popularity}_wikipedia_{ln}",
                    },
                )
            )
    return out


#: number of popular synthetic wiki subjects (the most a wiki variant can hold)
N_POPULAR_SUBJECTS = len(_popular_subjects())
