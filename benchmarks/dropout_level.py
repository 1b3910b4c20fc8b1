"""The level forecasters against what came in, with no value model: the spend of the horizon
after each cutoff carried forward from the horizon before it, BG/NBD x Gamma-Gamma's
forecast (llm_model.dropout), and the one the service's rule chooses (llm_model.level: the
forecaster nearer what came in on the window before the cutoff).

    python benchmarks/dropout_level.py

On CDNOW at the forward cutoffs and on the synthetic population at the last cutoffs of its
year; every customer with an event by the cutoff, realized spend by the same customers.
Offline, seconds.
"""

import pandas as pd
from cdnow import cdnow_events

from llm_model.level import (
    CARRIED_FORWARD,
    DROPOUT,
    LevelInputs,
    forecast_level,
    forecast_total,
    purchase_summary,
)
from service.synthetic import generate

KINDS = (CARRIED_FORWARD, DROPOUT)


def realized_spend(events: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> float:
    """What the customers with an event by `cutoff` spent in (cutoff, cutoff + horizon]."""
    present = events.loc[events["occurred_at"] <= cutoff, "customer_id"].unique()
    window = events["occurred_at"].between(
        cutoff, cutoff + pd.Timedelta(days=horizon), inclusive="right"
    )
    bought = events[
        window & (events["event_type"] == "purchase") & events["customer_id"].isin(present)
    ]
    return float(bought.groupby("customer_id")["amount"].sum().clip(lower=0).sum())


def main() -> None:
    # The service imports identical CDNOW rows once (its event key hashes the content).
    cdnow = cdnow_events().drop_duplicates()
    synthetic = generate(50_000, seed=0).events
    last = synthetic["occurred_at"].max().floor("D")
    runs = [("CDNOW", cdnow, pd.Timestamp(day), 90) for day in ("1997-12-31", "1998-03-31")]
    runs += [
        ("synthetic 50k", synthetic, last - pd.Timedelta(days=horizon * back), horizon)
        for horizon in (30, 90)
        for back in (1, 2, 3)
    ]
    print(
        "| data | cutoff | horizon (days) | realized total | carried forward | dropout "
        "| window before: carried forward | window before: dropout | chosen | chosen / realized |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, events, cutoff, horizon in runs:
        before = cutoff - pd.Timedelta(days=horizon)
        summaries = LevelInputs(
            *(purchase_summary(events, moment, horizon, "purchase") for moment in (before, cutoff))
        )
        level = forecast_level(summaries, realized_spend(events, before, horizon), horizon)
        realized = realized_spend(events, cutoff, horizon)
        forecasts = [
            f"{forecast_total(kind, summaries.now, horizon) / realized:.2f}" for kind in KINDS
        ]
        checks = [f"{level.checks[kind]:.2f}" if kind in level.checks else "-" for kind in KINDS]
        print(
            f"| {name} | {cutoff:%Y-%m-%d} | {horizon} | {realized:,.0f} "
            f"| {' | '.join(forecasts + checks)} | {level.kind} "
            f"| {level.total / realized:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
