"""Reason codes from contributions, whatever computed them (gradient x input for the
networks, occlusion for the static models): a label per input, and the largest three per
customer. No TensorFlow here: the static models' reasons need none."""

import re

import numpy as np
import pandas as pd

N_REASONS = 3
STATIC_LABELS = {
    "recency": "days since last event",
    "frequency": "number of events",
    "monetary": "total spend",
    "target_recency": "days since last conversion",
    "tenure": "customer tenure",
}
WINDOW_COUNT = re.compile(r"^count_(?P<event_type>.+)_(?P<days>\d+)d$")


def static_label(name: str) -> str:
    """'count_add_to_cart_7d' -> 'add_to_cart events, last 7 days'."""
    if match := WINDOW_COUNT.match(name):
        return f"{match['event_type']} events, last {match['days']} days"
    return STATIC_LABELS.get(name, name)


def static_labels(static_names: tuple[str, ...]) -> list[str]:
    return [static_label(name) for name in static_names]


def top_reasons(contributions: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Per row, the names of its N_REASONS largest contributions, largest first."""
    top = np.argsort(-contributions, axis=1, kind="stable")[:, :N_REASONS]
    return names[top]


def reasons_frame(table: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(table, columns=[f"reason_{i + 1}" for i in range(N_REASONS)])
