"""Arithmetic word-problem templates of the synthetic set (one function per template).

Each template draws numbers with the given ``random.Random`` and returns a
:class:`_Problem` (question, givens, steps with explanations) or None when the draw
does not give clean integers.

Example:
    >>> import random
    >>> p = _TEMPLATES[0](random.Random(0))
    >>> p is None or p.answer == p.steps[-1].value
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lgkit.data.synthetic import kb


@dataclass
class _Step:
    title: str
    why: str
    a: int
    op: str  # + - * /
    b: int
    simple: str  # with {calc}
    money: bool = False

    @property
    def value(self) -> int:
        a, b = self.a, self.b
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0 or a % b:
            raise ValueError("non-integer division")
        return a // b


_SYM = {"+": "+", "-": "−", "*": "×", "/": "÷"}
_INVERSE = {"+": ("−", "-"), "-": ("+", "+"), "*": ("÷", "/"), "/": ("×", "*")}


def _money(v: int, money: bool) -> str:
    return f"${v}" if money else str(v)


@dataclass
class _Problem:
    template: str
    question: str
    givens: list[str]
    steps: list[_Step]
    conclusion: str  # with {ans}

    @property
    def answer(self) -> int:
        return self.steps[-1].value


def _who(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(kb.NAMES)


def _t_shop(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    (i1, p1n), (i2, p2n) = rng.sample(kb.SHOP_ITEMS, 2)
    a, p1, b, p2 = rng.randint(2, 6), rng.randint(1, 9), rng.randint(2, 5), rng.randint(2, 12)
    c1, c2 = a * p1, b * p2
    total = c1 + c2
    bill = next((x for x in (20, 50, 100) if x > total), None)
    if bill is None:
        return None
    q = (
        f"{name} buys {a} {p1n} for ${p1} each and {b} {p2n} for ${p2} each. {she.capitalize()} pays "
        f"with a ${bill} bill. How much change, in dollars, does {she} get back?"
    )
    steps = [
        _Step(
            f"Cost of the {p1n}",
            f"{name} buys {a} {p1n} at ${p1} each, so we multiply the number of {p1n} by the price of one.",
            a,
            "*",
            p1,
            f"The {p1n} cost {{calc}} dollars.",
            True,
        ),
        _Step(
            f"Cost of the {p2n}",
            f"{she.capitalize()} also buys {b} {p2n} at ${p2} each, so again we multiply count by price.",
            b,
            "*",
            p2,
            f"The {p2n} cost {{calc}} dollars.",
            True,
        ),
        _Step(
            "Total cost",
            f"Adding the two amounts gives everything {name} spends.",
            c1,
            "+",
            c2,
            f"In total {she} spends {{calc}} dollars.",
            True,
        ),
        _Step(
            "Change",
            "The change is the amount paid minus the total cost.",
            bill,
            "-",
            total,
            f"So {she} gets {{calc}} dollars back.",
            True,
        ),
    ]
    givens = [f"{a} {p1n} at ${p1} each", f"{b} {p2n} at ${p2} each", f"paid with a ${bill} bill"]
    return _Problem("shop_change", q, givens, steps, f"{name} gets ${{ans}} in change")


def _t_cookies(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    a, b, d = rng.randint(2, 5), rng.choice([6, 8, 10, 12]), rng.choice([3, 4, 5, 6])
    total = a * b
    options = [c for c in range(2, total // 2 + 1) if (total - c) % d == 0]
    if not options:
        return None
    c = rng.choice(options)
    q = (
        f"{name} bakes {a} trays of cookies with {b} cookies on each tray. {she.capitalize()} gives {c} cookies "
        f"to {her} neighbours and packs the rest into bags of {d}. How many bags does {she} fill?"
    )
    steps = [
        _Step(
            "Cookies baked",
            f"There are {a} trays with {b} cookies each, so we multiply.",
            a,
            "*",
            b,
            "There are {calc} cookies.",
            False,
        ),
        _Step(
            "Cookies left",
            f"{name} gives away {c} cookies, so we subtract them.",
            total,
            "-",
            c,
            "After giving some away, {calc} cookies are left.",
            False,
        ),
        _Step(
            "Bags filled",
            f"Each bag holds {d} cookies, so we divide the cookies left by {d}.",
            total - c,
            "/",
            d,
            "They fill {calc} bags.",
            False,
        ),
    ]
    givens = [f"{a} trays with {b} cookies each", f"{c} cookies given away", f"bags of {d} cookies"]
    return _Problem("cookies_bags", q, givens, steps, f"{name} fills {{ans}} bags")


def _t_reading(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    a, d1, b, d2 = rng.randint(10, 30), rng.randint(2, 6), rng.randint(10, 40), rng.randint(2, 5)
    r1, r2 = a * d1, b * d2
    t = r1 + r2 + rng.randint(10, 150)
    q = (
        f"{name}'s book has {t} pages. {she.capitalize()} reads {a} pages a day for {d1} days, then {b} pages "
        f"a day for {d2} days. How many pages are left to read?"
    )
    steps = [
        _Step(
            "Pages in the first part",
            f"{name} reads {a} pages on each of {d1} days, so we multiply.",
            a,
            "*",
            d1,
            f"First {she} reads {{calc}} pages.",
            False,
        ),
        _Step(
            "Pages in the second part",
            f"Then {she} reads {b} pages on each of {d2} days.",
            b,
            "*",
            d2,
            f"Then {she} reads {{calc}} pages.",
            False,
        ),
        _Step(
            "Pages read",
            "Adding both parts gives all the pages read so far.",
            r1,
            "+",
            r2,
            f"Altogether {she} reads {{calc}} pages.",
            False,
        ),
        _Step(
            "Pages left",
            f"The book has {t} pages, so we subtract the pages already read.",
            t,
            "-",
            r1 + r2,
            "So {calc} pages are left.",
            False,
        ),
    ]
    givens = [
        f"the book has {t} pages",
        f"{a} pages a day for {d1} days",
        f"{b} pages a day for {d2} days",
    ]
    return _Problem("reading_left", q, givens, steps, "{ans} pages are left to read")


def _t_savings(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    w, h, k = rng.randint(8, 20), rng.randint(3, 12), rng.randint(2, 6)
    total = w * h * k
    thing = rng.choice(kb.THINGS_TO_BUY)
    s = rng.randrange(5, max(10, total - 5), 5)
    if s >= total:
        return None
    q = (
        f"{name} earns ${w} per hour and works {h} hours each week. After {k} weeks, {she} spends ${s} on a "
        f"{thing}. How much money, in dollars, does {she} have left?"
    )
    steps = [
        _Step(
            "Weekly pay",
            f"{name} works {h} hours a week and earns ${w} for each hour, so we multiply.",
            h,
            "*",
            w,
            f"Each week {she} earns {{calc}} dollars.",
            True,
        ),
        _Step(
            f"Pay for {k} weeks",
            f"{she.capitalize()} works for {k} weeks, so we multiply the weekly pay by {k}.",
            k,
            "*",
            w * h,
            f"Over {k} weeks that is {{calc}} dollars.",
            True,
        ),
        _Step(
            "Money left",
            f"Spending ${s} on the {thing} reduces the savings by that amount.",
            total,
            "-",
            s,
            f"After buying the {thing}, {she} has {{calc}} dollars left.",
            True,
        ),
    ]
    givens = [f"${w} per hour", f"{h} hours per week", f"{k} weeks", f"${s} spent on a {thing}"]
    return _Problem("savings_left", q, givens, steps, f"{name} has ${{ans}} left")


def _t_legs(rng: random.Random) -> _Problem | None:
    c, m = rng.randint(3, 15), rng.randint(2, 6)
    ch = c * m
    q = (
        f"A farm has {c} cows and {m} times as many chickens. Each cow has 4 legs and each chicken has 2 legs. "
        "How many legs do the animals have in total?"
    )
    steps = [
        _Step(
            "Number of chickens",
            f"There are {m} times as many chickens as the {c} cows.",
            c,
            "*",
            m,
            "There are {calc} chickens.",
            False,
        ),
        _Step("Cow legs", "Each cow has 4 legs.", c, "*", 4, "The cows have {calc} legs.", False),
        _Step(
            "Chicken legs",
            "Each chicken has 2 legs.",
            ch,
            "*",
            2,
            "The chickens have {calc} legs.",
            False,
        ),
        _Step(
            "All legs",
            "Adding the legs of the cows and of the chickens gives the total.",
            4 * c,
            "+",
            2 * ch,
            "Together they have {calc} legs.",
            False,
        ),
    ]
    givens = [f"{c} cows with 4 legs each", f"{m} times as many chickens, with 2 legs each"]
    return _Problem("farm_legs", q, givens, steps, "the animals have {ans} legs")


def _t_train(rng: random.Random) -> _Problem | None:
    v1, t1, v2, t2 = (
        rng.randrange(40, 125, 5),
        rng.randint(2, 5),
        rng.randrange(40, 125, 5),
        rng.randint(2, 5),
    )
    if v1 == v2:
        return None
    q = (
        f"A train travels at {v1} km per hour for {t1} hours, then at {v2} km per hour for {t2} hours. "
        "How many kilometres does it travel in total?"
    )
    steps = [
        _Step(
            "First part of the trip",
            "Distance is speed times time.",
            v1,
            "*",
            t1,
            "First it covers {calc} km.",
            False,
        ),
        _Step(
            "Second part of the trip",
            "Again, distance is speed times time.",
            v2,
            "*",
            t2,
            "Then it covers {calc} km.",
            False,
        ),
        _Step(
            "Total distance",
            "Adding the two distances gives the whole trip.",
            v1 * t1,
            "+",
            v2 * t2,
            "In total it travels {calc} km.",
            False,
        ),
    ]
    givens = [f"{v1} km per hour for {t1} hours", f"{v2} km per hour for {t2} hours"]
    return _Problem("train_distance", q, givens, steps, "the train travels {ans} km")


def _t_tomatoes(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    r, c, k = rng.randint(2, 6), rng.randint(3, 8), rng.randint(4, 12)
    tom = r * c * k
    sizes = [s for s in (3, 4, 5, 6, 8, 10, 12) if tom % s == 0 and tom // s > 1]
    if not sizes:
        return None
    bsz = rng.choice(sizes)
    q = (
        f"{name} plants {r} rows of tomato plants with {c} plants in each row. Each plant gives {k} tomatoes. "
        f"{she.capitalize()} packs all the tomatoes into boxes of {bsz}. How many boxes does {she} fill?"
    )
    steps = [
        _Step(
            "Number of plants",
            f"There are {r} rows with {c} plants each.",
            r,
            "*",
            c,
            "There are {calc} plants.",
            False,
        ),
        _Step(
            "Number of tomatoes",
            f"Each plant gives {k} tomatoes.",
            r * c,
            "*",
            k,
            "They give {calc} tomatoes.",
            False,
        ),
        _Step(
            "Boxes filled",
            f"Each box holds {bsz} tomatoes, so we divide.",
            tom,
            "/",
            bsz,
            "That fills {calc} boxes.",
            False,
        ),
    ]
    givens = [f"{r} rows of {c} plants", f"{k} tomatoes per plant", f"boxes of {bsz} tomatoes"]
    return _Problem("tomato_boxes", q, givens, steps, f"{name} fills {{ans}} boxes")


def _t_teams(rng: random.Random) -> _Problem | None:
    c, s, g = rng.randint(2, 6), rng.randint(18, 30), rng.randint(1, 10)
    present = c * s - g
    teams = [t for t in range(2, 9) if present % t == 0]
    if not teams:
        return None
    t = rng.choice(teams)
    q = (
        f"A school has {c} classes with {s} students each. On sports day {g} students are absent, and the rest "
        f"are split equally into {t} teams. How many students are on each team?"
    )
    steps = [
        _Step(
            "All students",
            f"There are {c} classes of {s} students.",
            c,
            "*",
            s,
            "The school has {calc} students.",
            False,
        ),
        _Step(
            "Students present",
            f"{g} students are absent, so we subtract them.",
            c * s,
            "-",
            g,
            "On sports day {calc} students are present.",
            False,
        ),
        _Step(
            "Students per team",
            f"The students present are split equally into {t} teams.",
            present,
            "/",
            t,
            "Each team has {calc} students.",
            False,
        ),
    ]
    givens = [f"{c} classes of {s} students", f"{g} students absent", f"{t} equal teams"]
    return _Problem("sports_teams", q, givens, steps, "each team has {ans} students")


def _t_profit(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    a, p, b, qq = rng.randint(5, 20), rng.randint(2, 6), rng.randint(3, 12), rng.randint(4, 10)
    rev = a * p + b * qq
    cost = rng.randint(5, max(6, rev - 5))
    if cost >= rev:
        return None
    q = (
        f"At a market stall, {name} sells {a} bags of apples for ${p} each and {b} jars of honey for ${qq} each. "
        f"{her.capitalize()} stall costs ${cost} to rent. How much profit, in dollars, does {she} make?"
    )
    steps = [
        _Step(
            "Apple sales",
            f"{a} bags at ${p} each: multiply.",
            a,
            "*",
            p,
            "The apples bring in {calc} dollars.",
            True,
        ),
        _Step(
            "Honey sales",
            f"{b} jars at ${qq} each: multiply.",
            b,
            "*",
            qq,
            "The honey brings in {calc} dollars.",
            True,
        ),
        _Step(
            "Total sales",
            "Add the two amounts to get all the money taken.",
            a * p,
            "+",
            b * qq,
            "Sales total {calc} dollars.",
            True,
        ),
        _Step(
            "Profit",
            f"Profit is sales minus the ${cost} rent.",
            rev,
            "-",
            cost,
            "The profit is {calc} dollars.",
            True,
        ),
    ]
    givens = [f"{a} bags of apples at ${p}", f"{b} jars of honey at ${qq}", f"${cost} rent"]
    return _Problem("market_profit", q, givens, steps, f"{name} makes ${{ans}} in profit")


def _t_marbles(rng: random.Random) -> _Problem | None:
    name, she, her = _who(rng)
    b, c, f = rng.randint(2, 5), rng.randint(6, 12), rng.randint(1, 5)
    people = f + 1
    a = rng.randint(5, 30)
    a += (-(a + b * c)) % people
    q = (
        f"{name} has {a} marbles and buys {b} packs of {c} marbles. {she.capitalize()} shares all the marbles "
        f"equally between {her}self and {f} friend{'s' if f > 1 else ''}. How many marbles does each person get?"
    )
    q = q.replace("hisself", "himself")
    steps = [
        _Step(
            "Marbles bought",
            f"{b} packs with {c} marbles each: multiply.",
            b,
            "*",
            c,
            "{calc} marbles are bought.",
            False,
        ),
        _Step(
            "All marbles",
            f"Add the {a} marbles {name} already had.",
            a,
            "+",
            b * c,
            "Now there are {calc} marbles.",
            False,
        ),
        _Step(
            "Number of people",
            f"{name} shares with {f} friend{'s' if f > 1 else ''}, so count {name} too.",
            f,
            "+",
            1,
            "There are {calc} people.",
            False,
        ),
        _Step(
            "Marbles each",
            "Share the marbles equally: divide by the number of people.",
            a + b * c,
            "/",
            people,
            "Each person gets {calc} marbles.",
            False,
        ),
    ]
    givens = [f"{a} marbles to start", f"{b} packs of {c} marbles", f"shared by {people} people"]
    return _Problem("marbles_share", q, givens, steps, "each person gets {ans} marbles")


_TEMPLATES: list[Callable[[random.Random], _Problem | None]] = [
    _t_shop,
    _t_cookies,
    _t_reading,
    _t_savings,
    _t_legs,
    _t_train,
    _t_tomatoes,
    _t_teams,
    _t_profit,
    _t_marbles,
]
