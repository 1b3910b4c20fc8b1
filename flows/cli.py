"""The `propensity` command line: thin commands over db/, llm_model/ and the flows."""

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from db.engine import check_reachable, make_engine, safe_url, transaction
from db.errors import DataLayerError
from db.event_import import FileColumns, import_events
from db.migrate import upgrade
from flows.report import METRIC_COLUMNS, metric_rows, reasons_text
from flows.settings import Settings

app = typer.Typer(
    help="Purchase propensity: retrain, score and publish to SQL.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)

F = TypeVar("F", bound=Callable)
AS_OF_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


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


def ready_engine(settings: Settings):
    engine = make_engine(settings.database_url)
    check_reachable(engine)
    return engine


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
    engine = ready_engine(settings)
    with engine.begin() as connection:
        upgrade(connection)
    console.print(f"database ready: {safe_url(settings.database_url)}")


@app.command("import-events")
@one_line_errors
def import_events_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of events.")],
    customer_id_column: str = "customer_id",
    occurred_at_column: str = "occurred_at",
    event_type_column: str = "event_type",
    amount_column: Annotated[
        str | None, typer.Option(help="Amount column; --amount-column '' if there is none.")
    ] = "amount",
    event_id_column: Annotated[
        str | None, typer.Option(help="The file's own event id; default: a content hash.")
    ] = None,
    timezone: Annotated[
        str, typer.Option(help="Timezone of timestamps written without an offset.")
    ] = "UTC",
    event_types: Annotated[
        str | None, typer.Option(help="Comma-separated allowed event types; others are rejected.")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows and write rejected ones to a file.")
    ] = False,
    rejected_file: Annotated[
        Path | None, typer.Option(help="Where rejected rows go (default: PATH.rejected.csv).")
    ] = None,
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
    engine = ready_engine(settings)
    with engine.begin() as connection:
        upgrade(connection)
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
    settings = Settings()
    engine = ready_engine(settings)
    from flows.resources import load_synthetic_events

    counts = load_synthetic_events(engine, customers, seed)
    show_event_counts(counts)


def show_event_counts(counts: dict[str, int]) -> None:
    table = Table(title="events by type")
    table.add_column("event_type")
    table.add_column("events", justify="right")
    for event_type, n in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(event_type, f"{n:,}")
    console.print(table)


def show_metrics(table: dict[str, dict[str, float]]) -> None:
    view = Table(title="holdout metrics (model vs champion vs baselines)")
    for column in ("contender", *METRIC_COLUMNS):
        view.add_column(column, justify="left" if column == "contender" else "right")
    for row in metric_rows(table):
        view.add_row(*row)
    console.print(view)


def show_decision(result: dict) -> None:
    console.print(
        f"model version {result['version_id']}: [bold]{result['status']}[/] — {result['reason']}"
    )


@app.command()
@one_line_errors
def retrain(
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=AS_OF_FORMATS, help="Data cutoff (UTC); default: latest event."),
    ] = None,
    horizon_days: Annotated[int | None, typer.Option(min=1)] = None,
    cell: Annotated[str | None, typer.Option(help="gru or lstm")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    force_promote: Annotated[
        bool, typer.Option(help="Make the new model champion whatever its metrics.")
    ] = False,
) -> None:
    """Train a challenger, compare it with the champion and baselines, promote or reject it."""
    if cell not in (None, "gru", "lstm"):
        raise ValueError(f"--cell must be gru or lstm, not {cell!r}")
    from flows.resources import local_flow_runs
    from flows.retrain import retrain as retrain_flow

    with local_flow_runs():
        result = retrain_flow(
            as_of=as_of,
            horizon_days=horizon_days,
            cell=cell,
            epochs=epochs,
            force_promote=force_promote,
        )
    show_metrics(result["table"])
    show_decision(result)


def show_score_summary(summary: dict) -> None:
    rate = summary["customers_per_second"] or 0
    console.print(
        f"score run {summary['score_run_id']}: {summary['n_scored']:,} customers scored as of "
        f"{summary['as_of']} with model version {summary['model_version_id']} "
        f"in {summary['seconds']:.1f} s ({rate:,.0f} customers/s)"
    )
    deciles = Table(title="scores by decile (1 = best)")
    for column in ("decile", "customers", "mean", "min", "max"):
        deciles.add_column(column, justify="right")
    for d in summary["deciles"]:
        deciles.add_row(
            str(d["decile"]),
            f"{d['customers']:,}",
            *(f"{d[k]:.4f}" for k in ("mean", "min", "max")),
        )
    console.print(deciles)
    top = Table(title="top customers")
    for column in ("rank", "customer_id", "propensity", "reasons"):
        top.add_column(column)
    for row in summary["top"]:
        top.add_row(
            str(row["rank"]), row["customer_id"], f"{row['propensity']:.4f}", reasons_text(row)
        )
    console.print(top)


def run_score(as_of: datetime | None, partition_size: int | None) -> dict:
    from flows.resources import local_flow_runs
    from flows.score import configured_score_flow

    with local_flow_runs():
        summary = configured_score_flow(Settings())(as_of=as_of, partition_size=partition_size)
    show_score_summary(summary)
    return summary


@app.command()
@one_line_errors
def score(
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=AS_OF_FORMATS, help="Score date (UTC); default: latest event."),
    ] = None,
    partition_size: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Score every active customer with the champion and publish the run atomically."""
    run_score(as_of, partition_size)


@app.command()
@one_line_errors
def report() -> None:
    """Print the latest model card and where its charts are."""
    from rich.markdown import Markdown

    from db.registry import latest_version
    from flows.report import metrics_markdown

    settings = Settings()
    with transaction(ready_engine(settings)) as session:
        version = latest_version(session)
        if version is None:
            raise ValueError("no model trained yet: run `propensity retrain` first")
        console.print(Markdown(metrics_markdown(version)))
        for path in version.metrics.get("charts", []):
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
    import prefect
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import runner_deployments
    from flows.server import local_prefect_server

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
    from db.registry import current_champion
    from db.source import event_counts_by_type
    from flows.pipeline import retrain_and_score
    from flows.resources import load_synthetic_events, local_flow_runs

    settings = Settings()
    engine = ready_engine(settings)
    with engine.begin() as connection:
        upgrade(connection)
        counts = event_counts_by_type(connection, settings.event_source)
    if counts:
        console.print("reusing the events already in the database")
    else:
        console.print(f"generating {customers:,} synthetic customers (seed {seed})")
        counts = load_synthetic_events(engine, customers, seed)
    show_event_counts(counts)
    with transaction(engine) as session:
        bootstrap = current_champion(session) is None
    if bootstrap:
        console.print(
            "no champion yet: the demo promotes its first model whatever the comparison says, "
            "so that there is something to score (`propensity retrain` always applies the rule)"
        )
    with local_flow_runs():
        result = retrain_and_score(force_promote=bootstrap)
    retrained = result["retrain"]
    show_metrics(retrained["table"])
    show_decision(retrained)
    show_score_summary(result["score"])
    console.print(f"\nscores are in {safe_url(settings.database_url)}; query them with:")
    console.print(CURRENT_SCORES_SQL, highlight=False)
    console.print("model card: `propensity report`")
