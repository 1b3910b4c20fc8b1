"""The two databases a flow run uses: the service's own (scores, models, own event tables)
and the event source (the same one unless configured). One engine, and so one connection
pool, per database per process."""

import functools
from dataclasses import dataclass

from sqlalchemy import Engine

from db.engine import check_reachable, make_engine, safe_url
from db.migrate import require_current_schema


@functools.lru_cache(maxsize=8)
def reachable_engine(url: str) -> Engine:
    """An engine whose database answered; fails with one line naming the server."""
    engine = make_engine(url)
    check_reachable(engine)
    return engine


@functools.lru_cache(maxsize=8)
def service_engine(url: str) -> Engine:
    """The service's database, once its schema is known to be current. Migrations run only
    from `propensity init-db` (and the demo), never as a side effect of getting an engine."""
    engine = reachable_engine(url)
    with engine.connect() as connection:
        require_current_schema(connection)
    return engine


@dataclass(frozen=True)
class Databases:
    """Where a run reads and writes, and the key (PROPENSITY_SIGNING_KEY) that vouches for
    the models stored in the service's database: with one, a model whose signature does not
    verify is never loaded."""

    service_url: str
    events_url: str
    signing_key: bytes | None = None

    def service(self) -> Engine:
        return service_engine(self.service_url)

    def events(self) -> Engine:
        return reachable_engine(self.events_url)

    def __repr__(self) -> str:
        # Task parameters and errors may be printed: never with a password.
        return (
            f"Databases(service={safe_url(self.service_url)}, events={safe_url(self.events_url)})"
        )
