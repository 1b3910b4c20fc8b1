"""The `propensity` command line: thin commands over db/, llm_model/ and the flows.

The commands that run flows import them in their bodies: the flow modules load TensorFlow,
seconds that init-db, import-events and report do not need to spend.
"""

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import prefect
import typer
from prefect.settings import PREFECT_API_URL
from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from db.engine import safe_url, transaction
from db.errors import DataLayerError
from db.event_import import FileColumns, import_events
from db.migrate import upgrade
from db.registry import latest_version
from db.source import event_counts_by_type, resolve_columns
from flows.databases import reachable_engine, service_engine
from flows.demo_data import load_synthetic_events
from flows.deployments import runner_deployments
from flows.registry import metrics_of
from flows.report import (
    RetrainOutcome,
    ScoreSummary,
    TextTable,
    metrics_markdown,
    metrics_table,
)
from flows.runtime import local_flow_runs
from flows.server import local_prefect_server
from flows.settings import Settings

app = typer.Typer(
    help="Purchase propensity: retrain, score and publish to SQL.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)


@app.callback()
def quiet_start() -> None:
    """Purchase propensity: retrain, score and publish to SQL."""
    # Set before TensorFlow and Prefect's server start: TensorFlow's C++ start-up chatter
    # would bury the output, and the service runs offline as often as not, where Prefect's
    # server would log a failed telemetry call on every start. Explicit settings still win.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


F = TypeVar("F", bound=Callable)
AsOf = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"],
        help="Data cutoff (UTC); default: the latest event.",
    ),
]


def one_line_errors(command: F) -> F:
    """Show expected failures as one line on stderr with a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
            )
            message = f"invalid settings: {problems}"
        except (DataLayerError, ValueError) as error:
            message = str(error)
        except SQLAlchemyError as error:
            origin = getattr(error, "orig", None) or error
            message = f"database error: {str(origin).strip().splitlines()[0]}"
        errors.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)

    return wrapper


def migrated_engine(settings: Settings) -> Engine:
    """The service's database, migrated to this version's schema (init-db and the demo)."""
    engine = reachable_engine(settings.database_url)
    with engine.begin() as connection:
        upgrade(connection)
    return engine


def option(text: str):
    return typer.Option(help=text)


def check_databases(settings: Settings) -> None:
    """Both databases answer and the service's schema is current, checked before a flow
    starts, so a problem with them is one line, not a failed flow run's traceback."""
    databases = settings.databases()
    databases.service()
    databases.events()


def rows_progress(description: str) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command("init-db")
@one_line_errors
def init_db() -> None:
    """Create or upgrade the schema (Alembic migrations)."""
    settings = Settings()
    migrated_engine(settings)
    console.print(f"database ready: {safe_url(settings.database_url)}")


@app.command("import-events")
@one_line_errors
def import_events_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of events.")],
    customer_id_column: str = "customer_id",
    occurred_at_column: str = "occurred_at",
    event_type_column: str = "event_type",
    amount_column: Annotated[str | None, option("Amount column; '' for none.")] = "amount",
    event_id_column: Annotated[str | None, option("Own event id; default: a hash.")] = None,
    timezone: Annotated[str, option("Timezone of timestamps without an offset.")] = "UTC",
    event_types: Annotated[str | None, option("Allowed event types, comma-separated.")] = None,
    skip_invalid: Annotated[bool, option("Import valid rows; rejected ones to a file.")] = False,
    rejected_file: Annotated[Path | None, option("Default: PATH.rejected.csv.")] = None,
) -> None:
    """Import events; all or nothing unless --skip-invalid. Re-imports add nothing."""
    settings = Settings()
    columns = FileColumns(
        customer_id=customer_id_column,
        occurred_at=occurred_at_column,
        event_type=event_type_column,
        amount=amount_column or None,
        event_id=event_id_column or None,
    )
    rejected_path = rejected_file or path.with_name(path.name + ".rejected.csv")
    allowed = frozenset(t.strip() for t in event_types.split(",")) if event_types else None
    engine = service_engine(settings.database_url)
    with rows_progress(f"importing {path.name}") as progress, transaction(engine) as session:
        task = progress.add_task("import", total=None)
        report = import_events(
            session,
            path,
            columns,
            now=datetime.now(UTC).replace(tzinfo=None),
            future_tolerance=timedelta(minutes=settings.future_tolerance_minutes),
            timezone=timezone,
            skip_invalid=skip_invalid,
            rejected_path=rejected_path if skip_invalid else None,
            allowed_event_types=allowed,
            chunk_rows=settings.import_chunk_rows,
            on_chunk=lambda rows: progress.advance(task, rows),
        )
    console.print(
        f"{report.rows_read:,} rows read: {report.imported:,} events imported, "
        f"{report.duplicates:,} already present or repeated, {report.rejected:,} rejected; "
        f"{report.customers_created:,} new customers"
    )
    if report.rejected:
        console.print(report.describe_rejects(), highlight=False)
        console.print(f"rejected rows written to {rejected_path}")


@app.command("generate-demo-data")
@one_line_errors
def generate_demo_data(
    customers: Annotated[int, typer.Option(min=1)] = 2000,
    seed: int = 0,
) -> None:
    """Write a synthetic event log (order-dependent purchase behaviour) into the database."""
    counts = load_synthetic_events(migrated_engine(Settings()), customers, seed)
    show_event_counts(counts)


def show_event_counts(counts: dict[str, int]) -> None:
    table = Table(title="events by type")
    table.add_column("event_type")
    table.add_column("events", justify="right")
    for event_type, n in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(event_type, f"{n:,}")
    console.print(table)


def show_table(table: TextTable) -> None:
    view = Table(title=table.title)
    for column in table.header:
        view.add_column(column)
    for row in table.rows:
        view.add_row(*row)
    console.print(view)


def show_retrain(outcome: RetrainOutcome) -> None:
    show_table(metrics_table(outcome.table))
    console.print(outcome.decision(), highlight=False)


@app.command()
@one_line_errors
def retrain(
    as_of: AsOf = None,
    horizon_days: Annotated[int | None, typer.Option(min=1)] = None,
    cell: Annotated[str | None, typer.Option(help="gru or lstm")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    snapshots: Annotated[int | None, option("Labelled cutoffs, holdout included.")] = None,
    stride_days: Annotated[int | None, option("Days between cutoffs.")] = None,
    force_promote: Annotated[
        bool, typer.Option(help="Make the new model champion whatever its metrics.")
    ] = False,
) -> None:
    """Train every contender, judge them and the champion on one holdout, promote the best."""
    if cell not in (None, "gru", "lstm"):
        raise ValueError(f"--cell must be gru or lstm, not {cell!r}")
    check_databases(Settings())
    from flows.retrain import retrain as retrain_flow

    with local_flow_runs():
        # The flow's parameters, in its order.
        outcome = retrain_flow(
            as_of, horizon_days, cell, epochs, snapshots, stride_days, force_promote
        )
    show_retrain(outcome)


def show_score_summary(summary: ScoreSummary) -> None:
    console.print(summary.headline())
    show_table(summary.decile_table())
    show_table(summary.top_table())


@app.command()
@one_line_errors
def score(
    as_of: AsOf = None,
    partition_size: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Score every active customer with the champion and publish the run atomically."""
    settings = Settings()
    check_databases(settings)
    from flows.score import configured_score_flow

    with local_flow_runs():
        summary = configured_score_flow(settings)(as_of=as_of, partition_size=partition_size)
    show_score_summary(summary)


@app.command()
@one_line_errors
def report() -> None:
    """Print the latest model card and where its charts are."""
    with transaction(service_engine(Settings().database_url)) as session:
        version = latest_version(session)
        if version is None:
            raise ValueError("no model trained yet: run `propensity retrain` first")
        console.print(Markdown(metrics_markdown(version)))
        for path in metrics_of(version).charts:
            console.print(f"chart: {path}", highlight=False)


@app.command()
@one_line_errors
def serve(
    start_server: Annotated[
        bool,
        typer.Option(help="Start a local `prefect server` when PREFECT_API_URL is not set."),
    ] = True,
) -> None:
    """Serve the scheduled deployments of deployments/prefect.yaml (no work pool needed)."""
    deployments = runner_deployments(Settings())
    if PREFECT_API_URL.value():
        prefect.serve(*deployments)
        return
    if not start_server:
        raise ValueError(
            "schedules need a Prefect server: run `prefect server start` in another terminal "
            "and `export PREFECT_API_URL=http://127.0.0.1:4200/api`, or drop --no-start-server"
        )
    with local_prefect_server() as api_url:
        console.print(f"Prefect server at {api_url.removesuffix('/api')} (UI and run history)")
        prefect.serve(*deployments)


CURRENT_SCORES_SQL = """SELECT customer_id, propensity, decile, rank, reason_1
FROM current_propensity_scores
WHERE decile = 1
ORDER BY rank
LIMIT 20;"""


@app.command()
@one_line_errors
def demo(customers: Annotated[int, typer.Option(min=200)] = 5000, seed: int = 0) -> None:
    """End to end on the embedded default: synthetic events -> retrain -> score -> top customers."""
    from flows.pipeline import retrain_and_score

    settings = Settings()
    engine = migrated_engine(settings)
    with engine.connect() as connection:
        counts = event_counts_by_type(
            connection, resolve_columns(connection, settings.event_source)
        )
    if counts:
        console.print("reusing the events already in the database")
    else:
        console.print(f"generating {customers:,} synthetic customers (seed {seed})")
        counts = load_synthetic_events(engine, customers, seed)
    show_event_counts(counts)
    with local_flow_runs():
        outcome = retrain_and_score()
    show_retrain(outcome.retrain)
    show_score_summary(outcome.score)
    console.print(f"\nscores are in {safe_url(settings.database_url)}; query them with:")
    console.print(CURRENT_SCORES_SQL, highlight=False)
    console.print("model card: `propensity report`")
