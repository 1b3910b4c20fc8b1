"""A network's training shown as one labelled bar on a terminal and one line in the log,
in place of Keras' line per epoch."""

import logging
from dataclasses import replace

import pytest

from llm_model.progress import TrainingProgress
from llm_model.training import fit_contenders, fit_model

LOGGER = "test.training"


def test_each_network_is_one_log_line_and_no_keras_epoch_line(
    training, judge, tiny_config, sequence_config, caplog, capfd
):
    shown = []

    def progress(name: str) -> TrainingProgress:
        shown.append(TrainingProgress(name, logging.getLogger(LOGGER), bar=True))
        return shown[-1]

    config = replace(tiny_config, epochs=2)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        fit_contenders(training, judge, config, sequence_config, verbose=progress)

    lines = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert [line.split(":")[0] for line in lines] == ["gru trained", "gru_hybrid trained"]
    assert all(" 2 of at most 2 epochs " in line for line in lines), lines
    for bar in shown:
        (task,) = bar.progress.tasks
        assert (task.description, task.finished) == (bar.name, True)
        assert not bar.progress.live.is_started
    output = capfd.readouterr()
    assert "Epoch" not in output.out + output.err
    assert "training gru_hybrid" in output.out


def test_an_early_stop_ends_the_bar_full(training, judge, tiny_config, sequence_config):
    shown = []

    def progress(name: str) -> TrainingProgress:
        shown.append(TrainingProgress(name, logging.getLogger(LOGGER), bar=False))
        return shown[-1]

    # A validation loss that stops falling at once on 300 customers: early stopping ends
    # the fit well before 30 epochs.
    config = replace(tiny_config, epochs=30, patience=1)
    fit_model(training, judge, config, sequence_config, verbose=progress)

    (bar,) = shown
    (task,) = bar.progress.tasks
    assert len(bar.losses) < config.epochs
    assert task.total == task.completed == len(bar.losses) * bar.params["steps"]


class FailingProgress(TrainingProgress):
    def on_epoch_end(self, epoch, logs=None) -> None:
        raise RuntimeError("disk gone")


def test_a_failed_fit_gives_the_terminal_back(training, judge, tiny_config, sequence_config):
    shown = []

    def progress(name: str) -> TrainingProgress:
        shown.append(FailingProgress(name, logging.getLogger(LOGGER), bar=True))
        return shown[-1]

    with pytest.raises(RuntimeError, match="disk gone"):
        fit_model(training, judge, tiny_config, sequence_config, verbose=progress)

    assert not shown[0].progress.live.is_started


def test_a_keras_verbosity_is_keras_own(training, judge, tiny_config, sequence_config, capfd):
    fit_model(training, judge, tiny_config, sequence_config, verbose=2)
    assert "val_loss: " in capfd.readouterr().out
