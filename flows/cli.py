"""The `propensity` command line: thin commands over db/, llm_model/ and the flows.

The commands that run flows import the flow modules in their bodies (`flow_module`): those
load TensorFlow, seconds that init-db, import-events, evaluate and report do not spend, and
its start-up lines are filtered out as it loads (flows/tensorflow_log.py).
"""

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import prefect
import typer
from prefect.settings import PREFECT_API_URL
from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from db.engine import safe_url, transaction
from db.errors import DataLayerError, error_line, error_message
from db.event_import import FileColumns, import_events
from db.migrate import upgrade
from db.registry import latest_version
from db.source import event_counts_by_type, resolve_columns
from flows.databases import reachable_engine, service_engine
from flows.demo_data import load_synthetic_events
from flows.deployments import runner_deployments
from flows.outcomes import evaluate_runs
from flows.registry import metrics_of
from flows.report import (
    RetrainOutcome,
    ScoreSummary,
    TextTable,
    drift_report,
    evaluation_table,
    metrics_markdown,
    metrics_table,
    monitoring_report,
)
from flows.runtime import exit_on_sigterm, local_flow_runs, terminal_tracebacks
from flows.server import local_prefect_server, stop_temporary_server_with_this_process
from flows.settings import Settings
from flows.tensorflow_log import load_tensorflow_quietly
from flows.walk_forward import backtest_cutoffs

app = typer.Typer(
    help="Purchase propensity: retrain, score and publish to SQL.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)
UNBOUNDED_WIDTH = 10_000


@dataclass
class AppOptions:
    """The options given before the command, set by the app's callback."""

    debug: bool = False


app_options = AppOptions()


@app.callback()
def quiet_start(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks, also Prefect's, on the terminal.")
    ] = False,
) -> None:
    """Purchase propensity: retrain, score and publish to SQL."""
    # Set before Prefect's server starts: the service runs offline as often as not, where the
    # server would log a failed telemetry call on every start. An explicit setting still wins.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    exit_on_sigterm()
    stop_temporary_server_with_this_process()
    app_options.debug = debug
    # Without --debug a failed run's traceback stays in its Prefect logs; the terminal gets
    # the one-line error.
    terminal_tracebacks(shown=debug)


def flow_module(name: str):
    """flows.<name>, imported when a command runs its flow: TensorFlow loads quietly first."""
    load_tensorflow_quietly()
    return importlib.import_module(f"flows.{name}")


F = TypeVar("F", bound=Callable)
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
AsOf = Annotated[
    datetime | None,
    typer.Option(formats=DATE_FORMATS, help="Data cutoff (UTC); default: the latest event."),
]


def one_line_errors(command: F) -> F:
    """Show a failure as one line on stderr with a non-zero exit; its traceback only with
    --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if app_options.debug:
                errors.print_exception()
            message = escape(one_line(error))
            errors.print(
                f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=1) from None

    return wrapper


def one_line(error: Exception) -> str:
    """The message of an expected failure (bad input or settings, the database); any other
    failure's type and message, and where its traceback is. Passwords masked."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
        )
        return f"invalid settings: {problems}"
    if isinstance(error, DataLayerError | ValueError):
        return error_message(error)
    if isinstance(error, SQLAlchemyError):
        return f"database error: {error_message(error)}"
    return f"{error_line(error)} (run `propensity --debug ...` for the traceback)"


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
    console.print(f"database ready: {safe_url(settings.database_url)}", soft_wrap=True)


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
    # Off a terminal (a log file, a pipe) Rich would fit the table into 80 columns and cut
    # its cells; there the table takes the width it needs.
    if not console.is_terminal:
        unbounded = console.options.update_width(UNBOUNDED_WIDTH)
        needed = console.measure(view, options=unbounded).maximum
        view.width = needed if needed > console.width else None
    console.print(view, crop=console.is_terminal)


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
    retrain_flow = flow_module("retrain").retrain

    with local_flow_runs():
        # The flow's parameters, in its order.
        outcome = retrain_flow(
            as_of, horizon_days, cell, epochs, snapshots, stride_days, force_promote
        )
    show_retrain(outcome)


def show_score_summary(summary: ScoreSummary) -> None:
    console.print(summary.headline())
    console.print(summary.drift_line(), highlight=False)
    show_table(summary.decile_table())
    show_table(summary.top_table())


@app.command()
@one_line_errors
def score(
    as_of: AsOf = None,
    partition_size: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Score every active customer with the champion and publish the run atomically."""
    check_databases(Settings())
    score_flow = flow_module("score").score

    with local_flow_runs():
        summary = score_flow(as_of=as_of, partition_size=partition_size)
    show_score_summary(summary)


@app.command()
@one_line_errors
def evaluate(
    run_id: Annotated[
        int | None, option("Evaluate this run (again); default: every matured run not yet.")
    ] = None,
) -> None:
    """Judge score runs whose horizon has passed against the target events that happened."""
    settings = Settings()
    check_databases(settings)
    evaluations = evaluate_runs(settings.databases(), settings.event_source, run_id)
    if not evaluations:
        console.print("no score run awaits its outcome")
        return
    show_table(evaluation_table(evaluations))


@app.command()
@one_line_errors
def backtest(
    start: Annotated[
        datetime, typer.Option("--from", formats=DATE_FORMATS, help="The first cutoff (UTC).")
    ],
    end: Annotated[
        datetime, typer.Option("--to", formats=DATE_FORMATS, help="No cutoff after this.")
    ],
    every: Annotated[int, typer.Option(min=1, help="Days between cutoffs.")],
    horizon_days: Annotated[int | None, typer.Option(min=1)] = None,
    cell: Annotated[str | None, typer.Option(help="gru or lstm")] = None,
    csv: Annotated[
        Path | None,
        option("The table's CSV file; default: backtest-FROM-TO.csv in the reports dir."),
    ] = None,
    keep_database: Annotated[
        Path | None,
        option(
            "Keep the backtest's SQLite database (models, score runs, outcomes) at this new path."
        ),
    ] = None,
) -> None:
    """Replay retrain and score at past cutoffs in a scratch database; judge each run after
    its horizon, the champion's beside the baselines'."""
    settings = Settings().overridden(horizon_days=horizon_days, cell=cell)
    check_databases(settings)
    # A range without a usable cutoff fails here, before Prefect and TensorFlow start.
    backtest_cutoffs(
        settings.databases(), settings.event_source, start, end, every, settings.training_plan()
    )
    backtest_flow = flow_module("backtest").backtest

    with local_flow_runs():
        result = backtest_flow(
            start,
            end,
            every,
            horizon_days,
            cell,
            csv and str(csv),
            keep_database and str(keep_database),
        )
    show_table(result.table())
    for note in result.skipped:
        console.print(note, highlight=False)
    console.print(f"table written to {result.csv_path}", highlight=False, soft_wrap=True)


@app.command()
@one_line_errors
def report() -> None:
    """Print the latest model card, how the latest score runs did, the latest run's drift,
    and where the charts are."""
    settings = Settings()
    with transaction(service_engine(settings.database_url)) as session:
        version = latest_version(session)
        if version is None:
            raise ValueError("no model trained yet: run `propensity retrain` first")
        console.print(Markdown(metrics_markdown(version)))
        for path in metrics_of(version).charts:
            console.print(f"chart: {path}", highlight=False)
        monitoring = monitoring_report(session.connection(), Path(settings.reports_dir))
        drift = drift_report(session.connection(), settings.drift_psi_threshold)
    if monitoring is None:
        console.print("no score run judged yet: `propensity evaluate` judges matured runs")
    else:
        show_table(monitoring.table)
        console.print(f"chart: {monitoring.chart}", highlight=False)
    if drift is None:
        console.print("no score run measured drift yet (its champion needs a drift reference)")
    else:
        show_table(drift)


@app.command()
@one_line_errors
def serve(
    start_server: Annotated[
        bool,
        typer.Option(help="Start a local `prefect server` when PREFECT_API_URL is not set."),
    ] = True,
) -> None:
    """Serve the scheduled deployments of deployments/prefect.yaml (no work pool needed)."""
    load_tensorflow_quietly()  # before the deployments import their flows
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
    retrain_and_score = flow_module("pipeline").retrain_and_score

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
