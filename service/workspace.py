"""The service's work directory: where a run keeps its temporary files (a retrain's training
set, a backtest's scratch database), each run in a folder of its own, readable by the
service's user only and removed when the run ends.

A run killed by SIGKILL (or a lost host) removes nothing. Its folder is found by the next
run that makes one: every folder in use holds an exclusive lock (flock) on a file inside
it for as long as its run lives, and the kernel releases the lock of a process that died,
so a folder whose lock can be taken belongs to no living run and is removed. Folders are
made, and leftovers looked for, under a lock on the work directory itself, so that no run
takes a folder another run has just made for a leftover."""

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from db.files import PRIVATE_FOLDER, private_folder

IN_USE = ".in-use"
WORK_DIR_LOCK = ".lock"


class WorkDirError(ValueError):
    pass


def open_work_dir(path: Path) -> Path:
    """The work directory, created readable by this user only; one that exists must be this
    user's, and is made private again if it was not."""
    private_folder(path)
    owner = path.stat().st_uid
    if owner != os.getuid():
        raise WorkDirError(f"work directory {path} belongs to user id {owner}, not to this user")
    path.chmod(PRIVATE_FOLDER)
    return path


@contextmanager
def _locked(file: Path, block: bool = True) -> Iterator[bool]:
    """An exclusive lock on `file` (created if missing) for the block: True once held; with
    `block=False`, False at once where another process holds it."""
    descriptor = os.open(file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def remove_leftovers(work_dir: Path) -> list[Path]:
    """Remove the folders of runs that died; the caller holds the work directory's lock.
    The folders removed."""
    removed = []
    for folder in sorted(work_dir.iterdir()):
        if not folder.is_dir() or folder.is_symlink():
            continue
        with _locked(folder / IN_USE, block=False) as free:
            if free:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


@contextmanager
def run_folder(work_dir: Path, prefix: str) -> Iterator[Path]:
    """A new private folder for one run in the work directory, removed when the block ends
    (however it ends, short of the process dying); leftovers of dead runs removed first."""
    work_dir = open_work_dir(work_dir)
    with _locked(work_dir / WORK_DIR_LOCK):
        remove_leftovers(work_dir)
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=work_dir))
        in_use = os.open(folder / IN_USE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(in_use, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(in_use)
