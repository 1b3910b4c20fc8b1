"""One-line errors: every command fails with one `error: ...` line and a non-zero exit, run
as a new user runs it (a process of its own); the traceback stays in Prefect's logs and
--debug shows it. TensorFlow's start-up lines never reach the terminal."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL

import llm_model.tensorflow_log
from cli.terminal import one_line
from llm_model.tensorflow_log import stderr_without

NO_CHAMPION = "error: no champion model: run `propensity retrain` first"
TENSORFLOW_NOISE = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "E0000", "I0000")


@pytest.fixture
def new_user(engine, database_url, prefect_harness, tmp_path) -> dict[str, str]:
    """The environment of someone whose database is set up but has no champion yet; the
    flow runs of their commands go to the test session's Prefect server."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TF_")}
    return environment | {
        "PROPENSITY_DATABASE_URL": database_url,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }


def propensity(*args: str, environment: dict[str, str], folder: Path):
    """The installed `propensity` command, in a process of its own."""
    command = Path(sys.executable).with_name("propensity")
    return subprocess.run(
        [str(command), *args],
        env=environment,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def flow_run_id(terminal: str) -> str:
    name = re.search(r"Beginning flow run '([^']+)'", terminal).group(1)
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return str(run.id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_flow_run_is_one_line_on_the_terminal_and_whole_in_prefect(
    new_user, prefect_record, tmp_path
):
    result = propensity("score", environment=new_user, folder=tmp_path)
    terminal = result.stdout + result.stderr
    assert result.returncode == 1
    assert [line for line in terminal.splitlines() if "error:" in line] == [NO_CHAMPION]
    assert "Traceback" not in terminal
    assert [noise for noise in TENSORFLOW_NOISE if noise in terminal] == []
    in_prefect = prefect_record(flow_run_id(terminal))
    assert "Traceback (most recent call last)" in in_prefect
    assert "NoChampion" in in_prefect


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_debug_shows_the_tracebacks_on_the_terminal(new_user, tmp_path):
    result = propensity("--debug", "score", environment=new_user, folder=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("Traceback") >= 2  # Prefect's flow run's, then the command's
    assert result.stderr.strip().splitlines()[-1] == NO_CHAMPION


def test_an_unexpected_failure_is_one_line_naming_its_type_and_the_debug_flag():
    assert one_line(KeyError("model")) == (
        "KeyError: 'model' (run `propensity --debug ...` for the traceback)"
    )
    assert one_line(RuntimeError("first line\nsecond line")).startswith(
        "RuntimeError: first line ("
    )
    assert one_line(ValueError("--cell must be gru or lstm\nmore")) == "--cell must be gru or lstm"


def test_only_the_lines_named_as_noise_are_kept_off_stderr(capfd):
    with stderr_without(["absl::InitializeLog"]):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called\n")
        os.write(2, b"F0000 a real failure\n")
    assert capfd.readouterr().err == "F0000 a real failure\n"


CRASH_WHILE_FILTERED = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("tensorflow_log", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with module.stderr_without(["noise"]):
    os.write(2, b"noise\\nlast words before the crash\\n")
    os.abort()
"""


def test_a_crash_while_filtering_still_shows_its_last_words():
    """The filter is a process of its own: it passes on what a dying process wrote."""
    result = subprocess.run(
        [sys.executable, "-c", CRASH_WHILE_FILTERED, llm_model.tensorflow_log.__file__],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr == "last words before the crash\n"
