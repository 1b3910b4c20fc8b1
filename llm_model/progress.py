"""A network's training as one labelled progress bar on a terminal and one line in the log
when it ends, in place of Keras' line per epoch (a retrain fits two networks, each for up
to `epochs` epochs)."""

import logging
import time

import keras
import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class TrainingProgress(keras.callbacks.Callback):
    """Reports the fit of the network `name`: a bar of its batches, all epochs together, on
    the terminal when `bar` (its validation loss beside it); when the fit ends, early or
    not, the epochs it ran and its best validation loss to `logger`. The bar is drawn while
    the callback is entered as a context: a fit that fails gives the terminal back too."""

    def __init__(
        self, name: str, logger: logging.Logger | logging.LoggerAdapter, bar: bool
    ) -> None:
        super().__init__()
        self.name, self.logger = name, logger
        self.progress = Progress(
            TextColumn("training {task.description}"),
            BarColumn(),
            TextColumn("{task.fields[epoch]}"),
            TimeElapsedColumn(),
            disable=not bar,
        )
        self.task = self.progress.add_task(name, total=None, epoch="")
        self.losses: list[float] = []
        self.started = time.monotonic()

    def __enter__(self) -> "TrainingProgress":
        self.progress.start()
        return self

    def __exit__(self, *_exception) -> None:
        self.progress.stop()

    def on_train_begin(self, logs=None) -> None:
        self.started = time.monotonic()
        self.progress.update(self.task, total=self.params["epochs"] * self.params["steps"])

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.progress.advance(self.task)

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.losses.append(float(logs["val_loss"]))
        status = f"epoch {epoch + 1}/{self.params['epochs']}, val_loss {self.losses[-1]:.4f}"
        self.progress.update(self.task, epoch=status)

    def on_train_end(self, logs=None) -> None:
        # Early stopping ends the bar where the fit ended: full, not stuck part way.
        done = len(self.losses) * self.params["steps"]
        self.progress.update(self.task, total=done, completed=done)
        best = int(np.argmin(self.losses))
        self.logger.info(
            "%s trained: %d of at most %d epochs in %.0f s; best validation loss %.4f, epoch %d",
            self.name,
            len(self.losses),
            self.params["epochs"],
            time.monotonic() - self.started,
            self.losses[best],
            best + 1,
        )
