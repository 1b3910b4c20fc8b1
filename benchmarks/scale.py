"""Ten times the customers on one machine: import, retrain and scoring at growing sizes.

    python benchmarks/scale.py                                    # 100k, 400k, 2M; SQLite
    python benchmarks/scale.py --sizes 250000,2000000 --backends sqlite,postgresql
    python benchmarks/scale.py --sizes 250000,2000000 --shape few --steps import,retrain

Per backend, the population grows size by size (each size's customers extend the last's),
and at each size the service's own commands run as a user runs them, each in a process of
its own with default settings (PROPENSITY_DATABASE_URL points at a new database):
  import   `propensity import-events` of a CSV holding the new customers' events;
  retrain  `propensity retrain` (the first makes a champion, later ones face it);
  score    `propensity score` with the champion.
Per step it prints wall time, rows or customers per second, and the command's peak RSS
(its own process's VmHWM, read while it runs: not its children's, such as Prefect's
temporary server), and for the retrain the customers its training
sample held of how many.

Shapes: `many` is the synthetic population (service.synthetic: ~49 events per customer);
`few` is CDNOW's purchase log (23,570 customers, ~3 purchases each) replicated with new ids
and dates shifted by up to a week, as a purchases-only log of few events per customer.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, make_url, select, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cdnow import cdnow_events  # noqa: E402
from memory import vm_hwm_mb  # noqa: E402

from db.engine import make_engine  # noqa: E402
from db.models import ModelVersion  # noqa: E402
from service.synthetic import generate  # noqa: E402

BLOCK = 50_000  # customers generated at a time
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
STEPS = ("import", "retrain", "score")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,400000,2000000")
    parser.add_argument("--backends", default="sqlite", help="any of sqlite,postgresql,mysql")
    parser.add_argument("--shape", choices=("many", "few"), default="many")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, help="keep the CSVs and SQLite files here")
    parser.add_argument("--keep", action="store_true", help="keep the server databases")
    return parser.parse_args(argv)


# --- populations -------------------------------------------------------------------------


def synthetic_block(index: int, n: int, seed: int) -> pd.DataFrame:
    """The events of block `index` of the synthetic population, ids unique across blocks."""
    events = generate(n, seed=seed + index).events
    number = events["customer_id"].str.slice(1).astype("int64") + index * BLOCK
    return events.assign(customer_id=number.astype("str").str.zfill(9).radd("C"))


def cdnow_copy(index: int, n: int, seed: int) -> pd.DataFrame:
    """Copy `index` of CDNOW's purchase log: new ids, each customer's dates shifted by the
    same random 0-6 days (n is always the whole log's customers)."""
    log = cdnow_events()
    customers = log["customer_id"].unique()
    shift = np.random.default_rng(seed + index).integers(0, 7, len(customers))
    days = log["customer_id"].map(dict(zip(customers, shift, strict=True))).astype("int64")
    return log.assign(
        customer_id=log["customer_id"].radd(f"K{index:04d}-"),
        occurred_at=log["occurred_at"] + pd.to_timedelta(days, unit="D"),
    )


CDNOW_CUSTOMERS = 23_570


def write_events(path: Path, shape: str, first: int, last: int, seed: int) -> int:
    """Customers first..last-1 of the population as an event CSV; the rows written."""
    block, make = (BLOCK, synthetic_block) if shape == "many" else (CDNOW_CUSTOMERS, cdnow_copy)
    rows = 0
    with path.open("w") as out:
        out.write("customer_id,event_type,occurred_at,amount\n")
        for index in range(first // block, (last - 1) // block + 1):
            start, end = index * block, (index + 1) * block
            skip, n = max(first - start, 0), min(last, end) - start
            # Whole blocks, then cut: a block's customers are the same whatever size asks.
            events = make(index, block, seed)
            customers = events["customer_id"].unique()[skip:n]
            part = events[events["customer_id"].isin(customers)]
            part.to_csv(out, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S")
            rows += len(part)
    return rows


# --- databases and commands -------------------------------------------------------------


def new_database(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'scale-{uuid.uuid4().hex[:6]}.db'}"
    name = f"propensity_scale_{uuid.uuid4().hex[:8]}"
    with create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    return make_url(SERVERS[backend]).set(database=name).render_as_string(hide_password=False)


def drop_database(backend: str, url: str) -> None:
    if backend == "sqlite":
        Path(make_url(url).database).unlink(missing_ok=True)
        return
    force = " WITH (FORCE)" if backend == "postgresql" else ""
    with create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database}{force}"))


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    output: str


def propensity(url: str, *args: str, home: Path) -> Measured:
    """A `propensity` command as a user runs it; its wall time and peak RSS."""
    command = [str(Path(sys.executable).with_name("propensity")), *args]
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    environment = os.environ | {
        "PROPENSITY_DATABASE_URL": url,
        "PROPENSITY_REPORTS_DIR": str(home / "reports"),
        "PREFECT_HOME": str(home / "prefect"),
    }
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        status, peak_mb = watched(process.pid)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return Measured(seconds, peak_mb, output)


def watched(pid: int) -> tuple[int, float]:
    """The process's wait status once it ends, and its own peak RSS in MB: its VmHWM, read
    every half second while it runs (this process's generated data would otherwise show in
    the child's ru_maxrss), or ru_maxrss where there is no /proc."""
    peak = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, peak if peak is not None else usage.ru_maxrss / 1024
        peak = vm_hwm_mb(pid) or peak
        time.sleep(0.5)


def training_sample(url: str) -> tuple[int, int]:
    """The customers the latest model trained on, of how many."""
    engine = make_engine(url)
    with engine.connect() as connection:
        metrics = connection.scalar(select(ModelVersion.metrics).order_by(ModelVersion.id.desc()))
    engine.dispose()
    return metrics["data"]["n_customers"], metrics["data"]["population"]


# --- the run ---------------------------------------------------------------------------


def measure_backend(args: argparse.Namespace, backend: str, folder: Path) -> list[dict]:
    url = new_database(backend, folder)
    home = folder / f"home-{backend}"
    steps = args.steps.split(",")
    rows, loaded = [], 0
    try:
        propensity(url, "init-db", home=home)
        for size in (int(s) for s in args.sizes.split(",")):
            row = {"backend": backend, "customers": size}
            csv = folder / f"events-{args.shape}-{loaded}-{size}.csv"
            written = write_events(csv, args.shape, loaded, size, args.seed)
            loaded = size
            if "import" in steps:
                run = propensity(url, "import-events", str(csv), home=home)
                row |= {"import_rows": written, "import_s": run.seconds}
                row |= {"import_rows_s": written / run.seconds, "import_rss_mb": run.peak_rss_mb}
            csv.unlink()
            if "retrain" in steps:
                run = propensity(url, "retrain", home=home)
                n_customers, population = training_sample(url)
                row |= {"retrain_s": run.seconds, "retrain_rss_mb": run.peak_rss_mb}
                row |= {"sample": n_customers, "population": population}
            if "score" in steps:
                run = propensity(url, "score", home=home)
                row |= {"score_s": run.seconds, "score_rss_mb": run.peak_rss_mb}
                row |= {"score_customers_s": size / run.seconds}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if not args.keep:
            drop_database(backend, url)
    return rows


def report(rows: list[dict]) -> None:
    columns = [
        ("backend", "{}"),
        ("customers", "{:,}"),
        ("import_rows", "{:,}"),
        ("import_rows_s", "{:,.0f}"),
        ("import_rss_mb", "{:,.0f}"),
        ("sample", "{:,}"),
        ("population", "{:,}"),
        ("retrain_s", "{:,.0f}"),
        ("retrain_rss_mb", "{:,.0f}"),
        ("score_customers_s", "{:,.0f}"),
        ("score_rss_mb", "{:,.0f}"),
    ]
    print("| " + " | ".join(name for name, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [form.format(row[name]) if name in row else "" for name, form in columns]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    backends = args.backends.split(",")
    rows = [row for backend in backends for row in measure_backend(args, backend, folder)]
    report(rows)


if __name__ == "__main__":
    main()
