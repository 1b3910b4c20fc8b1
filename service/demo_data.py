"""Synthetic events for the demo, written into the service's own tables."""

from sqlalchemy import Engine

from db.engine import transaction
from db.event_import import event_keys, store_customers, store_events
from service.synthetic import generate


def load_synthetic_events(engine: Engine, n_customers: int, seed: int) -> dict[str, int]:
    """Generate a synthetic population into a migrated database; counts by event type."""
    data = generate(n_customers, seed=seed)
    events = data.events.assign(event_id=event_keys(data.events))
    with transaction(engine) as session:
        store_customers(session, data.customers)
        store_events(session, events)
    return events["event_type"].value_counts().to_dict()
