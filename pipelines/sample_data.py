"""Sample retail data for Zero Margin: CRM customers, ERP products, categories and
promotions, and two years of transaction lines.

Deterministic for a seed and a size. Demand has a trend, a weekly and a yearly
season per category, planned promotions and the holidays of the retail calendar;
customers belong to hidden groups (families, young professionals, seniors, bargain
hunters, premium shoppers) whose baskets, days, channels and promotion appetite differ,
and each customer has favourite products they buy again.

A `Shift` produces a drifted snapshot of the same business: a price change, a region
that was not served before, a break in the seasonal pattern, from some weeks before the
end of the period.
"""

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lake import Snapshot, list_snapshots, write_snapshot
from pipelines.retail_calendar import calendar_features

GENERATOR = "pipelines.sample_data"
# Bump when the same seed and size would produce different data: cached snapshots of an
# older generator are then not reused.
GENERATOR_VERSION = 1

PERIOD_START = date(2023, 1, 1)
PERIOD_DAYS = 731  # 2023-01-01 .. 2024-12-31


@dataclass(frozen=True)
class _Category:
    category_id: str
    name: str
    department: str
    price: float  # typical shelf price, GBP
    demand: float  # share of transaction lines
    assortment: float  # share of the catalogue
    extra_units: float  # units beyond the first in a line, on average
    seasons: tuple[tuple[int, float, float], ...]  # (peak day of year, width in days, amplitude)
    christmas: float  # extra demand at the peak of the run-up to Christmas
    black_friday: float
    weekend: float  # exponent on the weekly pattern


CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "CAT01", "Fresh produce", "Food", 2.2, 0.16, 0.12, 1.2, ((200, 50, 0.15),), 0.25, 0.1, 1.0
    ),
    _Category("CAT02", "Dairy", "Food", 1.9, 0.12, 0.08, 1.0, (), 0.15, 0.05, 0.8),
    _Category("CAT03", "Bakery", "Food", 2.1, 0.10, 0.07, 0.8, (), 0.3, 0.05, 1.2),
    _Category(
        "CAT04", "Beverages", "Food", 2.8, 0.10, 0.10, 1.5, ((195, 35, 0.45),), 0.5, 0.2, 1.4
    ),
    _Category(
        "CAT05", "Frozen food", "Food", 3.9, 0.07, 0.07, 0.9, ((205, 30, 0.35),), 0.2, 0.1, 1.0
    ),
    _Category("CAT06", "Household", "Home", 4.8, 0.08, 0.09, 0.6, ((90, 30, 0.15),), 0.1, 0.3, 0.8),
    _Category("CAT07", "Personal care", "Health & beauty", 5.9, 0.07, 0.09, 0.5, (), 0.6, 0.6, 0.9),
    _Category(
        "CAT08", "Electronics", "General merchandise", 79.0, 0.04, 0.09, 0.05, (), 1.2, 2.5, 1.5
    ),
    _Category(
        "CAT09",
        "Clothing",
        "General merchandise",
        24.0,
        0.07,
        0.11,
        0.3,
        ((100, 25, 0.35), (275, 25, 0.3)),
        0.7,
        1.2,
        1.6,
    ),
    _Category("CAT10", "Toys", "General merchandise", 14.0, 0.04, 0.07, 0.2, (), 2.0, 1.8, 1.5),
    _Category("CAT11", "Garden", "Home", 17.0, 0.05, 0.06, 0.3, ((150, 40, 1.2),), 0.1, 0.1, 1.8),
    _Category(
        "CAT12",
        "Sports",
        "General merchandise",
        29.0,
        0.03,
        0.05,
        0.1,
        ((10, 20, 0.8), (180, 40, 0.4)),
        0.5,
        0.8,
        1.3,
    ),
)

CATEGORY_INDEX = {c.name: n for n, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class _Group:
    name: str
    share: float
    affinity: dict[str, float]  # category name -> relative appetite (default 1)
    extra_units: float
    weekend: float
    online: float
    promotion: float  # appetite for promotions
    activity: float
    price_tilt: float  # > 0 prefers dearer products
    repeat: float  # chance a line is one of the customer's favourites
    hour: float
    born: tuple[int, int]


GROUPS: tuple[_Group, ...] = (
    _Group(
        "families",
        0.28,
        {
            "Fresh produce": 2.0,
            "Dairy": 2.2,
            "Bakery": 1.8,
            "Household": 1.8,
            "Toys": 3.5,
            "Electronics": 0.4,
            "Garden": 1.2,
        },
        1.0,
        1.6,
        0.25,
        1.3,
        1.3,
        -0.2,
        0.5,
        13,
        (1975, 1995),
    ),
    _Group(
        "young professionals",
        0.22,
        {
            "Beverages": 2.5,
            "Frozen food": 2.0,
            "Electronics": 2.5,
            "Personal care": 1.8,
            "Sports": 3.0,
            "Garden": 0.2,
            "Toys": 0.3,
        },
        0.3,
        0.8,
        0.65,
        0.8,
        0.9,
        0.4,
        0.4,
        19,
        (1990, 2004),
    ),
    _Group(
        "seniors",
        0.18,
        {
            "Fresh produce": 2.5,
            "Bakery": 2.5,
            "Dairy": 1.6,
            "Garden": 3.0,
            "Electronics": 0.2,
            "Sports": 0.2,
            "Toys": 0.6,
        },
        0.4,
        0.6,
        0.08,
        1.0,
        1.0,
        0.0,
        0.65,
        10,
        (1940, 1962),
    ),
    _Group(
        "bargain hunters",
        0.20,
        {"Household": 2.0, "Frozen food": 2.0, "Dairy": 1.3, "Clothing": 1.6, "Electronics": 0.6},
        1.2,
        1.1,
        0.35,
        3.5,
        0.8,
        -1.2,
        0.3,
        15,
        (1960, 2000),
    ),
    _Group(
        "premium",
        0.12,
        {
            "Electronics": 2.5,
            "Clothing": 2.2,
            "Sports": 1.8,
            "Garden": 1.6,
            "Beverages": 1.5,
            "Frozen food": 0.5,
        },
        0.5,
        1.2,
        0.45,
        0.5,
        1.8,
        1.3,
        0.45,
        16,
        (1965, 1990),
    ),
)

# region -> (cities, share of customers, group appetite multipliers)
REGIONS: dict[str, tuple[tuple[str, ...], float, dict[str, float]]] = {
    "London": (("London",), 0.20, {"young professionals": 1.8, "premium": 1.4, "seniors": 0.6}),
    "South East": (("Brighton", "Reading", "Oxford"), 0.15, {"premium": 1.5}),
    "South West": (("Bristol", "Exeter", "Plymouth"), 0.10, {"seniors": 1.4}),
    "Midlands": (("Birmingham", "Nottingham", "Leicester"), 0.15, {"families": 1.3}),
    "North West": (("Manchester", "Liverpool", "Preston"), 0.13, {"bargain hunters": 1.3}),
    "North East": (("Newcastle", "Leeds", "Sheffield"), 0.11, {"bargain hunters": 1.4}),
    "Scotland": (("Glasgow", "Edinburgh", "Aberdeen"), 0.10, {"seniors": 1.3}),
    "Wales": (("Cardiff", "Swansea"), 0.06, {"seniors": 1.3, "families": 1.2}),
}
NEW_REGION_CITIES: dict[str, tuple[str, ...]] = {"Northern Ireland": ("Belfast", "Derry")}

FIRST_NAMES = (
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Ivy",
    "Leo", "Lily", "Arthur", "Freya", "Muhammad", "Florence", "Oscar", "Grace", "Charlie",
    "Sophia", "Jacob", "Emily", "Thomas", "Poppy", "Henry", "Ella", "Alfie", "Evie", "Aisha",
    "Priya", "Ravi", "Chloe", "Dylan", "Megan", "Callum", "Niamh", "Sean", "Fiona", "Ewan",
    "Rhys",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Thomas", "Clarke", "Jackson", "Wood", "Harris", "Edwards", "Turner", "Martin", "Cooper",
    "Hill", "Ward", "Hughes", "Moore", "Clark", "King", "Harrison", "Lewis", "Baker", "Lee",
    "Allen", "Morris", "Khan",
)  # fmt: skip
BRANDS = ("Zero", "Meadow", "Northfield", "Harbour", "Kestrel", "Oakwell", "Brightside", "Thistle")

WEEKLY = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.05])
# After a seasonal break people shop mid-week (flexible working) and the weekend peak fades.
WEEKLY_AFTER_BREAK = np.array([1.15, 1.15, 1.1, 1.0, 0.95, 0.8, 0.85])


@dataclass(frozen=True)
class Shift:
    """A change in the business from `weeks_before_end` weeks before the period ends.

    price_change: relative change of shelf prices (0.12 = 12% dearer) in
    `price_categories` (category names; empty means every category); demand there
    falls with a price elasticity of -1.3.
    new_region: customers from a region the business did not serve before sign up and
    take `new_region_share` of the lines from then on.
    seasonal_break: the weekly pattern turns (mid-week peak) and cold-weather lines
    (garden, beverages, frozen food) sell as if in summer.
    """

    weeks_before_end: int = 12
    price_change: float = 0.0
    price_categories: tuple[str, ...] = ()
    new_region: str | None = None
    new_region_share: float = 0.15
    seasonal_break: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.price_categories if c not in CATEGORY_INDEX]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {sorted(CATEGORY_INDEX)}")
        if not 1 <= self.weeks_before_end <= 52:
            raise ValueError("weeks_before_end must be between 1 and 52")
        if self.price_change <= -0.9:
            raise ValueError("price_change must be above -0.9")
        if self.new_region is not None and self.new_region not in NEW_REGION_CITIES:
            raise ValueError(f"new_region must be one of {sorted(NEW_REGION_CITIES)}")
        if not 0 < self.new_region_share < 1:
            raise ValueError("new_region_share must be between 0 and 1")


# The drift the demo shows: dearer general merchandise, Northern Ireland opens, and
# the weekly and seasonal pattern breaks, over the last twelve weeks.
DEMO_SHIFT = Shift(
    weeks_before_end=12,
    price_change=0.15,
    price_categories=("Electronics", "Toys", "Clothing"),
    new_region="Northern Ireland",
    seasonal_break=True,
)


@dataclass
class SampleData:
    """The generated tables and the parameters that produced them."""

    tables: dict[str, pd.DataFrame]
    params: dict[str, Any] = field(default_factory=dict)


def sample_params(*, seed: int, n_transactions: int, shift: Shift | None) -> dict[str, Any]:
    end = PERIOD_START + timedelta(days=PERIOD_DAYS - 1)
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_transactions": n_transactions,
        "shift": asdict(shift) if shift else None,
        "period_start": PERIOD_START.isoformat(),
        "period_end": end.isoformat(),
    }


def _yearly(day_of_year: np.ndarray, seasons: tuple[tuple[int, float, float], ...]) -> np.ndarray:
    out = np.ones_like(day_of_year, dtype=float)
    for peak, width, amplitude in seasons:
        distance = np.abs(day_of_year - peak)
        distance = np.minimum(distance, 365 - distance)
        out += amplitude * np.exp(-0.5 * (distance / width) ** 2)
    return out


def _promotions(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A planned calendar: a few one- or two-week discounts per category and year, plus
    Black Friday deals on general merchandise. Returns the table and the discount per
    (day, category)."""
    discount = np.zeros((PERIOD_DAYS, len(CATEGORIES)))
    rows = []
    cal = calendar_features(pd.date_range(PERIOD_START, periods=PERIOD_DAYS, freq="D"))
    fridays = np.flatnonzero(cal["black_friday"].to_numpy())
    weeks = PERIOD_DAYS // 7
    for c, category in enumerate(CATEGORIES):
        starts = np.sort(rng.choice(weeks - 2, size=int(rng.integers(12, 17)), replace=False)) * 7
        starts = starts + int(rng.integers(0, 7))
        windows = [
            (
                int(s),
                int(rng.choice([7, 7, 14])),
                float(rng.choice([0.1, 0.15, 0.2, 0.25, 0.3, 0.35])),
            )
            for s in starts
        ]
        if category.department == "General merchandise":
            windows += [(int(f) - 1, 5, 0.3) for f in fridays]
        taken = np.zeros(PERIOD_DAYS, dtype=bool)
        for start, length, off in sorted(windows):
            end = min(start + length, PERIOD_DAYS)
            if start >= PERIOD_DAYS or taken[start:end].any():
                continue
            taken[start:end] = True
            discount[start:end, c] = off
            rows.append(
                (
                    category.category_id,
                    PERIOD_START + timedelta(days=start),
                    PERIOD_START + timedelta(days=end - 1),
                    off,
                )
            )
    rows.sort(key=lambda r: (r[1], r[0]))
    table = pd.DataFrame(rows, columns=["category_id", "start_date", "end_date", "discount"])
    table.insert(0, "promotion_id", [f"PR{n + 1:05d}" for n in range(len(table))])
    return table, discount


def _demand(discount: np.ndarray, shift: Shift | None, shift_day: int) -> np.ndarray:
    """Expected share of lines per (day, category), before normalising."""
    days = pd.date_range(PERIOD_START, periods=PERIOD_DAYS, freq="D")
    cal = calendar_features(days)
    t = np.arange(PERIOD_DAYS)
    doy = cal["day_of_year"].to_numpy()
    dow = cal["day_of_week"].to_numpy()
    to_xmas = cal["days_to_christmas"].to_numpy()
    ramp = np.where(to_xmas <= 35, (1 - to_xmas / 36) ** 2, 0.0)
    closed = cal["closed"].to_numpy()
    boxing = (days.month == 12) & (days.day == 26)
    new_year = (days.month == 1) & (days.day == 1)
    trend = np.exp(0.08 * t / 365)
    weekly = WEEKLY[dow]
    after = t >= shift_day
    if shift and shift.seasonal_break:
        weekly = np.where(after, WEEKLY_AFTER_BREAK[dow], weekly)
    lam = np.empty((PERIOD_DAYS, len(CATEGORIES)))
    for c, category in enumerate(CATEGORIES):
        col = category.demand * trend * weekly**category.weekend
        col = col * _yearly(doy, category.seasons)
        col = col * (1 + category.christmas * ramp)
        col = col * np.where(cal["black_friday"].to_numpy(), 1 + category.black_friday, 1)
        col = col * np.where(
            cal["bank_holiday"].to_numpy(), 1.6 if category.name == "Garden" else 1.1, 1
        )
        if category.department == "Food":
            col = col * np.where(cal["easter_weekend"].to_numpy(), 1.25, 1)
        col = col * np.where(
            boxing, 1.4 if category.department == "General merchandise" else 0.7, 1
        )
        col = col * np.where(new_year, 0.4, 1) * np.where(closed, 0.03, 1)
        col = col * (1 + 3.0 * discount[:, c])
        if (
            shift
            and shift.price_change
            and (not shift.price_categories or category.name in shift.price_categories)
        ):
            col = col * np.where(after, (1 + shift.price_change) ** -1.3, 1)
        if (
            shift
            and shift.seasonal_break
            and category.name in ("Garden", "Beverages", "Frozen food")
        ):
            col = col * np.where(after, 1.7, 1)
        lam[:, c] = col
    return lam


def _customers(
    rng: np.random.Generator,
    n: int,
    first_id: int,
    regions: dict[str, tuple[tuple[str, ...], float, dict[str, float]]],
    earliest_day: int = 0,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    region_names = list(regions)
    region_p = np.array([regions[r][1] for r in region_names])
    region = rng.choice(len(region_names), size=n, p=region_p / region_p.sum())
    shares = np.array([g.share for g in GROUPS])
    tilt = np.array([[regions[r][2].get(g.name, 1.0) for g in GROUPS] for r in region_names])
    group_p = shares[None, :] * tilt
    group_p = group_p / group_p.sum(axis=1, keepdims=True)
    group = (rng.random(n)[:, None] > np.cumsum(group_p[region], axis=1)).sum(axis=1)
    group = np.minimum(group, len(GROUPS) - 1)
    city = np.array(
        [
            regions[region_names[r]][0][int(u * len(regions[region_names[r]][0]))]
            for r, u in zip(region, rng.random(n), strict=True)
        ]
    )
    first = rng.integers(0, len(FIRST_NAMES), size=n)
    last = rng.integers(0, len(LAST_NAMES), size=n)
    domain = rng.choice(["com", "org", "net"], size=n)
    ids = np.arange(first_id, first_id + n)
    born_low = np.array([g.born[0] for g in GROUPS])[group]
    born_high = np.array([g.born[1] for g in GROUPS])[group]
    birth_year = born_low + (rng.random(n) * (born_high - born_low + 1)).astype(int)
    if earliest_day > 0:
        start = earliest_day + rng.integers(0, 21, size=n)
        signup = np.array([PERIOD_START + timedelta(days=int(d)) for d in start])
    else:
        # Most customers joined before the period; the rest join during it.
        joined_before = rng.random(n) < 0.65
        before = rng.integers(1, 8 * 365, size=n)
        during = rng.integers(0, PERIOD_DAYS - 110, size=n)
        start = np.where(joined_before, 0, during)
        signup = np.array(
            [
                PERIOD_START - timedelta(days=int(b))
                if jb
                else PERIOD_START + timedelta(days=int(d))
                for jb, b, d in zip(joined_before, before, during, strict=True)
            ]
        )
    churned = rng.random(n) < 0.15
    churn_day = start + 60 + (rng.random(n) * np.maximum(PERIOD_DAYS - start - 60, 1)).astype(int)
    end = np.where(churned, np.minimum(churn_day, PERIOD_DAYS - 1), PERIOD_DAYS - 1)
    profiling = rng.random(n) < 0.85
    marketing = rng.random(n) < np.where(profiling, 0.6, 0.3)
    activity = rng.lognormal(0.0, 0.7, size=n) * np.array([g.activity for g in GROUPS])[group]
    table = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in ids],
            "name": [f"{FIRST_NAMES[f]} {LAST_NAMES[s]}" for f, s in zip(first, last, strict=True)],
            "email": [
                f"{FIRST_NAMES[f].lower()}.{LAST_NAMES[s].lower()}{i}@example.{d}"
                for f, s, i, d in zip(first, last, ids, domain, strict=True)
            ],
            "city": city,
            "region": np.array(region_names)[region],
            "birth_year": birth_year.astype("int64"),
            "signup_date": signup,
            "consent_profiling": profiling,
            "consent_marketing": marketing,
        }
    )
    hidden = {"group": group, "start": start, "end": end, "activity": activity}
    return table, hidden


def _products(
    rng: np.random.Generator, n_products: int
) -> tuple[pd.DataFrame, list[np.ndarray], np.ndarray]:
    """The catalogue, each category's product indexes, and each product's popularity."""
    assortment = np.array([c.assortment for c in CATEGORIES])
    counts = np.maximum(4, np.round(n_products * assortment / assortment.sum()).astype(int))
    rows = []
    members: list[np.ndarray] = []
    popularity = []
    for c, category in enumerate(CATEGORIES):
        m = int(counts[c])
        members.append(np.arange(len(rows), len(rows) + m))
        price = category.price * rng.lognormal(0, 0.4, size=m)
        price = np.where(price >= 3, np.ceil(price) - 0.01, np.round(price, 1) - 0.01)
        price = np.maximum(price, 0.29)
        rank = rng.permutation(m)
        popularity.append(1.0 / (rank + 1.0) ** 0.9)
        brands = rng.integers(0, len(BRANDS), size=m)
        for j in range(m):
            rows.append(
                (
                    category.category_id,
                    f"{BRANDS[brands[j]]} {category.name.lower()} {j + 1}",
                    round(float(price[j]), 2),
                )
            )
    table = pd.DataFrame(rows, columns=["category_id", "product_name", "list_price"])
    table.insert(0, "product_id", [f"P{n + 1:05d}" for n in range(len(table))])
    return table, members, np.concatenate(popularity)


def generate_retail_data(
    *, seed: int = 0, n_transactions: int = 100_000, shift: Shift | None = None
) -> SampleData:
    """Generate the five tables; the same seed, size and shift give the same data."""
    if n_transactions < 1_000:
        raise ValueError("n_transactions must be at least 1000")
    streams = np.random.SeedSequence(seed).spawn(6)
    rng_customers, rng_products, rng_promotions, rng_lines, rng_shift, rng_choice = (
        np.random.default_rng(s) for s in streams
    )
    n_customers = max(150, n_transactions // 25)
    n_products = int(np.clip(round(np.sqrt(n_transactions)), 60, 800))
    shift_day = PERIOD_DAYS - 7 * shift.weeks_before_end if shift else PERIOD_DAYS

    customers, hidden = _customers(rng_customers, n_customers, 1, REGIONS)
    products, members, popularity = _products(rng_products, n_products)
    promotions, discount = _promotions(rng_promotions)
    categories = pd.DataFrame(
        {
            "category_id": [c.category_id for c in CATEGORIES],
            "category": [c.name for c in CATEGORIES],
            "department": [c.department for c in CATEGORIES],
        }
    )
    group = hidden["group"]
    affinity = np.array([[g.affinity.get(c.name, 1.0) for c in CATEGORIES] for g in GROUPS])

    # How many lines fall on each (day, category).
    lam = _demand(discount, shift, shift_day)
    counts = rng_lines.multinomial(n_transactions, (lam / lam.sum()).ravel())
    cell = np.repeat(np.arange(lam.size), counts)
    day, cat = np.divmod(cell, len(CATEGORIES))
    promo = discount[day, cat] > 0
    weekend = np.isin((np.arange(PERIOD_DAYS) + PERIOD_START.weekday()) % 7, (5, 6))[day]

    # Who buys: by category appetite, promotion appetite, weekend habit and activity,
    # among customers signed up and not yet lapsed on that day.
    promo_appetite = np.array([g.promotion for g in GROUPS])[group]
    weekend_habit = np.array([g.weekend for g in GROUPS])[group]
    key = cat * 4 + promo * 2 + weekend
    customer = np.empty(n_transactions, dtype=np.int64)
    pending = np.arange(n_transactions)
    for _ in range(40):
        if pending.size == 0:
            break
        for k in np.unique(key[pending]):
            rows = pending[key[pending] == k]
            c, rest = divmod(int(k), 4)
            w = hidden["activity"] * affinity[group, c]
            if rest & 2:
                w = w * promo_appetite
            if rest & 1:
                w = w * weekend_habit
            customer[rows] = rng_choice.choice(n_customers, size=rows.size, p=w / w.sum())
        inactive = (day[pending] < hidden["start"][customer[pending]]) | (
            day[pending] > hidden["end"][customer[pending]]
        )
        pending = pending[inactive]
    if pending.size:
        loyal = np.flatnonzero((hidden["start"] == 0) & (hidden["end"] == PERIOD_DAYS - 1))
        customer[pending] = rng_choice.choice(loyal, size=pending.size)

    region_names = list(REGIONS)
    if shift and shift.new_region:
        newcomers, new_hidden = _customers(
            rng_shift,
            max(20, n_customers // 10),
            n_customers + 1,
            {shift.new_region: (NEW_REGION_CITIES[shift.new_region], 1.0, {})},
            earliest_day=shift_day,
        )
        customers = pd.concat([customers, newcomers], ignore_index=True)
        region_names.append(shift.new_region)
        take = np.flatnonzero(
            (day >= shift_day) & (rng_shift.random(n_transactions) < shift.new_region_share)
        )
        new_group = new_hidden["group"]
        for c in np.unique(cat[take]):
            rows = take[cat[take] == c]
            w = new_hidden["activity"] * affinity[new_group, c]
            chosen = rng_shift.choice(new_group.size, size=rows.size, p=w / w.sum())
            ok = day[rows] >= new_hidden["start"][chosen]
            customer[rows[ok]] = n_customers + chosen[ok]
        group = np.concatenate([group, new_group])

    # What they buy: often a favourite of theirs, otherwise by popularity tilted by
    # their taste for dearer or cheaper products.
    price = products["list_price"].to_numpy()
    n_all = len(customers)
    favourites = np.empty((n_all, len(CATEGORIES), 3), dtype=np.int64)
    line_group = group[customer]
    product = np.empty(n_transactions, dtype=np.int64)
    repeat = rng_lines.random(n_transactions) < np.array([g.repeat for g in GROUPS])[line_group]
    for c in range(len(CATEGORIES)):
        idx = members[c]
        rel_price = np.log(price[idx] / np.median(price[idx]))
        for g, spec in enumerate(GROUPS):
            weights = popularity[idx] * np.exp(spec.price_tilt * rel_price)
            cdf = np.cumsum(weights) / weights.sum()
            flat = np.cumsum(np.sqrt(weights)) / np.sqrt(weights).sum()
            who = np.flatnonzero(group == g)
            picks = np.searchsorted(flat, rng_products.random((who.size, 3)), side="right")
            favourites[who, c, :] = idx[np.minimum(picks, idx.size - 1)]
            lines = np.flatnonzero((cat == c) & (line_group == g) & ~repeat)
            picks = np.searchsorted(cdf, rng_lines.random(lines.size), side="right")
            product[lines] = idx[np.minimum(picks, idx.size - 1)]
    again = np.flatnonzero(repeat)
    slot = np.searchsorted([0.5, 0.8], rng_lines.random(again.size), side="right")
    product[again] = favourites[customer[again], cat[again], slot]

    # Units, prices, channel and time of day.
    extra_units = (
        np.array([g.extra_units for g in GROUPS])[line_group]
        * np.array([c.extra_units for c in CATEGORIES])[cat]
    )
    quantity = 1 + rng_lines.poisson(extra_units * np.where(promo, 1.4, 1.0))
    unit_price = price[product] * (1 + 0.03 * day / 365) * (1 - discount[day, cat])
    if shift and shift.price_change:
        hit = np.ones(len(CATEGORIES), dtype=bool)
        if shift.price_categories:
            hit = np.isin([c.name for c in CATEGORIES], shift.price_categories)
        unit_price = unit_price * np.where((day >= shift_day) & hit[cat], 1 + shift.price_change, 1)
    unit_price = np.maximum(np.round(unit_price, 2), 0.01)
    amount = np.round(quantity * unit_price, 2)
    closed = calendar_features(pd.date_range(PERIOD_START, periods=PERIOD_DAYS, freq="D"))[
        "closed"
    ].to_numpy()
    online = (
        rng_lines.random(n_transactions) < np.array([g.online for g in GROUPS])[line_group]
    ) | closed[day]
    hours = np.array([g.hour for g in GROUPS])[line_group] + rng_lines.normal(
        0, 2.2, n_transactions
    )
    hours = np.where(online, rng_lines.uniform(0, 24, n_transactions), np.clip(hours, 7, 21.9))
    seconds = (hours * 3600).astype(np.int64)
    start = np.datetime64(PERIOD_START, "us")
    ts = start + (day.astype(np.int64) * 86_400 + seconds) * np.timedelta64(1_000_000, "us")

    order = np.argsort(ts, kind="stable")
    customer_ids = customers["customer_id"].to_numpy(dtype=str)
    product_ids = products["product_id"].to_numpy(dtype=str)
    transactions = pd.DataFrame(
        {
            "transaction_id": np.arange(1, n_transactions + 1, dtype=np.int64),
            "ts": ts[order],
            "customer_id": customer_ids[customer[order]],
            "product_id": product_ids[product[order]],
            "quantity": quantity[order].astype(np.int64),
            "unit_price": unit_price[order],
            "amount": amount[order],
            "promotion": promo[order],
            "channel": np.where(online[order], "online", "store"),
        }
    )
    tables = {
        "customers": customers,
        "categories": categories,
        "products": products,
        "promotions": promotions,
        "transactions": transactions,
    }
    return SampleData(
        tables=tables,
        params=sample_params(seed=seed, n_transactions=n_transactions, shift=shift),
    )


def ensure_sample_snapshot(
    *, root: str | Path, seed: int = 0, n_transactions: int = 100_000, shift: Shift | None = None
) -> Snapshot:
    """The lake's snapshot of the sample data for these parameters, generating and
    writing it only if the lake does not hold one yet (so a second demo start is quick).

    Side effects: may write a snapshot folder under `root`.
    """
    params = sample_params(seed=seed, n_transactions=n_transactions, shift=shift)
    for snapshot in list_snapshots(root=root):
        if snapshot.source == params:
            return snapshot
    data = generate_retail_data(seed=seed, n_transactions=n_transactions, shift=shift)
    return write_snapshot(root=root, tables=data.tables, source=data.params)
