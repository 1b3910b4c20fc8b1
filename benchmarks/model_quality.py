"""Holdout quality of the GRU/LSTM model against the baselines, and its training speed.

Synthetic data (the default) or an event log in any database the project can read:

    python benchmarks/model_quality.py --customers 20000 --seed 0
    python benchmarks/model_quality.py --database-url sqlite:///propensity.db --as-of 2026-10-01
    python benchmarks/model_quality.py --cdnow  # real purchase log, see CDNOW_DEFAULTS
    python benchmarks/model_quality.py --cdnow --forward 1997-12-31,1998-03-31 --horizon-days 90

Training goes through the library's own path (build_training_set, fit_model, evaluate: what
train_and_evaluate runs), so the figures are those the retrain flow would register. Offline.

--forward FROM,TO judges the service as it runs, not a holdout: the whole log goes into a
fresh SQLite database as the service's own events, and the service's backtest flow
(`propensity backtest`) replays retrain and score at every cutoff from FROM to TO, every
--every-days (default: the horizon), with the service's default settings (the champion rule
included, so a later cutoff's challenger meets the earlier champion). The published scores
of the champion and of the logistic and gbm contenders are judged against the target events
that happened in (cutoff, cutoff + horizon]; the table is printed as Markdown.

--sample-sizes N,N,... measures what the retrain's training sample costs: the retrain's
contenders (the service's plan, hybrid included) are trained on the customers first by md5
of their id, as the database chooses them, for each size (`all`: everyone), and each
champion is judged on its own holdout and on everyone's holdout, the same customers for
every size. TensorFlow trains on about one core, so on a larger machine each size can run
as a process of its own (`--sample-sizes 150000` beside `--sample-sizes all`, same seed).
"""

import argparse
import hashlib
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from cdnow import cdnow_events

from db.engine import make_engine, transaction
from db.event_import import event_keys, store_customers, store_events
from db.migrate import upgrade
from db.readers import read_events
from db.source import EventSource, event_time_span, resolve_columns
from llm_model import metrics
from llm_model.baselines import fit_static_model
from llm_model.inputs import TrainingInputs, training_inputs
from llm_model.kinds import STATIC_KINDS, hybrid_kind
from llm_model.manifest import ModelConfig, TrainingPlan
from llm_model.metrics import METRIC_NAMES as COLUMNS
from llm_model.metrics import VALUE_METRIC
from llm_model.sequences import SequenceConfig, Snapshot, build_training_set
from llm_model.training import (
    calibration_split,
    evaluate,
    fit_hybrid,
    fit_model,
    fit_ziln,
    train_on,
)
from llm_model.value import evaluate_values, fit_value_contenders
from service.events import resolve_as_of
from service.settings import BacktestRequest, Settings, using_settings
from service.synthetic import generate

# CDNOW: 23,570 customers who all first bought in Q1 1997, ~3 purchases each over 18 months
# (most buy once). A 90-day horizon gives a usable base rate (~10%); 90-day strides give four
# training quarters, all after the cohort closed, plus the Apr-Jun 1998 holdout. No lookback:
# the whole 18 months matter (a 365-day one would erase a Q1 1997 first purchase).
CDNOW_DEFAULTS = {
    "as_of": pd.Timestamp("1998-06-30"),
    "horizon_days": 90,
    "stride_days": 90,
    "snapshots": 5,
    "lookback_days": None,
    "max_len": 20,
    "windows_days": (30, 90, 180, 365),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ModelConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000, help="synthetic customers")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--database-url", help="read events from this database instead")
    parser.add_argument("--cdnow", action="store_true", help="the CDNOW log shipped in lifetimes")
    parser.add_argument("--table", help="mapped events table/view (default: customer_events)")
    parser.add_argument("--as-of", type=pd.Timestamp, help="data cutoff (default: last event)")
    parser.add_argument("--horizon-days", type=int, default=30)
    parser.add_argument("--snapshots", type=int, default=4, help="labelled cutoffs incl. holdout")
    parser.add_argument("--stride-days", type=int, default=30)
    parser.add_argument("--max-len", type=int, default=SequenceConfig.max_len)
    parser.add_argument(
        "--lookback-days",
        type=lambda text: int(text) or None,
        default=SequenceConfig.lookback_days,
        help="0: whole history",
    )
    parser.add_argument(
        "--windows-days",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        default=SequenceConfig.windows_days,
        help="static count windows, e.g. 7,30,90",
    )
    parser.add_argument("--cells", default="gru,lstm", help="comma-separated: gru,lstm")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--units", type=int, default=defaults.units)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--forward",
        type=lambda text: [pd.Timestamp(d) for d in text.split(",")],
        help="FROM,TO: the service's backtest flow over cutoffs in this range",
    )
    parser.add_argument(
        "--every-days", type=int, help="days between --forward cutoffs (default: the horizon)"
    )
    parser.add_argument(
        "--sample-sizes",
        type=lambda text: [None if n == "all" else int(n) for n in text.split(",")],
        help="N,N,...: retrain on samples of these sizes; all: on everyone",
    )
    args = parser.parse_args(argv)
    if args.cdnow and args.database_url:
        parser.error("--cdnow and --database-url are alternatives")
    if args.forward and len(args.forward) != 2:
        parser.error("--forward takes FROM,TO")
    if args.cdnow:  # its defaults, still overridable on the command line
        parser.set_defaults(**CDNOW_DEFAULTS)
        args = parser.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not args.cells or not set(args.cells) <= {"gru", "lstm"}:
        parser.error(f"--cells must name gru and/or lstm, got {args.cells}")
    args.stride_days = max(args.stride_days, args.horizon_days)
    return args


def load_events(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Events (every one up to the data cutoff) and the data cutoff."""
    if args.database_url is None:
        events = cdnow_events() if args.cdnow else generate(args.customers, seed=args.seed).events
        last = events["occurred_at"].max()
        first = events["occurred_at"].min()
        return events, pd.Timestamp(resolve_as_of(args.as_of, first, last, pd.Timestamp.max))
    source = EventSource(table=args.table)
    with make_engine(args.database_url).connect() as connection:
        columns = resolve_columns(connection, source)
        span = event_time_span(connection, columns)
        if span is None:
            raise SystemExit("no events in the source")
        as_of = pd.Timestamp(resolve_as_of(args.as_of, span[0], span[1], now()))
        # The whole history, as the retrain reads it: the static features cover all of it.
        events = read_events(connection, columns, as_of.to_pydatetime())
    return events, as_of


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_convert(None)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.forward:
        forward(args)
        return
    events, as_of = load_events(args)
    sequence_config = sequence_of(args)
    if args.sample_sizes:
        sample_curve(args, events, as_of, sequence_config)
        return
    started = time.perf_counter()
    training, judge = calibration_split(
        build_training_set(events, as_of, sequence_config, args.snapshots, args.stride_days)
    )
    n_train, n_holdout = len(training.train.labels), len(training.holdout.labels)
    print(
        f"{len(events):,} events, as_of {as_of}; train rows {n_train:,} "
        f"(base rate {training.train.labels.mean():.3f}), holdout rows {n_holdout:,} "
        f"(base rate {training.holdout.labels.mean():.3f}); "
        f"features built in {time.perf_counter() - started:.1f}s"
    )
    config = ModelConfig(
        units=args.units,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
    )
    rows: dict[str, dict[str, float]] = {}
    timing: dict[str, str] = {}
    static = {}
    for kind in STATIC_KINDS:
        started = time.perf_counter()
        static[kind] = fit_static_model(kind, training, sequence_config, config.seed)
        timing[kind] = f"{time.perf_counter() - started:.1f}s"
    networks = {}
    for cell in args.cells:
        cell_config = replace(config, cell=cell)
        started = time.perf_counter()
        networks[cell], _ = fit_model(training, judge, cell_config, sequence_config, verbose=0)
        timing[cell] = network_timing(networks[cell].network, started, n_train)
        hybrid, started = hybrid_kind(cell), time.perf_counter()
        networks[hybrid], _ = fit_hybrid(
            training, judge, static["gbm"], cell_config, sequence_config, 0
        )
        timing[hybrid] = network_timing(networks[hybrid].network, started, n_train)
    evaluation = evaluate({**networks, **static}, training)
    table = evaluation.table
    for kind in networks:
        rows.update({kind: table[kind], f"{kind} (raw)": table[f"{kind}_raw"]})
    for name in (*STATIC_KINDS, "recency"):
        rows[name] = table[name]

    print("\nafter each model: its training time (for the networks: epochs, rows x epochs / s)")
    print_table(rows, timing)
    best = max(STATIC_KINDS, key=lambda name: rows[name]["roc_auc"])
    best_loss = min(STATIC_KINDS, key=lambda name: rows[name]["log_loss"])
    print()
    for kind in networks:
        auc = rows[kind]["roc_auc"] - rows[best]["roc_auc"]
        loss = rows[kind]["log_loss"] - rows[best_loss]["log_loss"]
        print(
            f"{kind} - best baseline AUC delta: {auc:+.4f} ({best}), "
            f"log loss delta: {loss:+.4f} ({best_loss}; negative is better)"
        )
    served = evaluation.winner("roc_auc")
    value_contenders(training, config, sequence_config, evaluation.scores, served)


def value_contenders(
    training, config: ModelConfig, sequence_config: SequenceConfig, scores, served: str
) -> None:
    """Every value contender on the holdout's realized spend (two_stage through the
    propensity of `served`, the propensity winner; unscaled, which leaves every ranking
    figure as it is), and the winner's lead over the best of those that see the static
    features only: gbm_poisson, and two_stage through gradient boosting's propensity."""
    started = time.perf_counter()
    values = fit_value_contenders(training.train, config.seed)
    timing = {kind: f"{time.perf_counter() - started:.1f}s (both static)" for kind in values.models}
    started = time.perf_counter()
    values.models["ziln"] = fit_ziln(training, config, sequence_config.max_len, verbose=0)
    timing["ziln"] = network_timing(
        values.models["ziln"].network, started, len(training.train.labels)
    )
    holdout = training.holdout
    evaluation = evaluate_values(values.models, holdout, scores[served])
    on_gbm = values.models["two_stage"].expected_value(holdout.features, scores["gbm"])
    evaluation.table["two_stage on gbm"] = metrics.value_summary(holdout.values, on_gbm)
    print(f"\nvalue contenders on the holdout's realized spend (two_stage on {served}):")
    columns = ("value_gini", "mae", "top_decile_revenue_share", "predicted_total", "realized_total")
    print(f"{'model':<14}" + "".join(f"{c:>26}" for c in columns))
    for name, row in evaluation.table.items():
        cells = "".join(f"{row[c]:>26.4f}" for c in columns)
        print(f"{name:<14}{cells}  {timing.get(name, '')}")
    winner = evaluation.winner(VALUE_METRIC)
    static = ("gbm_poisson", "two_stage on gbm")
    best_static = max(static, key=lambda k: evaluation.table[k][VALUE_METRIC])
    lead = evaluation.table[winner][VALUE_METRIC] - evaluation.table[best_static][VALUE_METRIC]
    print(f"value champion {winner}: Gini lead over the best static ({best_static}) {lead:+.4f}")
    # The ZILN network's purchase head, as a propensity contender would be judged (its
    # probability is uncalibrated: the AUC is the fair comparison).
    spend_probability = values.models["ziln"].spend_probability(holdout.features)
    print("\npurchase probability on the holdout's labels:")
    for name, probability in ((served, scores[served]), ("ziln", spend_probability)):
        auc = metrics.roc_auc(holdout.labels, probability)
        loss = metrics.log_loss(holdout.labels, probability)
        print(f"{name:<14} AUC {auc:.4f}  log loss {loss:.4f}")


def sequence_of(args: argparse.Namespace) -> SequenceConfig:
    return SequenceConfig(
        max_len=args.max_len,
        horizon_days=args.horizon_days,
        windows_days=args.windows_days,
        lookback_days=args.lookback_days,
    )


def md5_first(customer_ids, size: int) -> set[str]:
    """The training sample's customers, as the database orders them (db.customers)."""
    ranked = sorted(customer_ids, key=lambda c: (hashlib.md5(c.encode()).hexdigest(), c))
    return set(ranked[:size])


def of_customers(inputs: TrainingInputs, kept: set[str]) -> TrainingInputs:
    """The inputs' rows of these customers only."""

    def rows(snapshot: Snapshot) -> Snapshot:
        # Hashed: np.isin compares object arrays pair by pair, hours at 400k customers.
        return snapshot.take(pd.Index(snapshot.features.customer_ids).isin(kept))

    training = replace(
        inputs.training, train=rows(inputs.training.train), holdout=rows(inputs.training.holdout)
    )
    return replace(inputs, training=training, n_customers=len(kept))


def sample_curve(
    args: argparse.Namespace, events: pd.DataFrame, as_of: pd.Timestamp, sequence: SequenceConfig
) -> None:
    """Each sample size's champion, on its own holdout and on everyone's."""
    plan = TrainingPlan(
        sequence=sequence,
        network=ModelConfig(cell=args.cells[0], epochs=args.epochs, units=args.units),
        n_snapshots=args.snapshots,
        stride_days=args.stride_days,
    )
    everyone = training_inputs(events, as_of, plan)
    holdout = everyone.training.holdout
    customers = events["customer_id"].unique()
    print(f"{len(customers):,} customers, {len(events):,} events; holdout {len(holdout.labels):,}")
    print("| sample | champion | own holdout AUC | everyone's holdout AUC | log loss | minutes |")
    print("|---|---|---|---|---|---|")
    for size in [len(customers) if n is None else n for n in args.sample_sizes]:
        started = time.perf_counter()
        result = train_on(of_customers(everyone, md5_first(customers, size)), as_of, plan, None, 0)
        winner = result.evaluation.winner("roc_auc")
        scores = result.contenders.models[winner].propensity(holdout.features)
        print(
            f"| {min(size, len(customers)):,} | {winner} "
            f"| {result.evaluation.table[winner]['roc_auc']:.4f} "
            f"| {metrics.roc_auc(holdout.labels, scores):.4f} "
            f"| {metrics.log_loss(holdout.labels, scores):.4f} "
            f"| {(time.perf_counter() - started) / 60:.1f} |",
            flush=True,
        )


def network_timing(network, started: float, n_train: int) -> str:
    seconds = time.perf_counter() - started
    epochs = len(network.history.epoch)
    return f"{seconds:.1f}s, {epochs} epochs, {n_train * epochs / seconds:,.0f} rows/s"


def print_table(rows: dict[str, dict[str, float]], notes: dict[str, str] | None = None) -> None:
    print(f"{'model':<18}" + "".join(f"{c:>16}" for c in COLUMNS))
    for name, row in rows.items():
        values = "".join(f"{row[c]:>16.4f}" for c in COLUMNS)
        print(f"{name:<18}{values}  {(notes or {}).get(name, '')}")


def forward(args: argparse.Namespace) -> None:
    """The service's backtest flow over the whole log, loaded into a new SQLite database as
    the service's own events."""
    folder = Path(tempfile.mkdtemp(prefix="forward-"))
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{folder / 'events.db'}",
        reports_dir=str(folder / "reports"),
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline, as the CLI
    # The flows load TensorFlow and Prefect: only this mode needs them.
    from cli.process import local_flow_runs
    from flows.backtest import backtest
    from service.rendering import backtest_table

    events = load_into_service(args, settings.database_url)
    start, end = args.forward
    every = args.every_days or args.horizon_days
    print(
        f"{len(events):,} events; service defaults, horizon {args.horizon_days} days, "
        f"cutoffs every {every} days from {start:%Y-%m-%d} to {end:%Y-%m-%d}; folder {folder}"
    )
    started = time.perf_counter()
    request = BacktestRequest(
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        every_days=every,
        horizon_days=args.horizon_days,
        csv_path=str(folder / "backtest.csv"),
    )
    with using_settings(settings), local_flow_runs():
        result = backtest(request=request)
    print(f"\n{backtest_table(result).markdown()}\n")
    for note in result.skipped:
        print(note)
    print(f"backtest in {time.perf_counter() - started:.0f}s; table in {result.csv_path}")


def load_into_service(args: argparse.Namespace, url: str) -> pd.DataFrame:
    """The whole log (CDNOW or synthetic) in the service's own tables of a new database."""
    engine = make_engine(url)
    with engine.begin() as connection:
        upgrade(connection)
    if args.cdnow:
        events = cdnow_events()
        customers = None
    else:
        data = generate(args.customers, seed=args.seed)
        events, customers = data.events, data.customers
    with transaction(engine) as session:
        if customers is not None:
            store_customers(session, customers)
        store_events(session, events.assign(event_id=event_keys(events)))
    engine.dispose()
    return events


if __name__ == "__main__":
    main()
