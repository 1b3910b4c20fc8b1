"""CDNOW's purchase log (23,570 customers, 1997-1998), as the benchmarks read it. Kept apart
from the scripts that train, so that reading it loads no TensorFlow."""

import importlib.metadata

import pandas as pd


def cdnow_events() -> pd.DataFrame:
    """CDNOW_master.txt as purchases at midnight; same-day rows are real and kept apart.

    Located without importing lifetimes, whose import can fail on recent pandas."""
    path = importlib.metadata.distribution("lifetimes").locate_file(
        "lifetimes/datasets/CDNOW_master.txt"
    )
    raw = pd.read_csv(str(path), sep=r"\s+", dtype={"customer_id": str, "date": str})
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "event_type": "purchase",
            "occurred_at": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["dollar_value"].astype(float),
        }
    )
