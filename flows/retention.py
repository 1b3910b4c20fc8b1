"""The retention flow: delete the events older than the retention window, on a schedule
(deployments/prefect.yaml), as `propensity purge` does."""

from prefect import flow, get_run_logger

from flows.tasks import io_task
from service.databases import Databases
from service.erasure import Purge, purge
from service.settings import current_settings


@io_task
def purge_old_events(databases: Databases, retention_days: int) -> Purge:
    """Retried on a lost connection: batches already deleted stay deleted and counted, the
    rerun goes on with the rest under a log row of its own."""
    return purge(databases, retention_days)


@flow(name="retention", log_prints=True)
def retention() -> Purge | None:
    """Nothing to do while PROPENSITY_EVENT_RETENTION_DAYS is unset (every event is kept)."""
    settings = current_settings()
    logger = get_run_logger()
    if settings.event_retention_days is None:
        logger.info("no retention window set (PROPENSITY_EVENT_RETENTION_DAYS): nothing purged")
        return None
    purged = purge_old_events(settings.databases(), settings.event_retention_days)
    logger.info(
        "purged %s events of %s customers that occurred before %s UTC, in %s batch(es)",
        f"{purged.events:,}",
        f"{purged.customers:,}",
        f"{purged.before:%Y-%m-%d %H:%M}",
        purged.batches,
    )
    return purged
