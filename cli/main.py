"""The `propensity` command line: thin commands over service/ and the flows.

Settings are read once per command (`settings()`) and handed to the flows it runs. The
commands that run flows import them (and Prefect, and cli/process.py) in their bodies,
inside `flow_runs`, which starts Prefect's temporary server in the background first: the
imports and the server's start-up overlap, and init-db, import-events, evaluate and report
spend neither. TensorFlow loads only where a network is trained or served
(llm_model/tensorflow_log.py keeps its start-up lines off the terminal).
"""

import os
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from sqlalchemy import Engine

from cli.terminal import console, one_line_errors, rows_progress, say, show_counts, show_table
from db.engine import parse_database_url, safe_url, transaction
from db.erasure import Forgotten
from db.event_import import FileColumns, import_events
from db.grants import Roles, grant_script
from db.migrate import upgrade
from db.registry import latest_version, sign_unsigned
from db.source import event_counts_by_type, resolve_columns
from llm_model.kinds import RECURRENT_KINDS
from service import erasure
from service.databases import reachable_engine, service_engine
from service.demo_data import load_synthetic_events
from service.outcomes import evaluate_runs
from service.partitions import load_champion
from service.registry import metrics_of
from service.rendering import (
    TextTable,
    backtest_table,
    decile_table,
    drift_line,
    evaluation_table,
    metrics_markdown,
    metrics_table,
    monitoring_table,
    retrain_decision,
    score_headline,
    stored_drift_table,
    top_table,
)
from service.reports import latest_drift_check, monitoring_report
from service.results import RetrainOutcome, ScoreSummary
from service.settings import (
    BacktestRequest,
    RetrainRequest,
    ScoreRequest,
    Settings,
)
from service.walk_forward import backtest_cutoffs

app = typer.Typer(
    help="Purchase propensity: retrain, score and publish to SQL.", no_args_is_help=True
)


class Invocation:
    """This command's options given before it, and its settings, read once when first
    needed (inside the command, so bad settings are a one-line error)."""

    debug: bool = False
    _settings: Settings | None = None

    @classmethod
    def start(cls, debug: bool) -> None:
        cls.debug, cls._settings = debug, None

    @classmethod
    def settings(cls) -> Settings:
        if cls._settings is None:
            cls._settings = Settings()
        return cls._settings


settings = Invocation.settings
command = one_line_errors(debug=lambda: Invocation.debug)


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
    Invocation.start(debug)


def runnable_here() -> None:
    """The configured task runner can run here (a Dask cluster needs a lasting Prefect
    server): checked before a server starts, in one line."""
    from flows.task_runner import require_runner_prerequisites

    require_runner_prerequisites(settings())


def flows_running():
    """The setting in which this command runs its flows (see cli.process.flow_runs); without
    --debug a failed run's traceback stays in its Prefect logs and the terminal gets the
    one-line error."""
    from cli.process import flow_runs

    return flow_runs(settings(), tracebacks=Invocation.debug)


# Dates are parsed by the run's request (service.settings.Cutoff): a date alone is the end
# of that day.
DATE_HELP = "a date (the end of that day) or a date and time, UTC"
AsOf = Annotated[
    str | None,
    typer.Option(help=f"Data cutoff: {DATE_HELP}; default: the latest event."),
]
Cell = Annotated[str | None, typer.Option(help="gru or lstm")]


def option(text: str):
    return typer.Option(help=text)


def known_cell(cell: str | None) -> str | None:
    if cell not in (None, *RECURRENT_KINDS):
        raise ValueError(f"--cell must be gru or lstm, not {cell!r}")
    return cell


def migrated_engine() -> Engine:
    """The service's database, migrated to this version's schema (init-db and the demo)."""
    engine = reachable_engine(settings().database_url)
    with engine.begin() as connection:
        upgrade(connection)
    return engine


def check_databases() -> None:
    """Both databases answer and the service's schema is current, checked before a flow
    starts, so a problem with them is one line, not a failed flow run's traceback."""
    databases = settings().databases()
    databases.service()
    databases.events()


@app.command("init-db")
@command
def init_db() -> None:
    """Create or upgrade the schema (Alembic migrations)."""
    migrated_engine()
    console.print(f"database ready: {safe_url(settings().database_url)}", soft_wrap=True)


@app.command("sign-models")
@command
def sign_models() -> None:
    """Sign the registered models that have no signature yet with PROPENSITY_SIGNING_KEY,
    once, when the key is first set on a database whose models you trust."""
    key = settings().databases().signing_key
    if key is None:
        raise ValueError("PROPENSITY_SIGNING_KEY is not set: there is nothing to sign with")
    with transaction(service_engine(settings().database_url)) as session:
        signed = sign_unsigned(session, key)
    console.print(
        f"signed model version(s) {', '.join(map(str, signed))}"
        if signed
        else "every model version with an intact artifact was signed already"
    )


@app.command()
@command
def grants(
    owner: Annotated[str, option("Role that runs init-db and owns the schema.")] = (
        "propensity_owner"
    ),
    service: Annotated[str, option("Role the flows and commands run as (DML only).")] = (
        "propensity_service"
    ),
    reader: Annotated[str, option("Role of SQL consumers (SELECT on the score views).")] = (
        "propensity_reader"
    ),
    host: Annotated[str, option("MariaDB/MySQL: the accounts' host part.")] = "%",
    after_init_db: Annotated[
        bool, option("Only the grants to run again after each init-db.")
    ] = False,
) -> None:
    """Print the SQL of the owner, service and reader roles for the configured database
    (passwords are placeholders, never printed)."""
    url = parse_database_url(settings().database_url)
    backend = url.get_backend_name()
    if backend != "sqlite" and not url.database:
        raise ValueError(f"{safe_url(url)} names no database: the grants are per database")
    script = grant_script(backend, url.database or "", Roles(owner, service, reader), host)
    typer.echo(script.text(after_init_db_only=after_init_db))


@app.command("import-events")
@command
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
    columns = FileColumns(
        customer_id=customer_id_column,
        occurred_at=occurred_at_column,
        event_type=event_type_column,
        amount=amount_column or None,
        event_id=event_id_column or None,
    )
    rejected_path = rejected_file or path.with_name(path.name + ".rejected.csv")
    allowed = frozenset(t.strip() for t in event_types.split(",")) if event_types else None
    engine = service_engine(settings().database_url)
    with rows_progress(f"importing {path.name}") as progress, transaction(engine) as session:
        task = progress.add_task("import", total=None)
        report = import_events(
            session,
            path,
            columns,
            now=datetime.now(UTC).replace(tzinfo=None),
            future_tolerance=timedelta(minutes=settings().future_tolerance_minutes),
            timezone=timezone,
            skip_invalid=skip_invalid,
            rejected_path=rejected_path if skip_invalid else None,
            allowed_event_types=allowed,
            chunk_rows=settings().import_chunk_rows,
            on_chunk=lambda rows: progress.advance(task, rows),
            on_insert=lambda rows: progress.console.print(
                f"{rows:,} valid rows read; adding those not yet stored"
            ),
            suppression_key=settings().suppression_secret(),
        )
    console.print(
        f"{report.rows_read:,} rows read: {report.imported:,} events imported, "
        f"{report.duplicates:,} already present or repeated, {report.rejected:,} rejected; "
        f"{report.customers_created:,} new customers"
    )
    if report.suppressed:
        console.print(f"{report.suppressed:,} rows of erased customers skipped (suppression list)")
    if report.rejected:
        say(report.describe_rejects())
        say(f"rejected rows written to {rejected_path}")


@app.command("generate-demo-data")
@command
def generate_demo_data(
    customers: Annotated[int, typer.Option(min=1)] = 2000,
    seed: int = 0,
) -> None:
    """Write a synthetic event log (order-dependent purchase behaviour) into the database."""
    data = load_synthetic_events(
        migrated_engine(), customers, seed, settings().suppression_secret()
    )
    show_counts("events by type", data.counts)
    if data.suppressed_customers:
        console.print(
            f"{data.suppressed_customers:,} erased customer(s) left out (suppression list)"
        )


def show_retrain(outcome: RetrainOutcome) -> None:
    show_table(metrics_table(outcome.table))
    say(retrain_decision(outcome))


@app.command()
@command
def retrain(
    as_of: AsOf = None,
    horizon_days: Annotated[int | None, typer.Option(min=1)] = None,
    cell: Cell = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    snapshots: Annotated[int | None, option("Labelled cutoffs, holdout included.")] = None,
    stride_days: Annotated[int | None, option("Days between cutoffs.")] = None,
    force_promote: Annotated[
        bool, typer.Option(help="Make the new model champion whatever its metrics.")
    ] = False,
) -> None:
    """Train every contender, judge them and the champion on one holdout, promote the best."""
    request = RetrainRequest(
        as_of=as_of,
        force_promote=force_promote,
        horizon_days=horizon_days,
        cell=known_cell(cell),
        epochs=epochs,
        n_snapshots=snapshots,
        snapshot_stride_days=stride_days,
    )
    check_databases()
    with flows_running():
        from flows.retrain import retrain as retrain_flow

        outcome = retrain_flow(request=request)
    show_retrain(outcome)


def show_score_summary(summary: ScoreSummary) -> None:
    console.print(score_headline(summary))
    say(drift_line(summary))
    show_table(decile_table(summary))
    show_table(top_table(summary))


@app.command()
@command
def score(
    as_of: AsOf = None,
    partition_size: Annotated[
        int | None,
        typer.Option(min=1, help="Customers per partition (default PROPENSITY_PARTITION_SIZE)."),
    ] = None,
    in_sample: Annotated[
        bool,
        option(
            "Score before the champion's training cutoff anyway; the run is never judged as a "
            "forward result."
        ),
    ] = False,
) -> None:
    """Score every active customer with the champion and publish the run atomically."""
    request = ScoreRequest(as_of=as_of, partition_size=partition_size, in_sample=in_sample)
    check_databases()
    runnable_here()
    with flows_running():
        # While Prefect's server starts: the flow then finds the champion in this process.
        # What fails here (no champion, a corrupt artifact) fails the flow again, which
        # reports it in its run's logs.
        with suppress(Exception):
            load_champion(settings().databases())
        from flows.score import score as score_flow

        summary = score_flow(request=request)
    show_score_summary(summary)


@app.command()
@command
def evaluate(
    run_id: Annotated[
        int | None, option("Evaluate this run; default: every matured run not judged yet.")
    ] = None,
    rejudge: Annotated[
        bool,
        option("Judge the --run-id run again, replacing its final outcome (its note says so)."),
    ] = False,
) -> None:
    """Judge score runs whose horizon has passed against the target events that happened.
    A judged run's outcome is final unless --rejudge asks for it again."""
    check_databases()
    evaluations = evaluate_runs(settings().databases(), settings().event_source, run_id, rejudge)
    if not evaluations:
        console.print("no score run awaits its outcome")
        return
    show_table(evaluation_table(evaluations))


def ids_in_file(path: Path) -> list[str]:
    """The ids of a file, one a line (blank lines skipped)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [line for line in lines if line.strip()]


@app.command()
@command
def forget(
    customer_ids: Annotated[
        list[str] | None, typer.Argument(help="Ids of the customers to erase.", show_default=False)
    ] = None,
    file: Annotated[Path | None, option("A file of customer ids, one a line.")] = None,
    wait: Annotated[
        int, typer.Option(min=0, help="Seconds to wait for a score run in flight to finish.")
    ] = 600,
) -> None:
    """Erase customers from every table in one transaction, add keyed hashes of their ids to
    the suppression list that imports honour, and log the erasure (counts, never ids)."""
    ids = [*(customer_ids or []), *(ids_in_file(file) if file else [])]
    check_databases()
    forgotten = erasure.forget(
        settings().databases(),
        ids,
        settings().suppression_secret(),
        heartbeat=timedelta(seconds=settings().lease_heartbeat_seconds),
        wait=timedelta(seconds=wait),
        on_wait=say,
    )
    console.print(
        f"erased {forgotten.found:,} of {forgotten.asked:,} customer(s) asked; "
        f"{forgotten.already_erased:,} erased before, {len(forgotten.unknown_ids):,} not known"
    )
    show_table(erasure_table(forgotten))
    if forgotten.unknown_ids:
        say(f"not known, nothing done: {', '.join(forgotten.unknown_ids)}")


def erasure_table(forgotten: Forgotten) -> TextTable:
    rows = [[table, f"{n:,}"] for table, n in forgotten.rows_removed.items()]
    return TextTable("rows removed", ("table", "rows"), rows)


@app.command()
@command
def purge() -> None:
    """Delete the events older than PROPENSITY_EVENT_RETENTION_DAYS, a bounded batch at a
    time, and log the purge in erasures."""
    check_databases()
    with rows_progress("purging old events") as progress:
        task = progress.add_task("purge", total=None)
        purged = erasure.purge(
            settings().databases(),
            settings().event_retention_days,
            on_batch=lambda events: progress.advance(task, events),
        )
    console.print(
        f"{purged.events:,} events of {purged.customers:,} customers, older than "
        f"{purged.before:%Y-%m-%d %H:%M} UTC, deleted in {purged.batches:,} batch(es); "
        f"logged as erasure {purged.erasure_id}"
    )


@app.command()
@command
def backtest(
    start: Annotated[str, typer.Option("--from", help=f"The first cutoff: {DATE_HELP}.")],
    end: Annotated[str, typer.Option("--to", help=f"No cutoff after this: {DATE_HELP}.")],
    every: Annotated[int, typer.Option(min=1, help="Days between cutoffs.")],
    horizon_days: Annotated[int | None, typer.Option(min=1)] = None,
    cell: Cell = None,
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
    request = BacktestRequest(
        start=start,
        end=end,
        every_days=every,
        horizon_days=horizon_days,
        cell=known_cell(cell),
        csv_path=csv and str(csv),
        database_path=keep_database and str(keep_database),
    )
    run_settings = settings().for_run(request)
    check_databases()
    # A range without a usable cutoff fails here, before Prefect and TensorFlow start.
    backtest_cutoffs(
        run_settings.databases(),
        run_settings.event_source,
        request.start,
        request.end,
        every,
        run_settings.training_plan(),
    )
    with flows_running():
        from flows.backtest import backtest as backtest_flow

        result = backtest_flow(request=request)
    show_table(backtest_table(result))
    for note in result.skipped:
        say(note)
    say(f"table written to {result.csv_path}", soft_wrap=True)


@app.command()
@command
def report() -> None:
    """Print the latest model card, how the latest score runs did, the latest run's drift,
    and where the charts are."""
    with transaction(service_engine(settings().database_url)) as session:
        version = latest_version(session)
        if version is None:
            raise ValueError("no model trained yet: run `propensity retrain` first")
        console.print(Markdown(metrics_markdown(version)))
        for path in metrics_of(version).charts:
            say(f"chart: {path}")
        connection = session.connection()
        monitoring = monitoring_report(connection, Path(settings().reports_dir))
        drift = latest_drift_check(connection, settings().drift_psi_threshold)
    if monitoring is None:
        console.print("no score run judged yet: `propensity evaluate` judges matured runs")
    else:
        show_table(monitoring_table(monitoring.runs))
        say(f"chart: {monitoring.chart}")
    if drift is None:
        console.print("no score run measured drift yet (its champion needs a drift reference)")
    else:
        show_table(stored_drift_table(drift))


@app.command()
@command
def serve(
    start_server: Annotated[
        bool,
        typer.Option(help="Start a local `prefect server` when PREFECT_API_URL is not set."),
    ] = True,
) -> None:
    """Serve the scheduled deployments of deployments/prefect.yaml (no work pool needed)."""
    import prefect
    from prefect.settings import PREFECT_API_URL

    from cli.deployments import runner_deployments
    from cli.server import local_prefect_server, server_log

    deployments = runner_deployments(settings())
    if PREFECT_API_URL.value():
        prefect.serve(*deployments)
        return
    if not start_server:
        raise ValueError(
            "schedules need a Prefect server: run `prefect server start` in another terminal "
            "and `export PREFECT_API_URL=http://127.0.0.1:4200/api`, or drop --no-start-server"
        )
    with local_prefect_server() as api_url:
        console.print(
            f"Prefect server at {api_url.removesuffix('/api')} (UI and run history; its log: "
            f"{server_log()}). To start a run from another terminal: "
            f"`export PREFECT_API_URL={api_url}`, then `prefect deployment run score/score`",
            soft_wrap=True,
        )
        prefect.serve(*deployments)


CURRENT_SCORES_SQL = """SELECT customer_id, propensity, decile, rank, expected_value, reason_1
FROM current_propensity_scores
WHERE decile = 1
ORDER BY rank
LIMIT 20;"""


@app.command()
@command
def demo(customers: Annotated[int, typer.Option(min=200)] = 5000, seed: int = 0) -> None:
    """End to end on the embedded default: synthetic events -> retrain -> score -> top customers."""
    runnable_here()
    engine = migrated_engine()
    with engine.connect() as connection:
        counts = event_counts_by_type(
            connection, resolve_columns(connection, settings().event_source)
        )
    if counts:
        console.print("reusing the events already in the database")
    else:
        console.print(f"generating {customers:,} synthetic customers (seed {seed})")
        generated = load_synthetic_events(engine, customers, seed, settings().suppression_secret())
        counts = generated.counts
    show_counts("events by type", counts)
    with flows_running():
        from flows.pipeline import retrain_and_score

        outcome = retrain_and_score()
    show_retrain(outcome.retrain)
    show_score_summary(outcome.score)
    console.print(f"\nscores are in {safe_url(settings().database_url)}; query them with:")
    console.print(CURRENT_SCORES_SQL, highlight=False)  # our own text: its lines as they are
    console.print("model card: `propensity report`")
