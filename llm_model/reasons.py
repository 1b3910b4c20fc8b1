"""Reason codes from contributions, whatever computed them (gradient x input for the
networks, occlusion or exact terms for the static models): per customer the three largest
contributions by absolute value, each as the behaviour, the customer's own value and the
direction, e.g. `3 add_to_cart in last 7 days (raises)`, with the contribution (log-odds)
beside it. No TensorFlow here: the static models' reasons need none.

A reason holds no comma (an event type's commas are shown as spaces), so a list of them
joined by commas still reads as three.
"""

import re
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from llm_model.sequences import N_RESERVED, NO_HISTORY, UNKNOWN, SequenceConfig, Vocabulary

N_REASONS = 3
REASON_COLUMNS = [f"reason_{i + 1}" for i in range(N_REASONS)]
WEIGHT_COLUMNS = [f"{reason}_weight" for reason in REASON_COLUMNS]
WINDOW_COUNT = re.compile(r"^count_(?P<event_type>.+)_(?P<days>\d+)d$")
# Event types may be 64 characters; shown whole, the longest reasons would not fit the
# 96-character reason columns.
SHOWN_TYPE_LENGTH = 40

# How an input reads with the customer's value (a count, days or an amount, rounded).
Describe = Callable[[int], str]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def how_many(n: int) -> str:
    return "no" if n == 0 else str(n)


def shown_type(event_type: str) -> str:
    """The event type as a reason shows it: without commas, cut to SHOWN_TYPE_LENGTH."""
    plain = event_type.replace(",", " ")
    if len(plain) <= SHOWN_TYPE_LENGTH:
        return plain
    return plain[: SHOWN_TYPE_LENGTH - 1] + "…"


def quiet_for(event: str, days: int) -> str:
    """'no purchase for 212 days'; a customer who never had one reads the same, with the
    days the features report for them (the lookback)."""
    return f"{event} in the last day" if days == 0 else f"no {event} for {plural(days, 'day')}"


def customer_for(days: int) -> str:
    return "customer for less than a day" if days == 0 else f"customer for {plural(days, 'day')}"


def events_in_all(n: int) -> str:
    return f"{how_many(n)} {'event' if n == 1 else 'events'} in all"


def spent(target: str, amount: int) -> str:
    return f"spent {amount} on {target} in all"


def in_window(event_type: str, days: int, n: int) -> str:
    return f"{how_many(n)} {event_type} in last {plural(days, 'day')}"


def static_description(name: str, config: SequenceConfig) -> Describe:
    """How the static feature `name` (see llm_model.sequences.static_names) reads with a
    customer's raw figure."""
    target = shown_type(config.target_event)
    if match := WINDOW_COUNT.match(name):
        return partial(in_window, shown_type(match["event_type"]), int(match["days"]))
    described = {
        "recency": partial(quiet_for, "event"),
        "frequency": events_in_all,
        "monetary": partial(spent, target),
        "target_recency": partial(quiet_for, target),
        "tenure": customer_for,
    }
    if name not in described:
        raise ValueError(f"static feature {name!r} has no reason text")
    return described[name]


def static_descriptions(names: Sequence[str], config: SequenceConfig) -> list[Describe]:
    return [static_description(name, config) for name in names]


def static_figures(static: np.ndarray) -> np.ndarray:
    """The raw figures (days, counts, spend) behind static features, stored as their log1p."""
    return np.expm1(static.astype(np.float64))


def among_recent(event_type: str, n: int) -> str:
    return f"{n} {event_type} among recent events"


def unseen_among_recent(n: int) -> str:
    return f"{plural(n, 'event')} of unseen types among recent events"


def no_recent_event(lookback_days: int | None, _: int) -> str:
    if lookback_days is None:
        return "no event yet"
    return f"no event in the last {plural(lookback_days, 'day')}"


def token_descriptions(vocab: Vocabulary, config: SequenceConfig) -> list[Describe]:
    """How each token of a sequence (ids from UNKNOWN on: padding is never a reason) reads
    with the number of times the customer's sequence holds it."""
    special = {
        UNKNOWN: unseen_among_recent,
        NO_HISTORY: partial(no_recent_event, config.lookback_days),
    }
    types = [partial(among_recent, shown_type(t)) for t in vocab.event_types]
    return [special[token] for token in range(UNKNOWN, N_RESERVED)] + types


def top_reasons(
    contributions: np.ndarray, figures: np.ndarray, descriptions: Sequence[Describe]
) -> pd.DataFrame:
    """reason_1..3 and reason_1_weight..3 per row: the N_REASONS contributions largest in
    absolute value, largest first, each read with the row's figure of that input and the
    direction. NaN marks an input the customer does not have; it and a contribution of 0 are
    no reason (a row with fewer reasons has NULLs)."""
    contributions = contributions.astype(np.float64, copy=False)
    magnitude = np.nan_to_num(np.abs(contributions), nan=0.0)
    top = np.argsort(-magnitude, axis=1, kind="stable")[:, :N_REASONS]
    rows = np.arange(len(contributions))[:, None]
    given = magnitude[rows, top] > 0
    weight = np.where(given, contributions[rows, top], np.nan)
    text = np.full(top.shape, None, dtype=object)
    # Reasons repeat (a few inputs, small integers): each distinct one is written once.
    keys = np.stack(
        [top[given], np.rint(figures[rows, top][given]), weight[given] > 0], axis=1
    ).astype(np.int64)
    distinct, which = np.unique(keys, axis=0, return_inverse=True)
    written = [
        f"{descriptions[column](int(figure))} ({'raises' if up else 'lowers'})"
        for column, figure, up in distinct
    ]
    text[given] = np.array(written, dtype=object)[which.reshape(-1)] if written else []
    return pd.DataFrame(
        {
            **{name: text[:, i] for i, name in enumerate(REASON_COLUMNS)},
            **{name: weight[:, i] for i, name in enumerate(WEIGHT_COLUMNS)},
        }
    )
