"""Synthetic events for the demo, written into the service's own tables."""

from dataclasses import dataclass

from sqlalchemy import Engine

from db.engine import transaction
from db.erasure import SuppressionList
from db.event_import import event_keys, store_customers, store_events
from service.synthetic import generate


@dataclass(frozen=True)
class DemoData:
    """What was written: events by type; erased customers (on the suppression list) left out."""

    counts: dict[str, int]
    suppressed_customers: int = 0


def load_synthetic_events(
    engine: Engine, n_customers: int, seed: int, suppression_key: bytes | None = None
) -> DemoData:
    """Generate a synthetic population into a migrated database, without the customers on
    the suppression list (made with `suppression_key`)."""
    data = generate(n_customers, seed=seed)
    events = data.events.assign(event_id=event_keys(data.events))
    with transaction(engine) as session:
        suppression = SuppressionList.read(session, suppression_key)
        erased = suppression.suppressed(data.customers["customer_id"])
        store_customers(session, data.customers[~erased])
        events = events[~suppression.suppressed(events["customer_id"])]
        store_events(session, events)
    return DemoData(events["event_type"].value_counts().to_dict(), int(erased.sum()))
