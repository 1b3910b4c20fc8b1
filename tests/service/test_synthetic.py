"""Tests for the synthetic event-log generator: schema, determinism, realism and, above all, that
the ground truth rewards the order and timing of recent events."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from service.synthetic import EVENT_TYPES, SyntheticData, generate

END = datetime(2026, 6, 15)
DAYS = 365
HORIZON = pd.Timedelta(days=30)


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(300, seed=7, end=END, days=DAYS)


def cutoffs() -> pd.DatetimeIndex:
    """Weekly cutoffs that leave 90 days of history and a full 30-day horizon."""
    start = pd.Timestamp(END) - pd.Timedelta(days=DAYS)
    return pd.date_range(start + pd.Timedelta(days=90), pd.Timestamp(END) - HORIZON, freq="7D")


def buys_within(events: pd.DataFrame, cutoff: pd.Timestamp, customers: pd.Index) -> pd.Series:
    """Whether each customer purchases in the 30 days after the cutoff."""
    window = events[
        (events.event_type == "purchase")
        & (events.occurred_at >= cutoff)
        & (events.occurred_at < cutoff + HORIZON)
    ]
    return pd.Series(customers.isin(window.customer_id), index=customers)


def test_same_seed_gives_identical_frames() -> None:
    first, second = generate(120, seed=3), generate(120, seed=3)
    pd.testing.assert_frame_equal(first.customers, second.customers)
    pd.testing.assert_frame_equal(first.events, second.events)


def test_different_seeds_give_different_frames() -> None:
    first, second = generate(120, seed=3), generate(120, seed=4)
    assert not first.customers.equals(second.customers)
    assert not first.events.equals(second.events)


def test_schema_and_dtypes(data: SyntheticData) -> None:
    customers, events = data.customers, data.events
    assert list(customers.columns) == ["customer_id", "is_active", "created_at"]
    assert list(events.columns) == ["customer_id", "event_type", "occurred_at", "amount"]
    assert customers.customer_id.dtype == "str"
    assert customers.is_active.dtype == bool
    assert customers.created_at.dtype == "datetime64[us]"
    assert events.customer_id.dtype == "str"
    assert events.event_type.dtype == "str"
    assert events.occurred_at.dtype == "datetime64[us]"
    assert events.amount.dtype == "float64"


def test_customer_ids_are_zero_padded_and_unique(data: SyntheticData) -> None:
    ids = data.customers.customer_id
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert ids.iloc[0] == "C0000001"
    assert ids.is_unique and ids.is_monotonic_increasing
    assert data.events.customer_id.isin(ids).all()


def test_events_lie_in_the_window_and_after_signup(data: SyntheticData) -> None:
    events = data.events.merge(data.customers, on="customer_id")
    assert (events.occurred_at >= events.created_at).all()
    assert events.occurred_at.min() >= pd.Timestamp(END) - pd.Timedelta(days=DAYS)
    assert events.occurred_at.max() < pd.Timestamp(END)


def test_amounts_only_on_purchases_and_positive(data: SyntheticData) -> None:
    events = data.events
    is_purchase = events.event_type == "purchase"
    assert events.amount[is_purchase].gt(0).all()
    assert events.amount[~is_purchase].isna().all()


def test_order_values_grow_with_the_carts_before_them() -> None:
    events = generate(1_000, seed=5, end=END, days=DAYS).events
    purchases = events[events.event_type == "purchase"].reset_index(drop=True)
    carts = events.loc[events.event_type == "add_to_cart", ["customer_id", "occurred_at"]]
    pairs = purchases.reset_index().merge(carts, on="customer_id", suffixes=("", "_cart"))
    since = pairs.occurred_at - pairs.occurred_at_cart
    recent = pairs[(since >= pd.Timedelta(0)) & (since <= pd.Timedelta(days=14))]
    baskets = recent.groupby("index").size().reindex(purchases.index, fill_value=0)
    single, several = purchases.amount[baskets == 1], purchases.amount[baskets >= 2]
    assert len(single) > 100 and len(several) > 100
    # Each other recent cart adds 0.6 of a typical order: 1.6x and more, less the noise.
    assert several.mean() / single.mean() > 1.3


def test_all_event_types_occur(data: SyntheticData) -> None:
    assert set(data.events.event_type) == set(EVENT_TYPES)


def test_events_are_sorted_by_customer_and_time(data: SyntheticData) -> None:
    events = data.events
    ordered = events.sort_values(["customer_id", "occurred_at"], kind="stable")
    assert ordered.index.equals(events.index)
    assert events.index.equals(pd.RangeIndex(len(events)))


def test_volume_is_30_to_60_events_per_customer_year(data: SyntheticData) -> None:
    per_customer_year = len(data.events) / len(data.customers) * 365 / DAYS
    assert 30 <= per_customer_year <= 60


def test_customers_join_churn_and_differ_in_activity(data: SyntheticData) -> None:
    customers, events = data.customers, data.events
    window_start = pd.Timestamp(END) - pd.Timedelta(days=DAYS)
    joined_in_window = customers.created_at >= window_start
    assert 0.2 < joined_in_window.mean() < 0.8
    assert 0.03 < (~customers.is_active).mean() < 0.4
    last_seen = events.groupby("customer_id").occurred_at.max()
    active = customers.set_index("customer_id").is_active.reindex(last_seen.index)
    assert last_seen[~active].mean() < last_seen[active].mean()
    counts = events.groupby("customer_id").size()
    assert counts.quantile(0.9) > 4 * counts.quantile(0.1)


def test_activity_follows_daily_and_weekly_cycles(data: SyntheticData) -> None:
    visits = data.events[data.events.event_type == "visit"].occurred_at
    hour, weekday = visits.dt.hour, visits.dt.day_of_week
    assert hour.isin([18, 19, 20, 21]).sum() > 4 * hour.isin([1, 2, 3, 4]).sum()
    assert weekday.isin([5, 6]).sum() > 1.1 * weekday.isin([1, 2]).sum()


def test_purchase_rate_over_30_days_is_plausible(data: SyntheticData) -> None:
    events = data.events
    rates = [
        buys_within(
            events, cutoff, pd.Index(events[events.occurred_at < cutoff].customer_id.unique())
        ).mean()
        for cutoff in cutoffs()
    ]
    assert 0.08 <= np.mean(rates) <= 0.3


def test_every_purchase_follows_a_cart_within_two_weeks(data: SyntheticData) -> None:
    events = data.events.sort_values("occurred_at")
    purchases = events[events.event_type == "purchase"][["customer_id", "occurred_at"]]
    carts = events[events.event_type == "add_to_cart"][["customer_id", "occurred_at"]]
    matched = pd.merge_asof(
        purchases,
        carts.rename(columns={"occurred_at": "carted_at"}),
        left_on="occurred_at",
        right_on="carted_at",
        by="customer_id",
        direction="backward",
    )
    assert len(matched) > 50
    assert (matched.occurred_at - matched.carted_at).le(pd.Timedelta(days=14)).all()


def snapshot(events: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per customer seen in the 60 days before the cutoff: event count, days since the last cart
    and since the last purchase, and whether they buy in the next 30 days."""
    history = events[
        (events.occurred_at < cutoff) & (events.occurred_at >= cutoff - pd.Timedelta(days=60))
    ]
    age_days = (cutoff - history.occurred_at).dt.total_seconds() / 86400
    frame = pd.DataFrame({"n_events": history.groupby("customer_id").size()})
    for column, event_type in (("cart_age", "add_to_cart"), ("purchase_age", "purchase")):
        ages = age_days[history.event_type == event_type]
        frame[column] = ages.groupby(history.customer_id).min().reindex(frame.index)
    frame["buys"] = buys_within(events, cutoff, frame.index)
    return frame


@pytest.fixture(scope="module")
def snapshots(data: SyntheticData) -> pd.DataFrame:
    frame = pd.concat([snapshot(data.events, cutoff) for cutoff in cutoffs()])
    # Coarse activity classes, to compare customers with a similar number of recent events.
    return frame.assign(activity=np.floor(np.log2(frame.n_events)))


def matched_rate(group: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Purchase rate of `reference` reweighted to the activity mix of `group`."""
    by_activity = reference.groupby("activity").buys.mean()
    weights = group.activity[group.activity.isin(by_activity.index)].value_counts(normalize=True)
    return float((by_activity[weights.index] * weights).sum())


def test_an_open_recent_cart_beats_the_same_activity_without_one(
    snapshots: pd.DataFrame,
) -> None:
    recent_cart = snapshots.cart_age < 3
    bought_since = snapshots.purchase_age < snapshots.cart_age
    open_cart = snapshots[recent_cart & ~bought_since]
    no_cart = snapshots[~(snapshots.cart_age < 14)]
    assert len(open_cart) > 100
    baseline = matched_rate(open_cart, no_cart)
    assert open_cart.buys.mean() > 1.8 * baseline
    assert open_cart.buys.mean() - baseline > 0.2


def test_a_cart_already_followed_by_a_purchase_carries_less_intent(
    snapshots: pd.DataFrame,
) -> None:
    recent_cart = snapshots[snapshots.cart_age < 3]
    bought_since = recent_cart.purchase_age < recent_cart.cart_age
    assert bought_since.sum() > 30
    assert recent_cart.buys[~bought_since].mean() > recent_cart.buys[bought_since].mean() + 0.1


def test_a_cart_goes_stale_after_two_weeks(snapshots: pd.DataFrame) -> None:
    fresh = snapshots[snapshots.cart_age < 3].buys.mean()
    stale = snapshots[(snapshots.cart_age >= 14) & (snapshots.cart_age < 28)].buys.mean()
    assert fresh > 1.5 * stale


def test_click_followed_by_a_view_leads_to_carts(data: SyntheticData) -> None:
    events = data.events
    next_type = events.event_type.shift(-1).where(
        events.customer_id.shift(-1) == events.customer_id
    )
    next_gap = events.occurred_at.shift(-1) - events.occurred_at
    clicks = events[events.event_type == "email_click"].assign(
        viewed=(next_type == "product_view") & (next_gap < pd.Timedelta(hours=1))
    )
    carts = events[events.event_type == "add_to_cart"][["customer_id", "occurred_at"]]
    later_cart = pd.merge_asof(
        clicks.sort_values("occurred_at"),
        carts.rename(columns={"occurred_at": "carted_at"}).sort_values("carted_at"),
        left_on="occurred_at",
        right_on="carted_at",
        by="customer_id",
        direction="forward",
    )
    later_cart["carts"] = later_cart.carted_at - later_cart.occurred_at < pd.Timedelta(days=7)
    rates = later_cart.groupby("viewed").carts.mean()
    assert later_cart.viewed.sum() > 30 and (~later_cart.viewed).sum() > 30
    assert rates[True] > 2 * rates[False]


def test_a_ticket_after_a_purchase_suppresses_conversion_and_one_before_does_not(
    data: SyntheticData,
) -> None:
    """Same event type, opposite meaning: a ticket within a week after a purchase is a
    complaint that puts the customer off for months; any other ticket is a question and
    changes nothing."""
    events = data.events.sort_values("occurred_at")

    def times(event_type: str, column: str) -> pd.DataFrame:
        rows = events[events.event_type == event_type][["customer_id", "occurred_at"]]
        return rows.rename(columns={"occurred_at": column})

    def asof(
        left: pd.DataFrame, left_on: str, right: pd.DataFrame, direction: str = "backward"
    ) -> pd.DataFrame:
        """Each left row with the customer's nearest right time (right's one time column)."""
        (right_on,) = right.columns.drop("customer_id")
        return pd.merge_asof(
            left, right, left_on=left_on, right_on=right_on, by="customer_id", direction=direction
        )

    tickets = asof(
        times("support_ticket", "ticket_at"), "ticket_at", times("purchase", "bought_at")
    )
    complaint = tickets.ticket_at - tickets.bought_at < pd.Timedelta(days=7)
    complaints = tickets[complaint][["customer_id", "ticket_at"]]
    questions = tickets[~complaint][["customer_id", "ticket_at"]]
    carts = times("add_to_cart", "carted_at")
    carts = asof(carts, "carted_at", complaints.rename(columns={"ticket_at": "complained_at"}))
    carts = asof(carts, "carted_at", questions.rename(columns={"ticket_at": "asked_at"}))
    carts = asof(carts, "carted_at", times("purchase", "next_purchase_at"), "forward")
    converted = carts.next_purchase_at - carts.carted_at < pd.Timedelta(days=14)
    put_off = carts.carted_at - carts.complained_at < pd.Timedelta(days=200)
    asked = (carts.carted_at - carts.asked_at < pd.Timedelta(days=30)) & ~put_off
    neither = ~put_off & ~asked
    assert put_off.sum() > 20 and asked.sum() > 50
    assert converted[put_off].mean() < 0.3 * converted[neither].mean()
    assert converted[asked].mean() > 0.8 * converted[neither].mean()


def test_aware_end_is_read_as_utc_and_bounds_a_short_window() -> None:
    aware = generate(
        80, seed=5, end=datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2))), days=20
    )
    naive = generate(80, seed=5, end=datetime(2026, 3, 1, 10), days=20)
    pd.testing.assert_frame_equal(aware.events, naive.events)
    occurred = naive.events.occurred_at
    assert len(occurred) > 0
    assert occurred.min() >= pd.Timestamp("2026-02-09 10:00")
    assert occurred.max() < pd.Timestamp("2026-03-01 10:00")


def test_rejects_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(10, days=0)
