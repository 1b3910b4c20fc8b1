"""TensorFlow's native log, kept off the terminal of every command and flow run.

TensorFlow 2.21 logs from C++ through absl before absl is initialised. TF_CPP_MIN_LOG_LEVEL,
set before TensorFlow loads, silences what its own logging writes later (an `E0000 ...
use_unbounded_threadpool` and a oneDNN `DT_BOOL` line in every training or scoring run), but
not the lines that loading its libraries prints (absl's "All log messages before
absl::InitializeLog()" and oneDNN's banner, twice). Those are filtered out of file descriptor
2 while TensorFlow loads, by a child process that passes every other line on: also the last
words of a crash while loading. `TF_CPP_MIN_LOG_LEVEL=0` shows TensorFlow's log again.

Whoever imports TensorFlow first (a network's module, Keras, a test, a Dask worker or a flow
run that `propensity serve` starts), it loads this way: importing the llm_model package
installs `QuietTensorFlowImport`, which costs nothing until TensorFlow is imported.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

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


# TensorFlow warns when five of a function's last ten calls traced it, counting every
# tf.function made from the same code as one: each network fitted (Keras' train and test
# steps) and each model served (its probability and attribution functions) traces its own
# once, and small models fitted or loaded in a row (a backtest's cutoffs, a small database,
# the tests) add up to five. None of them traces again for a new batch shape: their inputs
# are declared with open dimensions.
TRACING_NOTICE = "triggered tf.function retracing"


class WithoutTracingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TRACING_NOTICE not in record.getMessage()


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """On the first import of the tensorflow package, gives its spec a loader that loads it
    quietly; then leaves sys.meta_path."""

    def find_spec(self, name, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = QuietLoader(spec.loader)
        return spec


class QuietLoader(importlib.abc.Loader):
    """Runs `loader`'s loading of TensorFlow with its C++ log off and its loading lines
    filtered out of stderr."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # The module keeps the real loader, for whatever reads its files through it.
        module.__loader__ = module.__spec__.loader = self.loader
        with stderr_without(LOADING_NOISE):
            self.loader.exec_module(module)
        logging.getLogger("tensorflow").addFilter(WithoutTracingNotice())


def quiet_tensorflow_imports() -> None:
    """TensorFlow, once imported by anyone in this process, loads quietly; it is not loaded
    now."""
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlowImport())


def load_tensorflow_quietly() -> None:
    """TensorFlow loaded now, quietly (see quiet_tensorflow_imports)."""
    quiet_tensorflow_imports()
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
