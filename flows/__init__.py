"""Prefect flows, the CLI and settings: thin wiring of db/ and llm_model/."""

import os

# The service runs offline as often as not; Prefect's server would log a failed telemetry
# call on every start. An explicit setting from the user still wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
