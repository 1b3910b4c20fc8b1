"""Deployments read from deployments/prefect.yaml, so `propensity serve` and work-pool
deploys share one set of schedules (settings may override a cron per deployment)."""

import importlib
from pathlib import Path

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from service.settings import Settings

PREFECT_YAML = Path(__file__).resolve().parent.parent / "deployments" / "prefect.yaml"


def deployment_specs(path: Path = PREFECT_YAML) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: deployments file not found")
    return yaml.safe_load(path.read_text())["deployments"]


def entrypoint_flow(entrypoint: str) -> Flow:
    """'flows/retrain.py:retrain' -> the flow object, imported as a module of the package."""
    file, name = entrypoint.split(":")
    module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def schedules_of(spec: dict, settings: Settings) -> list[Cron]:
    override = settings.schedules.get(spec["name"])
    return [
        Cron(override or schedule["cron"], timezone=schedule.get("timezone", "UTC"))
        for schedule in spec.get("schedules", [])
    ]


def runner_deployments(settings: Settings, path: Path = PREFECT_YAML) -> list[RunnerDeployment]:
    return [
        entrypoint_flow(spec["entrypoint"]).to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            schedules=schedules_of(spec, settings),
            parameters=spec.get("parameters") or {},
            concurrency_limit=spec.get("concurrency_limit"),
            tags=spec.get("tags"),
        )
        for spec in deployment_specs(path)
    ]
