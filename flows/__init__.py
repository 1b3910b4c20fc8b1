"""Prefect flows and tasks, the CLI and settings: thin wiring of db/ and llm_model/."""
