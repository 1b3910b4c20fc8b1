"""The level forecasters against what came in, with no value model: the spend of the horizon
after each cutoff carried forward from the horizon before it, BG/NBD x Gamma-Gamma's
forecast (llm_model.dropout), and the one the service's rule chooses (llm_model.level: the
forecaster nearer what came in on the window before the cutoff).

    python benchmarks/dropout_level.py

On CDNOW at the forward cutoffs and on the synthetic population at the last cutoffs of its
year; every customer with an event by the cutoff, realized spend by the same customers.
Offline, seconds.
"""

import numpy as np
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


def cutoffs(first: str, last: str, every_days: int) -> list[pd.Timestamp]:
    return list(pd.date_range(first, last, freq=f"{every_days}D"))


def row(name: str, events: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> dict:
    """Every forecaster's forecast / realized at `cutoff`, and the rule's choice."""
    before = cutoff - pd.Timedelta(days=horizon)
    summaries = LevelInputs(
        *(purchase_summary(events, moment, horizon, "purchase") for moment in (before, cutoff))
    )
    level = forecast_level(summaries, realized_spend(events, before, horizon), horizon)
    realized = realized_spend(events, cutoff, horizon)
    return {
        "data": name,
        "cutoff": cutoff,
        "horizon": horizon,
        "realized": realized,
        **{kind: forecast_total(kind, summaries.now, horizon) / realized for kind in KINDS},
        **{f"before {kind}": level.checks.get(kind, np.nan) for kind in KINDS},
        "chosen": level.kind,
        "rule": level.total / realized,
    }


def main() -> None:
    # The service imports identical CDNOW rows once (its event key hashes the content).
    cdnow = cdnow_events().drop_duplicates()
    synthetic = generate(50_000, seed=0).events
    last = synthetic["occurred_at"].max().floor("D")
    runs = [
        ("CDNOW", cdnow, cutoff, horizon)
        for horizon in (90, 30)
        for cutoff in cutoffs(
            "1997-06-30", f"{pd.Timestamp('1998-06-30') - pd.Timedelta(days=horizon):%Y-%m-%d}", 30
        )
    ]
    runs += [
        ("synthetic 50k", synthetic, last - pd.Timedelta(days=horizon * back), horizon)
        for horizon in (30, 90)
        for back in range(1, 11 if horizon == 30 else 3)
    ]
    rows = pd.DataFrame([row(*run) for run in runs])
    print(
        "| data | cutoff | horizon (days) | realized total | carried forward | dropout "
        "| window before: carried forward | window before: dropout | chosen | chosen / realized |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows.itertuples(index=False):
        figures = " | ".join(f"{value:.2f}" for value in r[4:8]).replace("nan", "-")
        print(
            f"| {r.data} | {r.cutoff:%Y-%m-%d} | {r.horizon} | {r.realized:,.0f} | {figures} "
            f"| {r.chosen} | {r.rule:.2f} |"
        )
    print("\n| data | horizon (days) | cutoffs | forecaster | within ±15% | median | worst |")
    print("|---|---|---|---|---|---|---|")
    for (name, horizon), group in rows.groupby(["data", "horizon"], sort=False):
        for column in (*KINDS, "rule"):
            ratio = group[column]
            worst = ratio.iloc[np.argmax(np.abs(np.log(ratio)))]
            print(
                f"| {name} | {horizon} | {len(group)} | {column} "
                f"| {int((np.abs(ratio - 1) <= 0.15).sum())} | {ratio.median():.2f} | {worst:.2f} |"
            )


if __name__ == "__main__":
    main()
