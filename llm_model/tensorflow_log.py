"""TensorFlow's native log, kept off the terminal of every command and flow run.

TensorFlow 2.21 logs from C++ through absl before absl is initialised. TF_CPP_MIN_LOG_LEVEL,
set before TensorFlow loads, silences what its own logging writes later (an `E0000 ...
use_unbounded_threadpool` and a oneDNN `DT_BOOL` line in every training or scoring run), but
not the lines that loading its libraries prints (absl's "All log messages before
absl::InitializeLog()" and oneDNN's banner, twice). Those are filtered out of file descriptor
2 while TensorFlow loads, by a child process that passes every other line on: also the last
words of a crash while loading. `TF_CPP_MIN_LOG_LEVEL=0` shows TensorFlow's log again.
"""

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

LOADING_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)
# Runs as `python -S -c FILTER noise...`: no site packages, so it starts in milliseconds.
FILTER = """
import sys
noise = [part.encode() for part in sys.argv[1:]]
for line in sys.stdin.buffer:
    if not any(part in line for part in noise):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def load_tensorflow_quietly() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with stderr_without(LOADING_NOISE):
        import tensorflow  # noqa: F401


@contextmanager
def stderr_without(noise: Sequence[str]) -> Iterator[None]:
    """Inside the block, lines written to file descriptor 2, by Python or native code, that
    contain one of `noise` are dropped; every other line reaches stderr unchanged."""
    if sys.stderr is None:  # started without one (a daemon): nothing reaches a terminal
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    line_filter = subprocess.Popen(
        [sys.executable, "-S", "-c", FILTER, *noise], stdin=read_end, stdout=terminal
    )
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        # Closes the pipe's last write end: the filter passes on what is left and ends.
        os.dup2(terminal, 2)
        os.close(terminal)
        line_filter.wait()
