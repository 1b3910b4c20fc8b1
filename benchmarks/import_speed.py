"""Event import speed and memory: `propensity import-events`' own path on each database.

    python benchmarks/import_speed.py                                  # 2.4M rows, all three
    python benchmarks/import_speed.py --rows 200000 --backends sqlite,postgresql
    python benchmarks/import_speed.py --chunk-rows 50000               # a smaller chunk

A CSV of --rows synthetic events (service.synthetic, seeded: the same file every time) is
written to a temporary folder. Each backend gets a fresh, migrated database (a SQLite file
in that folder; a new database on the PostgreSQL and MariaDB/MySQL servers, dropped at the
end), and the file is imported twice, each time in a fresh subprocess calling
db.event_import.import_events as the CLI does (one transaction, committed at the end):

  first     the import into the empty database;
  re-import the same file again: every row is found present and nothing is added.

Seconds are the import's own wall time (the subprocess's start-up is not counted); peak RSS
is the importing process's own (its VmHWM: ru_maxrss would hold this script's size); CPU is
that process's user + system seconds during the import, not the database server's (seconds
well above CPU are mostly the server's work, or waiting for a busy machine). On PostgreSQL,
`psql \\copy` of the same file into a plain table without keys or indexes is timed as the
floor.
"""

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from memory import peak_rss_mb  # noqa: E402

from db.engine import make_engine, transaction  # noqa: E402
from db.event_import import FileColumns, import_events  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from service.synthetic import generate  # noqa: E402

SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
EVENTS_PER_CUSTOMER = 45  # about what service.synthetic draws; more customers are drawn if short
NOW = datetime(2026, 12, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_400_000, help="events in the file")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--postgres-url", default=SERVER_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=SERVER_URLS["mysql"])
    parser.add_argument(
        "--chunk-rows", type=int, default=200_000, help="PROPENSITY_IMPORT_CHUNK_ROWS"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # URL and file to import
    return parser.parse_args(argv)


def write_events(path: Path, rows: int, seed: int) -> None:
    """The first `rows` events of a synthetic population, as a user's export would be."""
    customers = math.ceil(rows / EVENTS_PER_CUSTOMER)
    while len(events := generate(customers, seed=seed).events) < rows:
        customers = math.ceil(customers * 1.1)
    events = events.iloc[:rows][["customer_id", "occurred_at", "event_type", "amount"]]
    events.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S.%f")


# ----------------------------------------------------------------------------------------
# One import, in its own process


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def import_once(url: str, path: Path, chunk_rows: int) -> dict:
    engine = make_engine(url)
    started, cpu_before = time.perf_counter(), cpu_seconds()
    with transaction(engine) as session:
        report = import_events(
            session, path, FileColumns(), NOW, timedelta(hours=1), chunk_rows=chunk_rows
        )
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rows_read": report.rows_read,
        "imported": report.imported,
        "duplicates": report.duplicates,
    }


def run_child(url: str, path: Path, chunk_rows: int) -> dict:
    command = [sys.executable, __file__, "--child", url, str(path), "--chunk-rows"]
    done = subprocess.run([*command, str(chunk_rows)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"import into {make_url(url).get_backend_name()} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------
# Databases


@contextmanager
def fresh_database(backend: str, args: argparse.Namespace, folder: Path) -> Iterator[str]:
    """The URL of a new, migrated database, dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'import.db'}"
        migrate(url)
        yield url
        return
    server = make_url(getattr(args, f"{backend.replace('postgresql', 'postgres')}_url"))
    name = f"propensity_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        migrate(url)
        yield url
    finally:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


def migrate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        upgrade(connection)
    engine.dispose()


def psql_copy_seconds(url: str, path: Path) -> float | None:
    """`psql \\copy` of the file into a plain table (no key, no index): PostgreSQL's floor."""
    psql = shutil.which("psql")
    if psql is None:
        return None
    target = make_url(url)
    connect = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", target.host or "localhost"]
    connect += ["-p", str(target.port or 5432), "-U", target.username or "postgres"]
    connect += ["-d", target.database]
    columns = "customer_id text, occurred_at timestamp, event_type text, amount numeric"
    subprocess.run([*connect, "-c", f"CREATE TABLE plain_events ({columns})"], check=True)
    started = time.perf_counter()
    copy = f"\\copy plain_events FROM '{path}' WITH (FORMAT csv, HEADER)"
    subprocess.run([*connect, "-c", copy], check=True)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------------------
# Report


@dataclass
class Result:
    backend: str
    rows: int
    first: dict
    again: dict


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}"


def print_table(results: list[Result], psql_seconds: float | None) -> None:
    header = (
        "backend", "rows", "first s", "first rows/s", "re-import s", "re-import rows/s",
        "peak RSS MB (first / re)", "CPU s (first / re)",
    )  # fmt: skip
    lines = [header]
    for result in results:
        first, again = result.first, result.again
        lines.append(
            (
                result.backend,
                f"{result.rows:,}",
                f"{first['seconds']:.1f}",
                rate(result.rows, first["seconds"]),
                f"{again['seconds']:.1f}",
                rate(result.rows, again["seconds"]),
                f"{first['peak_rss_mb']:.0f} / {again['peak_rss_mb']:.0f}",
                f"{first['cpu']:.1f} / {again['cpu']:.1f}",
            )
        )
    if psql_seconds is not None:
        rows = next(result.rows for result in results if result.backend == "postgresql")
        copy = ("psql \\copy (plain table)", f"{rows:,}", f"{psql_seconds:.1f}")
        lines.append((*copy, rate(rows, psql_seconds), "", "", "", ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def check(result: Result) -> None:
    """Every row imported the first time, none the second: the figures are of a real import."""
    first, again = result.first, result.again
    if (first["imported"], again["imported"], again["duplicates"]) != (
        result.rows,
        0,
        result.rows,
    ):
        raise SystemExit(f"{result.backend}: unexpected reports {first} / {again}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        url, path = args.child
        print(json.dumps(import_once(url, Path(path), args.chunk_rows)))
        return
    with tempfile.TemporaryDirectory(prefix="propensity-import-bench-") as temporary:
        folder = Path(temporary)
        path = folder / "events.csv"
        started = time.perf_counter()
        write_events(path, args.rows, args.seed)
        size = path.stat().st_size / 2**20
        print(f"{args.rows:,} events, {size:.0f} MB CSV ({time.perf_counter() - started:.0f} s)")
        results, psql_seconds = [], None
        for backend in (name.strip() for name in args.backends.split(",")):
            if backend not in ("sqlite", *SERVER_URLS):
                raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql, mysql)")
            with fresh_database(backend, args, folder) as url:
                first = run_child(url, path, args.chunk_rows)
                again = run_child(url, path, args.chunk_rows)
                if backend == "postgresql":
                    psql_seconds = psql_copy_seconds(url, path)
            results.append(Result(backend, args.rows, first, again))
            check(results[-1])
            print(f"{backend}: first {first['seconds']:.1f} s, re-import {again['seconds']:.1f} s")
        print(f"\n{datetime.now():%Y-%m-%d %H:%M}, chunk {args.chunk_rows:,} rows\n")
        print_table(results, psql_seconds)


if __name__ == "__main__":
    main()
