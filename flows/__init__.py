"""Prefect flows and tasks only: thin wiring of service/ with retries, logging, artifacts."""
