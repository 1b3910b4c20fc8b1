"""Deployments as data: prefect.yaml parses, its flows import, serve registers schedules."""

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.schedules import Cron

from cli.deployments import deployment_specs, entrypoint_flow, runner_deployments
from service.settings import Settings


def test_every_deployment_has_an_importable_flow_and_valid_schedules():
    specs = {spec["name"]: spec for spec in deployment_specs()}
    assert set(specs) == {"retrain", "score", "retrain-and-score", "retention"}
    for spec in specs.values():
        flow = entrypoint_flow(spec["entrypoint"])
        assert isinstance(flow, Flow)
        flow.validate_parameters(spec["parameters"])
        assert spec["concurrency_limit"] == 1
        for schedule in spec["schedules"]:
            Cron(schedule["cron"], timezone=schedule["timezone"])
    assert specs["retrain-and-score"]["schedules"] == []
    assert entrypoint_flow(specs["retrain"]["entrypoint"]).name == "retrain"
    assert entrypoint_flow(specs["retention"]["entrypoint"]).name == "retention"
    assert [s["cron"] for s in specs["retention"]["schedules"]] == ["30 3 * * *"]


def test_settings_override_a_schedule_without_a_second_copy():
    settings = Settings(_env_file=None, schedules={"score": "30 6 * * *"})
    deployments = {d.name: d for d in runner_deployments(settings)}
    assert deployments["score"].schedules[0].schedule.cron == "30 6 * * *"
    assert deployments["retrain"].schedules[0].schedule.cron == "0 2 * * 1"


def test_serve_registers_the_deployments_with_their_schedules(prefect_harness):
    for deployment in runner_deployments(Settings(_env_file=None)):
        deployment.apply()
    with get_client(sync_client=True) as client:
        retrain = client.read_deployment_by_name("retrain/retrain")
        score = client.read_deployment_by_name("score/score")
        manual = client.read_deployment_by_name("retrain-and-score/retrain-and-score")
    assert [s.schedule.cron for s in retrain.schedules] == ["0 2 * * 1"]
    assert [s.schedule.cron for s in score.schedules] == ["0 5 * * *"]
    assert score.schedules[0].schedule.timezone == "UTC"
    assert manual.schedules == []
    assert retrain.global_concurrency_limit.limit == 1
