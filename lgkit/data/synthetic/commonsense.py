"""Synthetic commonsense (``synth_commonsense``): yes/no and multiple-choice questions.

Questions come from the knowledge base of animals and objects in ``kb/commonsense.json``.

Example:
    >>> items = synth_commonsense_items(3, seed=0)
    >>> len(items)
    3
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lgkit.data.items import Item
from lgkit.data.synthetic import kb
from lgkit.data.synthetic.common import FINAL
from lgkit.data.text import subseed
from lgkit.errors import InputError

__all__ = ["synth_commonsense_items"]


def _fmt_weight(kg: float) -> str:
    if kg >= 1000:
        t = kg / 1000
        return f"{t:g} tonnes" if t != 1 else "1 tonne"
    if kg >= 1:
        return f"{kg:g} kg"
    g = kg * 1000
    if g >= 1:
        return f"{g:g} g"
    return f"{g * 1000:g} mg"


def _fmt_length(cm: float) -> str:
    return f"{cm / 100:g} m" if cm >= 100 else f"{cm:g} cm"


@dataclass
class _Thing:
    name: str
    art: str
    length: float
    weight: float
    kind: str  # animal | object
    fact: str
    cls: str | None = None
    habitat: str | None = None
    fly: bool | None = None
    eggs: bool | None = None
    use: str | None = None

    @property
    def a(self) -> str:
        return f"{self.art} {self.name}"

    @property
    def A(self) -> str:
        return self.a[0].upper() + self.a[1:]


def _things() -> list[_Thing]:
    out = [
        _Thing(n, art, ln, w, "animal", fact, cls, hab, fly, eggs)
        for n, art, cls, ln, w, hab, fly, eggs, fact in kb.ANIMALS
    ]
    out += [
        _Thing(
            n,
            art,
            ln,
            w,
            "object",
            f"{art.capitalize()} {n} is an everyday object used to {use}.",
            use=use,
        )
        for n, art, ln, w, use in kb.OBJECTS
    ]
    return out


_HAB_PHRASE = {
    "ocean": "in the ocean",
    "desert": "in the desert",
    "Arctic sea ice": "on the Arctic sea ice",
    "Antarctic coast": "on the Antarctic coast",
    "rainforest": "in the rainforest",
    "savanna": "on the savanna",
    "farm": "on a farm",
    "pond": "in a pond",
    "forest": "in a forest",
    "river": "in a river",
    "Australian grassland": "in the Australian grassland",
}


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _q_compare(x: _Thing, y: _Thing, attr: str) -> Item:
    vx, vy = getattr(x, attr), getattr(y, attr)
    ans = vx > vy
    fmt = _fmt_weight if attr == "weight" else _fmt_length
    word, noun, verb = (
        ("heavier", "weights", "weighs about")
        if attr == "weight"
        else ("longer", "lengths", "is about")
    )
    tail = "" if attr == "weight" else " long"
    q = f"Is {x.a} {word} than {y.a}?"
    short = f"{x.A} {verb} {fmt(vx)}{tail}, while {y.a} {verb} {fmt(vy)}{tail}."
    ratio = max(vx, vy) / min(vx, vy)
    big, small = (x, y) if vx > vy else (y, x)
    long = (
        f"To answer this, compare the typical {noun} of the two.\n\n"
        f"1. **{x.name.capitalize()}:** {x.fact} A typical {x.name} {verb} {fmt(vx)}{tail}.\n"
        f"2. **{y.name.capitalize()}:** {y.fact} A typical {y.name} {verb} {fmt(vy)}{tail}.\n"
        f"3. **Comparison:** {fmt(vx)} is {'more' if ans else 'less'} than {fmt(vy)}; "
        f"{big.a} is roughly {ratio:.0f} times {word} than {small.a}, so the difference is clear "
        f"even allowing for variation between individuals.\n\n"
        f"Therefore, {x.a} is {'' if ans else 'not '}{word} than {y.a}."
    )
    a = _yn(ans)
    return Item(
        q,
        a,
        {"none": a, "simplified": short + FINAL.format(a), "detailed": long + FINAL.format(a)},
        meta={"qtype": "yes_no", "kind": f"compare_{attr}"},
    )


def _q_class(x: _Thing, cls: str) -> Item:
    assert x.cls is not None, "class questions are asked about animals"
    ans = x.cls == cls
    q = f"Is {x.a} {'an' if cls[0] in 'aeiou' else 'a'} {cls}?"
    own = kb.CLASS_TRAITS[x.cls or ""]
    long = (
        f"Let's check what defines the group and what kind of animal {x.a} is.\n\n"
        f"1. **What is {'an' if cls[0] in 'aeiou' else 'a'} {cls}?** {kb.CLASS_TRAITS[cls]}\n"
        f"2. **What is {x.a}?** {x.fact} Biologists classify it as {'an' if x.cls[0] in 'aeiou' else 'a'} {x.cls}. {own}\n"
        f"3. **Comparison:** {'the two match' if ans else f'{x.cls}s and {cls}s are different groups of animals'}.\n\n"
        f"Therefore, {x.a} is {'' if ans else 'not '}{'an' if cls[0] in 'aeiou' else 'a'} {cls}."
    )
    a = _yn(ans)
    short = f"{x.fact}" + (
        ""
        if ans
        else f" It is {'an' if x.cls[0] in 'aeiou' else 'a'} {x.cls}, not {'an' if cls[0] in 'aeiou' else 'a'} {cls}."
    )
    return Item(
        q,
        a,
        {"none": a, "simplified": short + FINAL.format(a), "detailed": long + FINAL.format(a)},
        meta={"qtype": "yes_no", "kind": "class"},
    )


def _q_fly(x: _Thing) -> Item:
    ans = bool(x.fly)
    q = f"Can {x.a} fly?"
    long = (
        f"Let's think about what flying needs and what we know about {x.a}.\n\n"
        "1. **What flying needs:** to fly, an animal needs wings strong enough to lift its body into the air "
        "and keep it there.\n"
        f"2. **The {x.name}:** {x.fact} {'Its wings can lift it into the air.' if ans else 'It has no wings that can lift its body into the air.'}\n"
        f"3. **Conclusion:** {'the requirement is met' if ans else 'the requirement is not met'}.\n\n"
        f"Therefore, {x.a} {'can' if ans else 'cannot'} fly."
    )
    a = _yn(ans)
    return Item(
        q,
        a,
        {"none": a, "simplified": x.fact + FINAL.format(a), "detailed": long + FINAL.format(a)},
        meta={"qtype": "yes_no", "kind": "fly"},
    )


def _q_eggs(x: _Thing) -> Item:
    assert x.cls is not None, "egg questions are asked about animals"
    ans = bool(x.eggs)
    q = f"Does {x.a} lay eggs?"
    long = (
        f"Let's recall how animals reproduce and apply it to {x.a}.\n\n"
        "1. **Two ways:** some animals lay eggs, while most mammals give birth to live young.\n"
        f"2. **The {x.name}:** {x.fact} It is {'an' if x.cls[0] in 'aeiou' else 'a'} {x.cls}. {kb.CLASS_TRAITS[x.cls]}\n"
        f"3. **Conclusion:** {'its young hatch from eggs' if ans else 'its young are born alive'}.\n\n"
        f"Therefore, {x.a} {'lays' if ans else 'does not lay'} eggs."
    )
    a = _yn(ans)
    return Item(
        q,
        a,
        {"none": a, "simplified": x.fact + FINAL.format(a), "detailed": long + FINAL.format(a)},
        meta={"qtype": "yes_no", "kind": "eggs"},
    )


def _options_text(opts: list[str]) -> str:
    return "\nOptions:\n" + "\n".join(f"- {o}" for o in opts)


def _q_habitat(x: _Thing, rng: random.Random) -> Item | None:
    assert x.habitat is not None, "habitat questions are asked about animals with a habitat"
    bad = set().union(*(g for g in kb.CONFUSABLE if x.habitat in g)) | {x.habitat}
    pool = [h for h in kb.HABITATS if h not in bad]
    if len(pool) < 3:
        return None
    opts = rng.sample(pool, 3) + [x.habitat]
    rng.shuffle(opts)
    q = f"Where does {x.a} usually live?" + _options_text(opts)
    short = f"{x.fact} {x.A} usually lives {_HAB_PHRASE[x.habitat]}."
    lines = [
        f"Let's consider what we know about {x.a} and look at each option.",
        "",
        f"{x.fact}",
        "",
    ]
    for o in opts:
        verdict = (
            "this matches where it lives."
            if o == x.habitat
            else f"this is not where {x.a} usually lives."
        )
        lines.append(f"- **{o}**: {kb.HABITAT_NOTES[o]}; {verdict}")
    lines += [
        "",
        f"Therefore, {x.a} usually lives {_HAB_PHRASE[x.habitat]}, so the answer is {x.habitat}.",
    ]
    return Item(
        q,
        x.habitat,
        {
            "none": x.habitat,
            "simplified": short + FINAL.format(x.habitat),
            "detailed": "\n".join(lines) + FINAL.format(x.habitat),
        },
        meta={"qtype": "multiple_choice", "kind": "habitat"},
    )


def _q_use(x: _Thing, objects: list[_Thing], rng: random.Random) -> Item:
    others = rng.sample([o for o in objects if o.name != x.name], 3)
    opts = [o.name for o in others] + [x.name]
    rng.shuffle(opts)
    by_name = {o.name: o for o in objects}
    q = f"Which of these would you use to {x.use}?" + _options_text(opts)
    short = f"{x.A} is used to {x.use}."
    lines = [f"We need something to {x.use}. Let's check what each option is for.", ""]
    for o in opts:
        t = by_name[o]
        verdict = "this is exactly what we need." if o == x.name else "not what we need here."
        lines.append(f"- **{o}**: used to {t.use}; {verdict}")
    lines += ["", f"Therefore, you would use {x.a} to {x.use}."]
    return Item(
        q,
        x.name,
        {
            "none": x.name,
            "simplified": short + FINAL.format(x.name),
            "detailed": "\n".join(lines) + FINAL.format(x.name),
        },
        meta={"qtype": "multiple_choice", "kind": "use"},
    )


def synth_commonsense_items(n: int, seed: int = 0) -> list[Item]:
    """``n`` commonsense questions (yes/no and multiple choice) with short and long rationales.

    The order cycles yes, no, multiple choice, so no answer covers more than a third
    of any prefix (the irrelevant builder needs at most half).

    Example:
        >>> [it.answer for it in synth_commonsense_items(3, seed=0)][:2]
        ['yes', 'no']
    """
    rng = random.Random(subseed(seed, "synth_commonsense"))
    things = _things()
    animals = [t for t in things if t.kind == "animal"]
    objects = [t for t in things if t.kind == "object"]
    classes = sorted(kb.CLASS_TRAITS)
    yes: list[Item] = []
    no: list[Item] = []
    mc: list[Item] = []
    for x in things:
        for y in things:
            if x is y:
                continue
            for attr, min_ratio in (("weight", 4.0), ("length", 3.0)):
                vx, vy = getattr(x, attr), getattr(y, attr)
                if max(vx, vy) / min(vx, vy) >= min_ratio:
                    it = _q_compare(x, y, attr)
                    (yes if it.answer == "yes" else no).append(it)
    for x in animals:
        for c in classes:
            it = _q_class(x, c)
            (yes if it.answer == "yes" else no).append(it)
        if x.fly is not None:
            it = _q_fly(x)
            (yes if it.answer == "yes" else no).append(it)
        if x.eggs is not None:
            it = _q_eggs(x)
            (yes if it.answer == "yes" else no).append(it)
        if x.habitat:
            h = _q_habitat(x, rng)
            if h is not None:
                mc.append(h)
    for x in objects:
        mc.append(_q_use(x, objects, rng))
        mc.append(_q_use(x, objects, rng))
    # the comparison questions dominate the pools; draw the kinds evenly
    pools = []
    for pool in (yes, no):
        by_kind: dict[str, list[Item]] = {}
        for it in pool:
            by_kind.setdefault(it.meta["kind"], []).append(it)
        for lst in by_kind.values():
            rng.shuffle(lst)
        mixed: list[Item] = []
        kinds = sorted(by_kind)
        while any(by_kind.values()):
            rng.shuffle(kinds)
            for k in kinds:
                if by_kind[k]:
                    mixed.append(by_kind[k].pop())
        pools.append(mixed)
    rng.shuffle(mc)
    uniq_mc: list[Item] = []
    seen_q: set[str] = set()
    for it in mc:
        if it.instruction not in seen_q:
            seen_q.add(it.instruction)
            uniq_mc.append(it)
    pools.append(uniq_mc)
    out: list[Item] = []
    idx = [0, 0, 0]
    while len(out) < n:
        progressed = False
        for p in range(3):
            if len(out) >= n:
                break
            if idx[p] < len(pools[p]):
                out.append(pools[p][idx[p]])
                idx[p] += 1
                progressed = True
        if not progressed:
            raise InputError(
                f"the commonsense knowledge base gives at most {len(out)} questions, asked for {n}"
            )
    return out
