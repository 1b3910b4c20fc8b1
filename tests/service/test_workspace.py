"""The work directory: each run's folder private and removed when the run ends; the folder
of a run killed with SIGKILL removed by the next run, never the folder of a living one."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.workspace import WorkDirError, run_folder

# A run in another process: makes its folder, writes into it, says where, then waits.
RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from service.workspace import run_folder

    with run_folder(Path(sys.argv[1]), "retrain") as folder:
        (folder / "inputs.npz").write_bytes(b"every event of every customer")
        print(folder, flush=True)
        time.sleep(600)
    """
)
ROOT = Path(__file__).resolve().parents[2]


def start_run(work_dir: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN, str(work_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    return process, Path(process.stdout.readline().strip())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_runs_folder_is_private_and_gone_when_the_run_ends(tmp_path):
    work_dir = tmp_path / "work"
    with pytest.raises(RuntimeError), run_folder(work_dir, "backtest") as folder:
        (folder / "backtest.db").write_bytes(b"scratch")
        assert folder.parent == work_dir and folder.name.startswith("backtest-")
        assert (mode(work_dir), mode(folder)) == (0o700, 0o700)
        raise RuntimeError("the run failed")
    assert not folder.exists()
    assert [p.name for p in work_dir.iterdir()] == [".lock"]


def test_the_next_run_removes_a_killed_runs_folder_and_leaves_a_living_ones(tmp_path):
    work_dir = tmp_path / "work"
    killed, killed_folder = start_run(work_dir)
    living, living_folder = start_run(work_dir)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert (killed_folder / "inputs.npz").exists()  # SIGKILL cleans nothing up

        with run_folder(work_dir, "score") as folder:
            assert not killed_folder.exists()
            assert (living_folder / "inputs.npz").exists()
            assert sorted(p for p in work_dir.iterdir() if p.is_dir()) == sorted(
                [folder, living_folder]
            )
    finally:
        living.kill()
        living.wait(timeout=30)


def test_a_work_directory_of_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("only root can give a folder to another user")
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    os.chown(work_dir, 12345, 12345)
    with pytest.raises(WorkDirError, match="belongs to user id 12345"), run_folder(work_dir, "x"):
        pass
