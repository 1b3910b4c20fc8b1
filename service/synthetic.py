"""Deterministic synthetic customer event logs with a sequence-dependent ground truth.

The generator is fully vectorised (NumPy over customers and events) so that it serves tiny test
fixtures, the demo and multi-million-event benchmarks alike.

Ground truth: purchases are never drawn independently. They come only from carts, which come
from "intent episodes":

* organic episodes: visit -> product_view(s), often repeated in return sessions over a few days
  of consideration, then add_to_cart with a per-customer probability;
* e-mail episodes: a campaign e-mail is opened and clicked; a click followed by a product view
  is an intent signal, and the customer may come back hours or days later to add to cart;
  a click without a view carries no intent.

A cart converts with a per-customer probability after an exponential delay (mean 2.5 days), so
the chance of a pending purchase decays with time since the cart and is zero after two weeks
(an older abandoned cart carries no intent).

Support tickets come in two kinds that share one event type, told apart only by their order:

* questions: asked during half of the organic episodes, after the last product view and before
  the cart (which follows once the answer arrives), and also at random; they change nothing;
* complaints: raised a few days after some purchases; they put the customer off for eight
  months, cutting the conversion probability of every later cart to 3%.

Whether a customer buys in the next 30 days after a cutoff therefore depends on the order and
timing of events (an open cart, a click followed by a view, a purchase followed by a ticket),
not only on recency, frequency, monetary totals and per-type counts.

Order values depend on the sequence too: a purchase's amount is lognormal around a
per-customer spend level, and its basket grows with the customer's other carts in the two
weeks before it (each one adds BASKET_PER_CART of a typical order), so what a customer will
spend depends on when they added to cart, not only on how much they spent before.

Around it: customers join throughout the window, some churn (and part of those are marked
inactive), activity levels are heavy-tailed, and activity follows daily, weekly and yearly
cycles.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

EVENT_TYPES: tuple[str, ...] = (
    "visit",
    "product_view",
    "add_to_cart",
    "purchase",
    "email_open",
    "email_click",
    "support_ticket",
)
VISIT, VIEW, CART, PURCHASE, OPEN, CLICK, TICKET = range(len(EVENT_TYPES))

DEFAULT_END = datetime(2026, 11, 1)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
YEAR = 365.25 * DAY

# Rates per customer-year at average activity and average seasonal intensity.
BROWSE_SESSIONS_PER_YEAR = 3.0
INTENT_EPISODES_PER_YEAR = 8.0
RETURN_SESSIONS_MEAN = 1.25
RETURN_SESSION_GAP = 3 * DAY
TICKETS_PER_YEAR = 0.4

CONVERSION_MEAN_DELAY = 2.5 * DAY
CART_INTENT_LIFETIME = 14 * DAY
# Each other cart of the customer in the CART_INTENT_LIFETIME before a purchase adds this
# share of a typical order to its basket.
BASKET_PER_CART = 0.6
QUESTION_SHARE = 0.5  # organic episodes with a pre-sale question
ANSWER_DELAY = 0.5 * DAY
COMPLAINT_AFTER_PURCHASE = 0.35
COMPLAINT_SUPPRESSION_DAYS = 240
COMPLAINT_SUPPRESSION_FACTOR = 0.03

# Relative activity by hour of day (naive UTC, one shared time zone) and weekday (Monday first).
HOURLY = np.concatenate(
    [
        [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.2],
        [1.3, 1.2, 1.1, 1.1, 1.2, 1.4, 1.6, 1.8, 1.9, 1.7, 1.2, 0.6],
    ]
)
WEEKLY = np.array([0.95, 0.9, 0.9, 0.95, 1.05, 1.15, 1.1])
SEASON_PEAK = np.datetime64("2025-12-10", "s")  # the yearly cycle peaks before Christmas
SEASON_AMPLITUDE = 0.3

# Campaign e-mails: every Tuesday 10:00 and every other Friday 15:00.
CAMPAIGN_SLOTS = ((1, 10, 1), (4, 15, 2))  # (weekday, hour, every n weeks)


@dataclass(frozen=True)
class SyntheticData:
    """Customers and their event log (see `generate`).

    customers: customer_id (str, "C0000042", zero-padded so string order is numeric order),
    is_active (bool), created_at (datetime64[us], naive UTC).
    events: customer_id (str), event_type (str, one of EVENT_TYPES), occurred_at (datetime64[us],
    naive UTC), amount (float64, NaN except on purchases); sorted by customer_id, occurred_at.
    """

    customers: pd.DataFrame
    events: pd.DataFrame


@dataclass(frozen=True)
class _Customers:
    """Latent per-customer attributes; times are seconds since the window start."""

    created: np.ndarray
    active_from: np.ndarray
    active_until: np.ndarray
    is_active: np.ndarray
    activity: np.ndarray
    cart_rate: np.ndarray
    conversion: np.ndarray
    spend_level: np.ndarray
    open_rate: np.ndarray
    click_rate: np.ndarray
    subscribed: np.ndarray


@dataclass(frozen=True)
class _Intensity:
    """Seasonal activity on an hourly grid, as a cumulative curve for inverse-CDF sampling."""

    grid: np.ndarray  # seconds since the window start
    cumulative: np.ndarray  # integrated intensity in years at average activity

    def integral(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        return np.interp(stop, self.grid, self.cumulative) - np.interp(
            start, self.grid, self.cumulative
        )

    def sample(self, start: np.ndarray, stop: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Times in [start, stop) distributed like the intensity, from uniforms `u`."""
        low = np.interp(start, self.grid, self.cumulative)
        high = np.interp(stop, self.grid, self.cumulative)
        return np.interp(low + u * (high - low), self.cumulative, self.grid)

    def advance(self, time: np.ndarray, wait: np.ndarray) -> np.ndarray:
        """`time` plus `wait` seconds counted at the seasonal pace, so that waits of days end at
        the busy hours of the day; times past the window end come back as its end."""
        position = np.interp(time, self.grid, self.cumulative) + wait / YEAR
        return np.interp(position, self.cumulative, self.grid)


@dataclass(frozen=True)
class _Events:
    """A batch of events as parallel arrays: customer index, event type code, seconds, amount."""

    customer: np.ndarray
    kind: np.ndarray
    time: np.ndarray
    amount: np.ndarray

    @staticmethod
    def of(
        customer: np.ndarray, kind: int, time: np.ndarray, amount: np.ndarray | None = None
    ) -> "_Events":
        return _Events(
            customer,
            np.full(len(customer), kind, dtype=np.int8),
            time,
            np.full(len(customer), np.nan) if amount is None else amount,
        )


@dataclass(frozen=True)
class _Carts:
    """Add-to-cart events that may turn into purchases: customer index and seconds."""

    customer: np.ndarray
    time: np.ndarray


def generate(
    n_customers: int, seed: int = 0, end: datetime | None = None, days: int = 365
) -> SyntheticData:
    """Events in the `days` days before `end` (default: a fixed date 2026-11-01 00:00 so output is
    reproducible).

    `end` is taken as naive UTC (an aware datetime is converted to UTC). The same arguments always
    give identical frames.
    """
    if n_customers < 0 or days < 1:
        raise ValueError("n_customers must be >= 0 and days >= 1")
    rng = np.random.default_rng(seed)
    start = _as_naive_utc(DEFAULT_END if end is None else end) - np.timedelta64(days, "D")
    horizon = days * DAY
    intensity = _intensity(start, days)
    people = _draw_customers(rng, n_customers, horizon)

    browse = _browse_sessions(rng, people, intensity)
    organic, organic_carts = _organic_episodes(rng, people, intensity)
    emails, email_carts = _email_episodes(rng, people, intensity, _campaign_times(start, days))
    questions = _random_questions(rng, people, intensity)
    carts = _observable_carts(_concat_carts(organic_carts, email_carts), people, horizon)
    purchases = _convert_carts(rng, carts, people, intensity)

    events = _concat_events(browse, organic, emails, questions, purchases)
    return SyntheticData(
        customers=_customer_frame(people, start),
        events=_event_frame(events, people, start, horizon),
    )


def _as_naive_utc(moment: datetime) -> np.datetime64:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


def _intensity(start: np.datetime64, days: int) -> _Intensity:
    grid = np.arange(days * 24 + 1) * HOUR
    cell_start = start.astype("datetime64[s]") + grid[:-1].astype("timedelta64[s]")
    epoch_hours = cell_start.astype("datetime64[h]").astype(np.int64)
    weekday = (epoch_hours // 24 + 3) % 7  # 1970-01-01 was a Thursday
    season_phase = (cell_start - SEASON_PEAK).astype(np.float64) / YEAR
    rate = (
        HOURLY[epoch_hours % 24]
        / HOURLY.mean()
        * WEEKLY[weekday]
        / WEEKLY.mean()
        * (1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * season_phase))
    )
    cumulative = np.concatenate([[0.0], np.cumsum(rate * HOUR / YEAR)])
    return _Intensity(grid, cumulative)


def _draw_customers(rng: np.random.Generator, n: int, horizon: float) -> _Customers:
    # Just over half the customers predate the window (up to three years); the rest join in it.
    joined_before = rng.random(n) < 0.55
    created = np.where(joined_before, -rng.random(n) * 3 * YEAR, rng.random(n) * horizon).round()
    # Churners stop at a uniform time between joining and the window end; some churned before
    # the window opened and have no events at all.
    churned = rng.random(n) < 0.3
    churn_time = created + rng.random(n) * (horizon - created)
    active_until = np.where(churned, churn_time, horizon)
    activity = rng.lognormal(0.0, 0.8, n)
    return _Customers(
        created=created,
        active_from=np.maximum(created, 0.0),
        active_until=active_until,
        is_active=~(churned & (rng.random(n) < 0.6)),
        activity=activity / activity.mean() if n else activity,
        cart_rate=rng.beta(5, 5, n),
        conversion=rng.beta(7, 3, n),
        spend_level=rng.normal(np.log(40.0), 0.6, n),
        open_rate=rng.beta(2, 8, n),
        click_rate=rng.beta(2, 12, n),
        subscribed=rng.random(n) < 0.75,
    )


def _poisson_counts(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity, per_year: np.ndarray
) -> np.ndarray:
    exposure = intensity.integral(people.active_from, people.active_until)
    return rng.poisson(per_year * np.maximum(exposure, 0.0))


def _episode_starts(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity, per_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Customer index and start time of Poisson-many episodes per customer, seasonally timed."""
    customer = np.repeat(
        np.arange(len(people.created)), _poisson_counts(rng, people, intensity, per_year)
    )
    time = intensity.sample(
        people.active_from[customer], people.active_until[customer], rng.random(len(customer))
    )
    return customer, time


def _gaps(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """Positive waiting times, never shorter than a second so funnel order survives rounding."""
    return 1.0 + rng.exponential(mean, n)


def _follow_ups(
    rng: np.random.Generator, counts: np.ndarray, mean_gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """`counts[i]` successive waits after anchor i, spaced by exponential gaps; returns the
    anchor index and cumulative wait of each, grouped by anchor in order."""
    anchor = np.repeat(np.arange(len(counts)), counts)
    steps = _gaps(rng, mean_gap, len(anchor))
    totals = np.cumsum(steps)
    before_group = np.concatenate([[0.0], totals])[np.cumsum(counts) - counts]
    return anchor, totals - before_group[anchor]


def _trailing_views(
    rng: np.random.Generator, customer: np.ndarray, time: np.ndarray, extra_mean: float
) -> tuple[_Events, np.ndarray]:
    """1 + Poisson(extra_mean) product views a few minutes apart after each session start;
    returns the views and each session's last view time."""
    counts = 1 + rng.poisson(extra_mean, len(customer))
    session, wait = _follow_ups(rng, counts, 3 * MINUTE)
    view_time = time[session] + wait
    return _Events.of(customer[session], VIEW, view_time), view_time[np.cumsum(counts) - 1]


def _browse_sessions(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity
) -> _Events:
    """Intent-free visits with a few product views: activity volume without purchase signal."""
    customer, time = _episode_starts(
        rng, people, intensity, BROWSE_SESSIONS_PER_YEAR * people.activity
    )
    has_views = rng.random(len(customer)) < 0.7
    views, _ = _trailing_views(rng, customer[has_views], time[has_views], 0.5)
    return _concat_events(_Events.of(customer, VISIT, time), views)


def _organic_episodes(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity
) -> tuple[_Events, _Carts]:
    """Visit -> product views, often repeated over a few days of consideration, maybe a
    pre-sale question, and then maybe add_to_cart at the end of the last session (or, after a
    question, once the answer has come)."""
    customer, time = _episode_starts(
        rng, people, intensity, INTENT_EPISODES_PER_YEAR * people.activity
    )
    n_returns = rng.poisson(RETURN_SESSIONS_MEAN, len(customer))
    episode, wait = _follow_ups(rng, n_returns, RETURN_SESSION_GAP)
    return_time = intensity.advance(time[episode], wait)
    session_customer = np.concatenate([customer, customer[episode]])
    session_time = np.concatenate([time, return_time])
    views, last_view = _trailing_views(rng, session_customer, session_time, 0.5)
    last_session = np.where(
        n_returns > 0, len(customer) + np.cumsum(n_returns) - 1, np.arange(len(customer))
    )
    carted = rng.random(len(customer)) < people.cart_rate[customer]
    asks = rng.random(len(customer)) < QUESTION_SHARE
    question_time = last_view[last_session] + _gaps(rng, 5 * MINUTE, len(customer))
    answered = intensity.advance(question_time, rng.exponential(ANSWER_DELAY, len(customer)))
    ready = np.where(asks, answered, last_view[last_session])
    cart_time = ready[carted] + _gaps(rng, 2 * MINUTE, int(carted.sum()))
    carts = _Carts(customer[carted], cart_time)
    events = _concat_events(
        _Events.of(session_customer, VISIT, session_time),
        views,
        _Events.of(customer[asks], TICKET, question_time[asks]),
        _Events.of(carts.customer, CART, cart_time),
    )
    return events, carts


def _campaign_times(start: np.datetime64, days: int) -> np.ndarray:
    """Send times of campaign e-mails inside the window, seconds since its start."""
    first_day = start.astype("datetime64[D]")
    day = np.arange(days + 1)
    epoch_day = first_day.astype(np.int64) + day
    weekday = (epoch_day + 3) % 7
    week = (epoch_day + 3) // 7
    offset = (first_day - start).astype("timedelta64[s]").astype(np.float64)
    sends = [
        offset + day[(weekday == dow) & (week % every == 0)] * DAY + hour * HOUR
        for dow, hour, every in CAMPAIGN_SLOTS
    ]
    times = np.sort(np.concatenate(sends))
    return times[(times >= 0) & (times < days * DAY)]


def _email_episodes(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity, sends: np.ndarray
) -> tuple[_Events, _Carts]:
    """Opens and clicks per campaign; a click followed by a view can lead to a later cart."""
    # Seeded with empty arrays: a window of a few days may hold no campaign at all.
    opened_by, opened_at = [np.empty(0, dtype=np.int64)], [np.empty(0)]
    for send in sends:
        reached = people.subscribed & (people.active_from <= send) & (people.active_until > send)
        opens = np.flatnonzero(reached & (rng.random(len(reached)) < people.open_rate))
        opened_by.append(opens)
        opened_at.append(
            intensity.advance(np.full(len(opens), send), _gaps(rng, 6 * HOUR, len(opens)))
        )
    customer = np.concatenate(opened_by).astype(np.int64)
    open_time = np.concatenate(opened_at)
    clicked = rng.random(len(customer)) < people.click_rate[customer]
    click_customer = customer[clicked]
    click_time = open_time[clicked] + _gaps(rng, 2 * MINUTE, len(click_customer))

    viewed = rng.random(len(click_customer)) < 0.65
    view_customer = click_customer[viewed]
    views, last_view = _trailing_views(rng, view_customer, click_time[viewed], 1.0)
    # An e-mail-led interest converts to a cart more often than organic browsing, but often
    # only on a return visit hours or days later.
    carted = rng.random(len(view_customer)) < np.minimum(1.5 * people.cart_rate[view_customer], 0.9)
    cart_customer = view_customer[carted]
    n_carts = len(cart_customer)
    later = rng.random(n_carts) < 0.6
    wait = np.where(later, rng.exponential(1.5 * DAY, n_carts), 0.0)
    session = intensity.advance(last_view[carted], wait)
    cart_time = session + _gaps(rng, 2 * MINUTE, n_carts)
    return_visit = _Events.of(cart_customer[later], VISIT, session[later])
    events = _concat_events(
        _Events.of(customer, OPEN, open_time),
        _Events.of(click_customer, CLICK, click_time),
        views,
        return_visit,
        _Events.of(cart_customer, CART, cart_time),
    )
    return events, _Carts(cart_customer, cart_time)


def _random_questions(
    rng: np.random.Generator, people: _Customers, intensity: _Intensity
) -> _Events:
    """Questions outside any shopping episode (delivery times, account help): no effect."""
    customer, time = _episode_starts(
        rng, people, intensity, TICKETS_PER_YEAR * np.sqrt(people.activity)
    )
    return _Events.of(customer, TICKET, time)


def _concat_carts(*parts: _Carts) -> _Carts:
    return _Carts(
        np.concatenate([part.customer for part in parts]),
        np.concatenate([part.time for part in parts]),
    )


def _observable_carts(carts: _Carts, people: _Customers, horizon: float) -> _Carts:
    """Carts inside the window and the customer's active life, in time order."""
    keep = (carts.time < horizon) & (carts.time < people.active_until[carts.customer])
    order = np.argsort(carts.time[keep], kind="stable")
    return _Carts(carts.customer[keep][order], carts.time[keep][order])


def _convert_carts(
    rng: np.random.Generator,
    carts: _Carts,
    people: _Customers,
    intensity: _Intensity,
) -> _Events:
    """Purchases decided from carts, each with its lead-in visit when it is a separate session,
    and the complaints that some purchases cause."""
    n = len(carts.time)
    purchase_time = intensity.advance(carts.time, _gaps(rng, CONVERSION_MEAN_DELAY, n))
    delay = purchase_time - carts.time
    ticket_time = intensity.advance(purchase_time, DAY + rng.exponential(2 * DAY, n))
    until = people.active_until[carts.customer]
    plan = _Plan(
        feasible=(delay <= CART_INTENT_LIFETIME) & (purchase_time < until),
        chance=rng.random(n) / people.conversion[carts.customer],
        causes_ticket=(rng.random(n) < COMPLAINT_AFTER_PURCHASE) & (ticket_time < until),
        ticket_day=(ticket_time // DAY).astype(np.int64),
    )
    bought, complained = _decide_day_by_day(carts, plan, len(people.created))

    buyer = carts.customer[bought]
    when = purchase_time[bought]
    basket = 1 + BASKET_PER_CART * (_carts_before(carts, buyer, when) - 1)
    typical = np.exp(people.spend_level[buyer] + rng.normal(0.0, 0.45, len(buyer)))
    amounts = np.maximum(typical * basket, 1.0).round(2)
    new_session = delay[bought] > HOUR
    lead_in = when[new_session] - _gaps(rng, 5 * MINUTE, int(new_session.sum()))
    visits = _Events.of(buyer[new_session], VISIT, lead_in)
    return _concat_events(
        visits,
        _Events.of(buyer, PURCHASE, when, amounts),
        _Events.of(carts.customer[complained], TICKET, ticket_time[complained]),
    )


def _carts_before(carts: _Carts, customer: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Per (customer, time), the customer's carts in the CART_INTENT_LIFETIME up to it."""
    keys = np.sort((carts.customer.astype(np.int64) << 32) + carts.time.astype(np.int64))
    base = customer.astype(np.int64) << 32
    last = np.searchsorted(keys, base + time.astype(np.int64), side="right")
    first = np.searchsorted(keys, base + (time - CART_INTENT_LIFETIME).astype(np.int64))
    return last - first


@dataclass(frozen=True)
class _Plan:
    """Pre-drawn randomness per cart, so the sequential pass below draws nothing itself."""

    feasible: np.ndarray  # the purchase would fall within the cart's lifetime and customer's life
    chance: np.ndarray  # uniform / conversion probability: buys when below the suppression factor
    causes_ticket: np.ndarray  # a purchase from this cart would be followed by a complaint
    ticket_day: np.ndarray  # day index of that complaint


def _decide_day_by_day(
    carts: _Carts, plan: _Plan, n_customers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which carts (in time order) convert, and which of those purchases raise a complaint.

    Complaints suppress later carts, so decisions run day by day. A complaint counts from the
    day after it was raised: that keeps one day's carts independent of each other, so each day
    is a single vectorised step.
    """
    cart_day = (carts.time // DAY).astype(np.int64)
    n_days = int(cart_day.max()) + 1 if len(cart_day) else 0
    day_bounds = np.searchsorted(cart_day, np.arange(n_days + 1))
    # How many days back a cart can have raised a complaint that falls due today.
    lag = int((plan.ticket_day - cart_day).max()) + 1 if len(cart_day) else 0
    last_complaint_day = np.full(n_customers, -(COMPLAINT_SUPPRESSION_DAYS + 1), dtype=np.int64)
    bought = np.zeros(len(cart_day), dtype=bool)
    complained = np.zeros(len(cart_day), dtype=bool)
    for day in range(n_days):
        recent = slice(day_bounds[max(day - lag, 0)], day_bounds[day])
        raised = complained[recent] & (plan.ticket_day[recent] == day - 1)
        last_complaint_day[carts.customer[recent][raised]] = day - 1

        today = slice(day_bounds[day], day_bounds[day + 1])
        put_off = day - last_complaint_day[carts.customer[today]] <= COMPLAINT_SUPPRESSION_DAYS
        factor = np.where(put_off, COMPLAINT_SUPPRESSION_FACTOR, 1.0)
        bought[today] = plan.feasible[today] & (plan.chance[today] < factor)
        complained[today] = bought[today] & plan.causes_ticket[today]
    return bought, complained


def _concat_events(*parts: _Events) -> _Events:
    return _Events(
        np.concatenate([part.customer for part in parts]).astype(np.int64),
        np.concatenate([part.kind for part in parts]),
        np.concatenate([part.time for part in parts]),
        np.concatenate([part.amount for part in parts]),
    )


def _customer_ids(n: int) -> pd.Series:
    """Zero-padded ids ("C0000042") whose string order is their numeric order."""
    width = max(7, len(str(n)))
    return pd.Series(np.arange(1, n + 1)).astype("str").str.zfill(width).radd("C")


def _timestamps(start: np.datetime64, seconds: np.ndarray) -> np.ndarray:
    return start + (seconds * 1e6).astype(np.int64).astype("timedelta64[us]")


def _customer_frame(people: _Customers, start: np.datetime64) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": _customer_ids(len(people.created)),
            "is_active": people.is_active,
            "created_at": _timestamps(start, people.created),
        }
    )


def _event_frame(
    events: _Events, people: _Customers, start: np.datetime64, horizon: float
) -> pd.DataFrame:
    """Events within each customer's active life and the window, sorted by customer and time."""
    keep = (
        (events.time >= people.active_from[events.customer])
        & (events.time < people.active_until[events.customer])
        & (events.time < horizon)
    )
    customer, kind, time = events.customer[keep], events.kind[keep], events.time[keep]
    order = np.lexsort((time, customer))
    ids = _customer_ids(len(people.created)).array
    types = pd.array(EVENT_TYPES, dtype="str")
    return pd.DataFrame(
        {
            "customer_id": ids.take(customer[order]),
            "event_type": types.take(kind[order].astype(np.int64)),
            "occurred_at": _timestamps(start, time[order]),
            "amount": events.amount[keep][order],
        }
    )
