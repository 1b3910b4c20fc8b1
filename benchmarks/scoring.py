"""Scoring speed and memory: the real score flow against model-only inference.

    python benchmarks/scoring.py                                  # 100k and 400k customers
    python benchmarks/scoring.py --sizes 20000,80000 --backends postgresql --no-reasons
    python benchmarks/scoring.py --sizes 1000000 --backends postgresql
    python benchmarks/scoring.py --sizes 1000000 --backends postgresql --evaluate  # + judging
    python benchmarks/scoring.py --sizes 40000 --backends mysql   # MariaDB/MySQL, opt-in
    python benchmarks/scoring.py --sizes 50000 --backends sqlite --hand-written
    python benchmarks/scoring.py --sizes 50000 --backends sqlite --hand-written --champion-kind gbm
    python benchmarks/scoring.py --sizes 400000 --backends postgresql --no-value  # value's cost

Synthetic customers are generated in blocks (so memory stays bounded), each block's events
in time order as an event log is appended, and loaded with
db.bulk.bulk_insert (COPY on PostgreSQL) into a SQLite file in a temporary folder and into a
fresh database on the PostgreSQL server (--postgres-url; trust auth, dropped at the end), and
with --backends mysql into one on the MariaDB/MySQL server (--mysql-url). The
sizes are nested: the larger population extends the smaller one. A small champion is trained
once on a subset, registered and promoted in each database as the retrain flow would do.

Each measurement runs in a fresh subprocess, so its peak RSS is its own:
  e2e         the score flow (Prefect, local ephemeral server, started beforehand):
              read events -> sequences -> inference -> staged write -> publish;
  model-only  TrainedModel.scores on the same features, already in memory, partition by
              partition (same reason-code setting);
  ratio       e2e / model-only throughput; peak RSS is the flow's, read before the
              model-only step builds its features;
  CPU         busy CPU-seconds of the whole machine (the database server included) for
              the flow, for reading every partition's events alone, for reading them and
              building features as the flow does, and for the model-only pass: where the
              cores went (Linux /proc/stat), and the ratio those leave room for.

With --hand-written the figures are instead those the issue compares the service against:
  command       the real `propensity score` command as a subprocess (Prefect's local
                server included, its PREFECT_HOME warmed once beforehand), wall time;
  hand-written  what a data scientist would write without the service, as a subprocess,
                wall time: pd.read_sql of the events up to as_of, padded sequences and
                static features built with pandas groupby, Keras model.predict(batch_size=
                1024) on the champion's network (predict_proba of its scikit-learn model
                for a static champion), the scores written back with DataFrame.to_sql.
                No reason codes: compare with --no-reasons for the same work.
Both score the same database, the command first (the hand-written pipeline then reads a
warm cache). Their scores are compared customer by customer: the reference must be right
to be a reference.
"""

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, make_url, select, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# TensorFlow's C++ start-up chatter would bury the figures; read before it is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from memory import peak_rss_mb  # noqa: E402

from db.bulk import bulk_insert  # noqa: E402
from db.engine import make_engine, transaction  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Customer, CustomerEvent  # noqa: E402
from db.registry import promote, require_champion  # noqa: E402
from llm_model.manifest import ModelManifest  # noqa: E402
from llm_model.sequences import N_RESERVED, NO_HISTORY, UNKNOWN  # noqa: E402
from service.registry import ModelPackage, register  # noqa: E402
from service.settings import Settings, using_settings  # noqa: E402
from service.synthetic import generate  # noqa: E402

BLOCK = 50_000  # customers generated and loaded at a time
CPU_STAGES = ("e2e", "read", "features", "model")
T = TypeVar("T")
ID_WIDTH = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="100000,400000",
        help="comma-separated customer counts, smallest first (default: 100000,400000)",
    )
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="any of sqlite,postgresql,mysql"
    )
    parser.add_argument(
        "--reasons",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score with reason codes (PROPENSITY_REASON_CODES)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="server to create the benchmark database on",
    )
    parser.add_argument(
        "--mysql-url",
        default="mysql+pymysql://root@127.0.0.1:3306/test",
        help="MariaDB/MySQL server to create the benchmark database on (--backends mysql)",
    )
    parser.add_argument(
        "--partition-size",
        type=int,
        help="customers per scoring partition (default: the service's PROPENSITY_PARTITION_SIZE)",
    )
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument(
        "--champion-kind",
        default="gru",
        help="the contender registered as champion: gru (default), gru_hybrid, logistic, gbm",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="also score at the latest event minus the horizon and time judging that matured "
        "run against what happened (what a later score flow adds at its end)",
    )
    parser.add_argument(
        "--hand-written",
        action="store_true",
        help="time the `propensity score` command against a hand-written pandas/Keras "
        "pipeline on the same database, instead of the flow against model-only inference",
    )
    parser.add_argument(
        "--value",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register the champion with its value model (expected_value); --no-value "
        "registers the propensity model alone, to time what value costs",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # database URL of a scoring run
    parser.add_argument("--hand-written-child", help=argparse.SUPPRESS)  # database URL
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------
# Data


def block_data(index: int, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers and events of block `index`, ids offset so blocks never collide."""
    data = generate(n, seed=seed + index)
    offset = index * BLOCK

    def renumber(ids: pd.Series) -> pd.Series:
        number = ids.str.slice(1).astype("int64") + offset
        return number.astype("str").str.zfill(ID_WIDTH).radd("C")

    customers = data.customers.assign(customer_id=renumber(data.customers["customer_id"]))
    events = data.events.assign(customer_id=renumber(data.events["customer_id"]))
    return customers, events


@functools.lru_cache(maxsize=1)
def cached_block(index: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return block_data(index, BLOCK, seed)


def block_slice(index: int, skip: int, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers skip..skip+n of block `index` (a block's prefix is the same for any size)."""
    customers, events = cached_block(index, seed)
    wanted = customers["customer_id"].iloc[skip : skip + n]
    return customers.iloc[skip : skip + n], events[events["customer_id"].isin(wanted)]


def load_block(engine, customers: pd.DataFrame, events: pd.DataFrame, first_event: int) -> None:
    # In time order, as an event log is appended: a customer's events lie scattered over
    # the block's pages, not side by side.
    events = events.sort_values("occurred_at", kind="stable")
    event_ids = pd.Series(np.arange(first_event, first_event + len(events)), index=events.index)
    events = events.assign(event_id=event_ids.astype("str").str.zfill(12).radd("E"))
    with engine.begin() as connection:
        bulk_insert(connection, Customer.__table__, customers)
        bulk_insert(
            connection,
            CustomerEvent.__table__,
            events[["event_id", "customer_id", "event_type", "occurred_at", "amount"]],
        )


@dataclass
class Database:
    backend: str
    url: str
    loaded_customers: int = 0
    loaded_events: int = 0


def create_databases(args: argparse.Namespace, folder: Path) -> list[Database]:
    databases = []
    for backend in args.backends.split(","):
        backend = backend.strip()
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'scoring.db'}"
        elif backend in SERVER_URL_ARGS:
            name = f"propensity_bench_{uuid.uuid4().hex[:8]}"
            with admin_engine(args, backend).connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            url = server_url(args, backend).set(database=name).render_as_string(False)
        else:
            raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql, mysql)")
        engine = make_engine(url)
        with engine.begin() as connection:
            upgrade(connection)
        engine.dispose()
        databases.append(Database(backend, url))
    return databases


SERVER_URL_ARGS = {"postgresql": "postgres_url", "mysql": "mysql_url"}


def server_url(args: argparse.Namespace, backend: str):
    return make_url(getattr(args, SERVER_URL_ARGS[backend]))


def admin_engine(args: argparse.Namespace, backend: str):
    return create_engine(server_url(args, backend), isolation_level="AUTOCOMMIT")


def drop_databases(args: argparse.Namespace, databases: list[Database]) -> None:
    for database in databases:
        if database.backend in SERVER_URL_ARGS:
            name = make_url(database.url).database
            force = " WITH (FORCE)" if database.backend == "postgresql" else ""
            with admin_engine(args, database.backend).connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))


def grow(databases: list[Database], size: int, seed: int) -> None:
    """Load blocks until every database holds `size` customers."""
    engines = {database.url: make_engine(database.url) for database in databases}
    for engine in engines.values():
        with engine.begin() as connection:
            for index in indexes_rebuilt(engine):
                index.drop(connection)
    position = databases[0].loaded_customers
    while position < size:
        index, skip = divmod(position, BLOCK)
        n = min(BLOCK - skip, size - position)
        customers, events = block_slice(index, skip, n, seed)
        position += n
        for database in databases:
            started = time.perf_counter()
            load_block(engines[database.url], customers, events, database.loaded_events)
            database.loaded_customers += n
            database.loaded_events += len(events)
            print(
                f"  {database.backend}: loaded {database.loaded_customers:,} customers, "
                f"{database.loaded_events:,} events (+{time.perf_counter() - started:.1f}s)",
                flush=True,
            )
    for engine in engines.values():
        started = time.perf_counter()
        with engine.begin() as connection:
            for index in indexes_rebuilt(engine):
                index.create(connection)
        print(f"  {engine.dialect.name}: indexed in {time.perf_counter() - started:.1f}s")
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))
                # The load's dirty pages are written now, not by the checkpointer while a
                # measurement runs.
                c.execute(text("CHECKPOINT"))
        else:
            with engine.begin() as c:
                c.execute(text(ANALYZE.get(engine.dialect.name, "ANALYZE")))
        engine.dispose()
    os.sync()


ANALYZE = {"mysql": "ANALYZE TABLE customers, customer_events"}


def indexes_rebuilt(engine) -> set:
    """Secondary indexes built once after the load, not maintained row by row; MariaDB/MySQL
    keeps them, as its foreign key to customers needs the customer index."""
    return set() if engine.dialect.name == "mysql" else CustomerEvent.__table__.indexes


# ----------------------------------------------------------------------------------------
# Champion


def train_champion(args: argparse.Namespace) -> ModelPackage:
    """Train once on a subset, with the service's default settings, as the retrain does."""
    from llm_model.training import train_and_evaluate

    settings = Settings(_env_file=None).overridden(epochs=args.epochs, seed=args.seed)
    _, events = block_data(0, min(args.train_customers, BLOCK), args.seed)
    as_of = pd.Timestamp(events["occurred_at"].max())
    result = train_and_evaluate(events, as_of, settings.training_plan(), verbose=0)
    # The kind asked for, whichever won: the benchmark measures that kind's scoring.
    metric = settings.selection_metric
    package = ModelPackage.of(result, args.champion_kind, metric, as_of.to_pydatetime(), None)
    if args.value:
        return package
    alone = result.contenders.models[args.champion_kind]
    return replace(package, artifact=alone.to_bytes(), manifest=alone.manifest)


def register_champion(database: Database, champion: ModelPackage) -> None:
    engine = make_engine(database.url)
    with transaction(engine) as session:
        promote(session, register(session, champion), "benchmark champion")
    engine.dispose()


# ----------------------------------------------------------------------------------------
# One measurement (child process)


def machine_cpu_seconds() -> np.ndarray:
    """CPU time the whole machine spent busy (every process: the database server too),
    waiting for I/O, and spent by the database server's processes; NaN where /proc/stat
    is missing."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return np.full(3, np.nan)
    idle, iowait = values[3], values[4]
    ticks = [sum(values) - idle - iowait, iowait, database_server_ticks()]
    return np.array(ticks) / os.sysconf("SC_CLK_TCK")


DATABASE_SERVERS = {"postgres", "mariadbd", "mysqld"}


def database_server_ticks() -> int:
    """CPU ticks of this machine's database server processes, with those of the children
    they reaped: PostgreSQL serves each connection from a process that ends with it."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if name in DATABASE_SERVERS:
            ticks += sum(int(v) for v in rest.split()[11:15])  # utime stime cutime cstime
    return ticks


def timed(work: Callable[[], T]) -> tuple[T, float, np.ndarray]:
    """What work returns, its wall seconds, and the machine's busy, I/O-wait and database
    server CPU-seconds meanwhile."""
    started, cpu = time.perf_counter(), machine_cpu_seconds()
    result = work()
    return result, time.perf_counter() - started, machine_cpu_seconds() - cpu


def matured_run_evaluation(job, latest: datetime, horizon_days: int) -> dict:
    """Score a backfill run whose horizon the data covers, then time judging it again as a
    later score flow's monitoring task judges it (its own flow judged it once already)."""
    from cli.process import local_flow_runs
    from flows.score import score
    from service.outcomes import evaluate_runs

    with local_flow_runs():
        backfill = score(as_of=latest - timedelta(days=horizon_days))
    evaluations, seconds, _ = timed(
        lambda: evaluate_runs(job.databases, job.source, backfill.score_run_id)
    )
    outcome = evaluations[0].outcome
    return {
        "evaluate_s": seconds,
        "evaluated": outcome.n_customers,
        "converted": outcome.n_converted,
        "realized_auc": outcome.roc_auc,
    }


def measure(url: str, evaluate: bool) -> dict:
    """Run in a fresh process with PROPENSITY_DATABASE_URL=url."""
    from prefect import flow

    from cli.process import local_flow_runs
    from db.customers import partition_ranges
    from db.models import ScoreRun
    from flows.score import score
    from service.events import source_columns
    from service.partitions import (
        ScoreJob,
        ScoreRunPlan,
        cached_model,
        partition_events,
        partition_features,
    )

    @flow(name="warm-up")
    def warm_up() -> None:
        pass

    settings = Settings()
    job = ScoreJob.from_settings(settings)
    with using_settings(settings), local_flow_runs():  # as `propensity score` runs it
        warm_up()  # starts Prefect's ephemeral server outside the timed part
        rss_before = peak_rss_mb()
        summary, e2e_seconds, e2e_cpu = timed(score)
    rss_flow = peak_rss_mb()

    with job.databases.service().connect() as connection:
        run = connection.execute(
            select(ScoreRun.model_version_id, ScoreRun.as_of, ScoreRun.n_scored).where(
                ScoreRun.id == summary.score_run_id
            )
        ).one()
    model, _ = cached_model(job.databases, run.model_version_id)
    # The flow's own partitions, rebuilt in memory: the same features the flow scored.
    columns = source_columns(job.databases, job.source)
    with job.rule_engine().connect() as connection:
        active = job.rule.query(columns, run.as_of)
        ranges = partition_ranges(connection, active, settings.partition_size)
    plan = ScoreRunPlan(summary.score_run_id, run.as_of, run.model_version_id, columns, ranges)
    # The read alone, as the flow reads: the least any pipeline must spend besides the model.
    _, _, read_cpu = timed(lambda: [len(partition_events(job, plan, r)) for r in ranges])
    features, _, features_cpu = timed(
        lambda: [partition_features(job, plan, model, r) for r in ranges]
    )

    def model_only(with_reasons: bool) -> tuple[float, float]:
        model.scores(features[0].take(np.arange(min(len(features[0]), 4096))), with_reasons)

        def score_every_partition() -> None:
            for part in features:
                model.scores(part, with_reasons=with_reasons)

        _, seconds, cpu = timed(score_every_partition)
        return seconds, cpu[0]

    reasons = settings.reason_codes
    n = sum(len(part) for part in features)
    model_seconds, model_cpu = model_only(reasons)
    horizon_days = model.manifest.sequence.horizon_days
    evaluation = matured_run_evaluation(job, run.as_of, horizon_days) if evaluate else {}
    return {
        **evaluation,
        "customers": int(run.n_scored),
        "featured": n,
        "e2e_s": e2e_seconds,
        "model_s": model_seconds,
        "model_other_s": model_only(not reasons)[0],
        "e2e_cpu_s": e2e_cpu[0],
        "e2e_iowait_s": e2e_cpu[1],
        "e2e_server_cpu_s": e2e_cpu[2],
        "read_cpu_s": read_cpu[0],
        "read_server_cpu_s": read_cpu[2],
        "features_cpu_s": features_cpu[0],
        "model_cpu_s": model_cpu,
        "rss_start_mb": rss_before,
        "rss_mb": rss_flow,
    }


def child_env(database: Database, args: argparse.Namespace, prefect_home: Path) -> dict:
    """The environment of a scoring subprocess: the service's settings for this database."""
    env = {
        **os.environ,
        "PROPENSITY_DATABASE_URL": database.url,
        "PROPENSITY_REASON_CODES": "true" if args.reasons else "false",
        **({"PROPENSITY_PARTITION_SIZE": str(args.partition_size)} if args.partition_size else {}),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    env.pop("PROPENSITY_SOURCE_DATABASE_URL", None)
    return env


def run_scoring(
    name: str,
    command: list[str],
    database: Database,
    args: argparse.Namespace,
    prefect_home: Path,
) -> tuple[str, float]:
    """The subprocess's standard output and its wall seconds; a failure ends the benchmark."""
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        env=child_env(database, args, prefect_home),
        cwd=prefect_home,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-8000:])
        raise SystemExit(f"{name} on {database.backend} failed (exit {completed.returncode})")
    return completed.stdout, seconds


def child_result(stdout: str) -> dict:
    """The RESULT line a child prints last."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1].removeprefix("RESULT "))


def run_child(database: Database, args: argparse.Namespace, prefect_home: Path) -> dict:
    command = [sys.executable, __file__, "--child", database.url, *(["--evaluate"] * args.evaluate)]
    return child_result(run_scoring("scoring", command, database, args, prefect_home)[0])


# ----------------------------------------------------------------------------------------
# The hand-written reference (--hand-written): what a data scientist would write without the
# service, timed beside the `propensity score` command on the same database. Plain pandas on
# purpose, none of the service's vectorised code; correct, as the score comparison checks.

HAND_WRITTEN_TABLE = "hand_written_scores"
DAY = pd.Timedelta(days=1)


def hand_written_static(
    history: pd.DataFrame, customers: pd.Index, manifest: ModelManifest
) -> np.ndarray:
    """log1p of the manifest's static features per customer, by groupby over the whole
    history (`age_days` before as_of per event)."""
    config = manifest.sequence
    by_customer = history.groupby("customer_id")
    target = history[history["event_type"] == config.target_event].groupby("customer_id")
    frame = pd.DataFrame(
        {
            "recency": by_customer["age_days"].min(),
            "frequency": by_customer.size(),
            "monetary": target["amount"].sum().clip(lower=0),
            "target_recency": target["age_days"].min(),
            "tenure": by_customer["age_days"].max(),
        }
    ).reindex(customers)
    frame = frame.fillna(
        {
            "recency": config.no_history_days,
            "frequency": 0,
            "monetary": 0,
            "target_recency": config.no_history_days,
            "tenure": 0,
        }
    )
    for days in config.windows_days:
        recent = history[history["age_days"] < days]
        counts = recent.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
        counts = counts.reindex(index=customers, columns=list(manifest.vocabulary.event_types))
        for event_type, column in counts.fillna(0).items():
            frame[f"count_{event_type}_{days}d"] = column
    # The manifest's names pick the columns, in its order: a missing one fails here.
    return np.log1p(frame[list(manifest.static_names)].to_numpy(np.float64)).astype(np.float32)


def hand_written_sequences(
    history: pd.DataFrame, customers: pd.Index, manifest: ModelManifest
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and per-event numbers of each customer's last max_len events in the lookback,
    oldest first, padded on the right; NO_HISTORY alone for a customer without any."""
    config = manifest.sequence
    lookback = history
    if config.lookback_days is not None:
        lookback = history[history["age_days"] < config.lookback_days]
    # Days since the previous event in the lookback, 0 for the first; taken before the cut
    # to max_len, so a dropped predecessor still counts.
    gap = lookback.groupby("customer_id")["occurred_at"].diff() / DAY
    last = lookback.assign(gap_days=gap.fillna(0)).groupby("customer_id").tail(config.max_len)
    row = customers.get_indexer(last["customer_id"])
    position = last.groupby("customer_id").cumcount().to_numpy()
    token_of = {t: i + N_RESERVED for i, t in enumerate(manifest.vocabulary.event_types)}
    tokens = np.zeros((len(customers), config.max_len), dtype=np.int32)
    tokens[row, position] = last["event_type"].map(token_of).fillna(UNKNOWN).to_numpy()
    tokens[~customers.isin(last["customer_id"]), 0] = NO_HISTORY
    amount = last["amount"].fillna(0).to_numpy()
    numeric = np.zeros((len(customers), config.max_len, 3), dtype=np.float32)
    numeric[row, position] = np.column_stack(
        [
            np.log1p(last["gap_days"].to_numpy()),
            np.log1p(last["age_days"].to_numpy()),
            np.sign(amount) * np.log1p(np.abs(amount)),
        ]
    )
    return tokens, numeric


def hand_written_scoring(url: str) -> dict:
    """Read, build, predict, write, each stage timed; run in a fresh process."""
    from llm_model.kinds import RECURRENT_KINDS, STATIC_KINDS, load_servable
    from llm_model.value import ValuedModel

    engine = create_engine(url)
    with transaction(engine) as session:
        package = ModelPackage.of_version(require_champion(session))
    model, manifest = load_servable(package.artifact, package.manifest), package.manifest
    if isinstance(model, ValuedModel):  # the reference computes the propensity alone
        model = model.propensity_model
    if manifest.kind not in (*RECURRENT_KINDS, *STATIC_KINDS):
        raise SystemExit(f"the hand-written reference scores no {manifest.kind} champion")
    started, stages = time.perf_counter(), {}

    def lap(stage: str) -> None:
        nonlocal started
        now = time.perf_counter()
        stages[f"{stage}_s"], started = now - started, now

    with engine.connect() as connection:
        # The latest event's time as the database holds it, compared with its own values.
        as_of_value = connection.execute(
            text("SELECT MAX(occurred_at) FROM customer_events")
        ).scalar()
        events = pd.read_sql(
            text(
                "SELECT customer_id, event_type, occurred_at, amount FROM customer_events "
                "WHERE occurred_at <= :as_of"
            ),
            connection,
            params={"as_of": as_of_value},
            parse_dates=["occurred_at"],
        )
        customers = pd.read_sql(
            text(
                "SELECT customer_id FROM customers WHERE is_active AND created_at <= :as_of "
                "ORDER BY customer_id"
            ),
            connection,
            params={"as_of": as_of_value},
        )
    lap("read")
    as_of = pd.Timestamp(as_of_value)
    ids = pd.Index(customers["customer_id"])
    events["amount"] = events["amount"].astype(float)  # NUMERIC arrives as Decimal objects
    history = events[events["customer_id"].isin(ids)].sort_values(
        ["customer_id", "occurred_at", "event_type", "amount"]
    )
    history = history.assign(age_days=(as_of - history["occurred_at"]) / DAY)
    static = hand_written_static(history, ids, manifest)
    network = manifest.kind in RECURRENT_KINDS
    tokens, numeric = hand_written_sequences(history, ids, manifest) if network else (None, None)
    lap("features")
    if network:
        inputs = {"tokens": tokens, "numeric": numeric, "static": static}
        raw = model.network.predict(inputs, batch_size=1024, verbose=0)[:, 0]
    else:
        raw = model.classifier.predict_proba(static)[:, 1]
    propensity = manifest.calibrator.transform(raw.astype(np.float64))
    lap("predict")
    rank = pd.Series(propensity).rank(ascending=False, method="first").astype(int)
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "propensity": propensity,
            "decile": np.ceil(10 * rank / len(rank)).astype(int),
            "rank": rank,
        }
    )
    scores.to_sql(HAND_WRITTEN_TABLE, engine, if_exists="replace", index=False)
    lap("write")
    engine.dispose()
    return {"customers": len(scores), **stages}


def warm_prefect_home(database: Database, args: argparse.Namespace, prefect_home: Path) -> None:
    """One flow run, untimed: a fresh PREFECT_HOME's first local server also creates its
    database, which a deployed command does once, not on every run."""
    flow = "from prefect import flow; flow(name='warm-up')(lambda: None)()"
    run_scoring("Prefect warm-up", [sys.executable, "-c", flow], database, args, prefect_home)


def score_command(database: Database, args: argparse.Namespace, prefect_home: Path) -> dict:
    """`propensity score` as a user runs it: its wall seconds and customers scored."""
    from db.models import ScoreRun

    command = [str(Path(sys.executable).with_name("propensity")), "score"]
    _, seconds = run_scoring("propensity score", command, database, args, prefect_home)
    engine = make_engine(database.url)
    with engine.connect() as connection:
        n_scored = connection.execute(
            select(ScoreRun.n_scored).order_by(ScoreRun.id.desc()).limit(1)
        ).scalar_one()
    engine.dispose()
    return {"command_s": seconds, "command_customers": int(n_scored)}


def same_scores(database: Database) -> dict:
    """The hand-written propensities against those the command published, per customer."""
    engine = make_engine(database.url)
    with engine.connect() as connection:
        published = pd.read_sql(
            text("SELECT customer_id, propensity FROM current_propensity_scores"), connection
        )
        hand_written = pd.read_sql(
            text(f"SELECT customer_id, propensity FROM {HAND_WRITTEN_TABLE}"), connection
        )
    engine.dispose()
    both = published.merge(hand_written, on="customer_id", suffixes=("_command", "_hand"))
    difference = (both["propensity_command"].astype(float) - both["propensity_hand"]).abs()
    return {"matched": len(both), "max_abs_difference": float(difference.max())}


def compare_with_hand_written(
    database: Database, args: argparse.Namespace, prefect_home: Path
) -> dict:
    command = score_command(database, args, prefect_home)
    hand = [sys.executable, __file__, "--hand-written-child", database.url]
    stdout, seconds = run_scoring("hand-written", hand, database, args, prefect_home)
    stages = child_result(stdout)
    return {**command, "hand_s": seconds, **stages, **same_scores(database)}


# ----------------------------------------------------------------------------------------
# Report


def print_heading(title: str, header: str) -> None:
    print(f"\n{title}")
    print(header)
    print("-" * len(header))


def report(rows: list[dict], reasons: bool) -> None:
    other = "without" if reasons else "with"
    header = (
        f"{'backend':<11}{'customers':>11}{'e2e cust/s':>12}{'model cust/s':>14}{'ratio':>8}"
        f"{'peak RSS MB':>13}{'RSS growth':>12}{f'model {other} reasons':>26}{'load':>6}"
    )
    print_heading(f"reason codes: {'on' if reasons else 'off'}", header)
    smallest: dict[str, float] = {}
    for row in rows:
        e2e = row["customers"] / row["e2e_s"]
        model = row["featured"] / row["model_s"]
        other_rate = row["featured"] / row["model_other_s"]
        base = smallest.setdefault(row["backend"], row["rss_mb"])
        growth = "" if base == row["rss_mb"] else f"{100 * (row['rss_mb'] / base - 1):+.1f}%"
        print(
            f"{row['backend']:<11}{row['customers']:>11,}{e2e:>12,.0f}{model:>14,.0f}"
            f"{e2e / model:>8.2f}{row['rss_mb']:>13,.0f}{growth:>12}{other_rate:>26,.0f}"
            f"{row['load']:>6.1f}"
        )
    print(
        "\ne2e: the score flow (read, sequences, inference, staged write, publish); model: "
        "TrainedModel.scores on the same features in memory; RSS growth: from the smallest size; "
        "load: 1-minute load average when the run started."
    )
    report_cpu(rows)
    report_evaluation(rows)


def report_evaluation(rows: list[dict]) -> None:
    judged = [row for row in rows if "evaluate_s" in row]
    if not judged:
        return
    header = f"{'backend':<11}{'customers':>11}{'converted':>11}{'realized AUC':>14}{'seconds':>9}"
    print_heading("judging a matured run (--evaluate)", header)
    for row in judged:
        print(
            f"{row['backend']:<11}{row['evaluated']:>11,}{row['converted']:>11,}"
            f"{row['realized_auc']:>14.4f}{row['evaluate_s']:>9.1f}"
        )


def report_hand_written(rows: list[dict], reasons: bool, kind: str) -> None:
    header = (
        f"{'backend':<11}{'customers':>11}{'command s':>11}{'command cust/s':>16}"
        f"{'hand-written s':>16}{'hand cust/s':>13}{'ratio':>7}{'read s':>8}{'features s':>12}"
        f"{'predict s':>11}{'write s':>9}{'matched':>9}{'max |dp|':>10}{'load':>6}"
    )
    title = f"{kind} champion: `propensity score` (reason codes {'on' if reasons else 'off'})"
    print_heading(f"{title} against a hand-written pipeline (no reason codes)", header)
    for row in rows:
        command = row["command_customers"] / row["command_s"]
        hand = row["customers"] / row["hand_s"]
        print(
            f"{row['backend']:<11}{row['command_customers']:>11,}{row['command_s']:>11.1f}"
            f"{command:>16,.0f}{row['hand_s']:>16.1f}{hand:>13,.0f}{command / hand:>7.2f}"
            f"{row['read_s']:>8.1f}{row['features_s']:>12.1f}{row['predict_s']:>11.1f}"
            f"{row['write_s']:>9.1f}{row['matched']:>9,}{row['max_abs_difference']:>10.1e}"
            f"{row['load']:>6.1f}"
        )
    print(
        "\ncommand: `propensity score` as a subprocess, wall time (Python start-up, Prefect's "
        "local server, reading, features, inference, staged write, publication); "
        "hand-written: pd.read_sql, pandas groupby features, Keras predict(batch_size=1024) "
        "or predict_proba, DataFrame.to_sql, as a subprocess, wall time; its stages timed "
        "inside it (start-up and model loading are in its wall time only); ratio: command "
        "cust/s over hand-written cust/s; matched, max |dp|: customers scored by both and "
        "the largest difference of their propensities; load: 1-minute load average when the "
        "command started."
    )


def ratio_bound(model_seconds: float, cores: int, cpu_seconds: float) -> float:
    """The ratio of a flow that spent cpu_seconds and kept every core busy."""
    return model_seconds / (cpu_seconds / cores)


def report_cpu(rows: list[dict]) -> None:
    """Where the machine's CPU time went: on a few cores shared with the database server,
    the ratio cannot exceed model-only time over e2e CPU time spread on every core."""
    cores = os.cpu_count() or 1
    header = (
        f"{'backend':<11}{'customers':>11}{'e2e':>8}{'of it server':>14}{'read':>8}"
        f"{'of it server':>14}{'read+features':>15}{'model':>8}{'rest':>8}{'ratio bound':>13}"
        f"{'server elsewhere':>18}{'read+model only':>17}{'e2e I/O wait s':>16}"
    )
    print_heading(f"busy CPU-seconds per 1,000 customers, every process ({cores} cores)", header)
    for row in rows:
        per_1k = {key: 1000 * row[f"{key}_cpu_s"] / row["featured"] for key in CPU_STAGES}
        server, read_server = (
            1000 * row[f"{key}_server_cpu_s"] / row["featured"] for key in ("e2e", "read")
        )
        rest = per_1k["e2e"] - per_1k["features"] - per_1k["model"]
        bound = functools.partial(ratio_bound, row["model_s"], cores)
        print(
            f"{row['backend']:<11}{row['customers']:>11,}{per_1k['e2e']:>8.3f}{server:>14.3f}"
            f"{per_1k['read']:>8.3f}{read_server:>14.3f}{per_1k['features']:>15.3f}"
            f"{per_1k['model']:>8.3f}{rest:>8.3f}{bound(row['e2e_cpu_s']):>13.2f}"
            f"{bound(row['e2e_cpu_s'] - row['e2e_server_cpu_s']):>18.2f}"
            f"{bound(row['read_cpu_s'] + row['model_cpu_s']):>17.2f}"
            f"{row['e2e_iowait_s']:>16.1f}"
        )
    print(
        "\nof it server: the database server's processes (none for SQLite, which runs inside "
        "the flow); read: every partition's events read as the flow reads them, and nothing "
        "else; read+features: partition_features for every partition, as the flow runs it; "
        "model: the model-only pass; rest: e2e minus read+features and model (staged writes, "
        "publication, Prefect); ratio bound: model-only seconds / (e2e CPU-seconds / cores), "
        "the ratio if the flow kept every core busy; server elsewhere: the same bound without "
        "the server's CPU, as if the database ran on a host of its own; read+model only: the "
        "same bound for a pipeline that only read the events and ran the model (no features, "
        "writes, publication or Prefect), the most scoring that reads its events this way "
        "could reach on these cores; e2e I/O wait: CPU-seconds the machine's cores sat "
        "waiting for the disk during the flow (data not in the page cache)."
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args.evaluate)), flush=True)
        return
    if args.hand_written_child:
        print("RESULT " + json.dumps(hand_written_scoring(args.hand_written_child)), flush=True)
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    folder = Path(tempfile.mkdtemp(prefix="propensity-bench-"))
    databases: list[Database] = []
    rows = []
    try:
        databases = create_databases(args, folder)
        started = time.perf_counter()
        champion = train_champion(args)
        print(f"champion trained in {time.perf_counter() - started:.1f}s", flush=True)
        for database in databases:
            register_champion(database, champion)
        if args.hand_written:
            warm_prefect_home(databases[0], args, folder)
        for size in sizes:
            print(f"loading {size:,} customers", flush=True)
            grow(databases, size, args.seed)
            for database in databases:
                load = os.getloadavg()[0]
                measure_one = compare_with_hand_written if args.hand_written else run_child
                result = measure_one(database, args, folder)
                rows.append({"backend": database.backend, "load": load, **result})
                print(
                    f"  {database.backend} {result['customers']:,}: {progress(result)}", flush=True
                )
    finally:
        drop_databases(args, databases)
        shutil.rmtree(folder, ignore_errors=True)
    rows.sort(key=lambda r: (r["backend"], r["customers"]))
    if args.hand_written:
        report_hand_written(rows, args.reasons, args.champion_kind)
    else:
        report(rows, args.reasons)


def progress(result: dict) -> str:
    if "hand_s" in result:
        return f"command {result['command_s']:.1f}s, hand-written {result['hand_s']:.1f}s"
    return (
        f"e2e {result['e2e_s']:.1f}s, model-only {result['model_s']:.1f}s, "
        f"peak RSS {result['rss_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
