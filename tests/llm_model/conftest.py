"""Tiny shared fixtures for the llm_model tests: a small synthetic event log, its training set,
one tiny recurrent model, the static contenders and the recurrent model on top of the gbm
trained on it once per session (several test files score, store or retrain them)."""

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy.special import logit

from llm_model.baselines import StaticModel, fit_static_model
from llm_model.hybrid import HybridModel
from llm_model.manifest import ModelConfig, ModelManifest
from llm_model.model import TrainedModel
from llm_model.reasons import REASON_COLUMNS, WEIGHT_COLUMNS
from llm_model.sequences import (
    N_RESERVED,
    NO_HISTORY,
    PAD,
    UNKNOWN,
    Features,
    SequenceConfig,
    Snapshot,
    TrainingSet,
    build_training_set,
)
from llm_model.training import calibration_split, fit_hybrid, fit_model
from service.synthetic import generate


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    """A model small and short enough to train in a second or two."""
    return ModelConfig(units=4, embedding_dim=4, dense_units=4, epochs=1, batch_size=128)


@pytest.fixture(scope="session")
def sequence_config() -> SequenceConfig:
    return SequenceConfig(max_len=12)


@pytest.fixture(scope="session")
def events() -> pd.DataFrame:
    """A year of events of 300 synthetic customers."""
    return generate(300, seed=11).events


@pytest.fixture(scope="session")
def split_training(events, sequence_config) -> tuple[TrainingSet, Snapshot]:
    """Two training snapshots and the reported half of the temporal holdout, ending at the
    last event, and the half the calibrators are chosen on."""
    return calibration_split(
        build_training_set(events, events["occurred_at"].max(), sequence_config, n_snapshots=3)
    )


@pytest.fixture(scope="session")
def training(split_training) -> TrainingSet:
    return split_training[0]


@pytest.fixture(scope="session")
def judge(split_training) -> Snapshot:
    return split_training[1]


@pytest.fixture(scope="session")
def trained(training, judge, tiny_config, sequence_config) -> TrainedModel:
    model, _ = fit_model(training, judge, tiny_config, sequence_config, verbose=0)
    return model


@pytest.fixture(scope="session")
def static_models(training, tiny_config, sequence_config) -> dict[str, StaticModel]:
    """The static contenders by kind, fitted on the same snapshots as `trained`."""
    return {
        kind: fit_static_model(kind, training, sequence_config, tiny_config.seed)
        for kind in ("logistic", "gbm")
    }


@pytest.fixture(scope="session")
def hybrid(training, judge, static_models, tiny_config, sequence_config) -> HybridModel:
    """The tiny recurrent model on top of the gbm of `static_models`."""
    model, _ = fit_hybrid(
        training, judge, static_models["gbm"], tiny_config, sequence_config, verbose=0
    )
    return model


def assert_reasons_are_the_largest(reasons: pd.DataFrame, contributions: np.ndarray) -> None:
    """reason_1..3 carry each row's three contributions largest in absolute value, largest
    first (ties either way), as their weights, sign included; an input the customer lacks
    (NaN) or one contributing nothing is no reason. Each reason says `(raises)` where its
    weight is above 0, `(lowers)` where below."""
    magnitude = np.nan_to_num(np.abs(contributions))
    weights = reasons[WEIGHT_COLUMNS].to_numpy(dtype=np.float64)
    given = ~np.isnan(weights)
    np.testing.assert_allclose(
        np.where(given, np.abs(weights), 0), -np.sort(-magnitude, axis=1)[:, :3], atol=1e-6
    )
    # Each weight is one of its row's contributions, with its sign.
    distance = np.abs(np.nan_to_num(contributions, nan=np.inf)[:, None, :] - weights[:, :, None])
    assert (distance.min(axis=2)[given] < 1e-6).all()
    texts = reasons[REASON_COLUMNS].to_numpy(dtype=object)
    assert pd.isna(texts[~given]).all()
    suffix = np.where(weights > 0, " (raises)", " (lowers)")
    for text, ending in zip(texts[given], suffix[given], strict=True):
        assert text.endswith(ending), (text, ending)


@pytest.fixture(scope="session")
def reasons_are_the_largest():
    """The check above, for the tests of every kind's reason codes."""
    return assert_reasons_are_the_largest


@dataclass(frozen=True)
class GradientTimesInput:
    """A network's contributions computed in the tests: per token id summed over the
    sequence (NaN where the sequence lacks it, and for padding), per static input, and the
    gradient of the log-odds with respect to the static inputs."""

    by_token: np.ndarray
    static: np.ndarray
    static_gradient: np.ndarray

    def contributions(self) -> np.ndarray:
        """Every input a reason may name: the tokens, then the static features."""
        return np.concatenate([self.by_token, self.static], axis=1)


def gradient_times_input_of(network: keras.Model, features: Features) -> GradientTimesInput:
    """Gradient x input of the log-odds, from one eager pass over the padded rows at full
    width (no traced function, no length buckets), summed per token with numpy here."""
    head = network.get_layer("head")
    mean = np.asarray(head.get_layer("scale").mean).reshape(-1)
    tokens, numeric, static = (
        tf.constant(x) for x in (features.tokens, features.numeric, features.static)
    )
    embedded = network.get_layer("embed")(tokens)
    with tf.GradientTape() as tape:
        tape.watch([embedded, numeric, static])
        p = head([tokens, embedded, numeric, static], training=False)
        log_odds = tf.math.log(p) - tf.math.log1p(-p)
    d_embedded, d_numeric, d_static = tape.gradient(log_odds, [embedded, numeric, static])
    per_event = (d_embedded * embedded).numpy().sum(-1) + (d_numeric * numeric).numpy().sum(-1)
    n, width = features.tokens.shape
    vocab_size = network.get_layer("embed").input_dim
    by_token, count = np.zeros((n, vocab_size)), np.zeros((n, vocab_size))
    rows = np.repeat(np.arange(n), width)
    np.add.at(by_token, (rows, features.tokens.ravel()), per_event.ravel())
    np.add.at(count, (rows, features.tokens.ravel()), 1)
    by_token[count == 0] = np.nan
    by_token[:, PAD] = np.nan
    d_static = d_static.numpy().astype(np.float64)
    return GradientTimesInput(by_token, d_static * (features.static - mean), d_static)


@pytest.fixture(scope="session")
def gradient_times_input():
    """The reference above, for the recurrent model's and the hybrid's reason tests."""
    return gradient_times_input_of


def occlusion_of(classifier, static: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per customer and column, the log-odds a scikit-learn classifier loses when the column
    is set to its mean."""
    static = static.astype(np.float64)

    def log_odds(x: np.ndarray) -> np.ndarray:
        p = classifier.predict_proba(x)[:, 1]
        assert ((p > 1e-6) & (p < 1 - 1e-6)).all()  # no clipping in play
        return logit(p)

    lost = np.empty_like(static)
    for column in range(static.shape[1]):
        occluded = static.copy()
        occluded[:, column] = mean[column]
        lost[:, column] = log_odds(static) - log_odds(occluded)
    return lost


@pytest.fixture(scope="session")
def occlusion():
    """The reference above, for the gbm's and the hybrid's reason tests."""
    return occlusion_of


@dataclass(frozen=True)
class HandCustomer:
    """A customer whose inputs the tests set: the event types of their sequence, oldest
    first (a type outside the vocabulary is an unseen one), the raw static figures by name
    (the others 0), and what each input's reason must read, by event type (UNSEEN and
    NO_HISTORY for those tokens) or static name, before its direction."""

    events: tuple[str, ...]
    figures: dict[str, float]
    texts: dict[str, str]


UNSEEN, NO_RECENT_EVENT = "<unseen>", "<no history>"


@dataclass(frozen=True)
class HandCase:
    """Customers built by hand, as a model of a given manifest sees them, and the check of
    the reasons it gives them."""

    customers: tuple[HandCustomer, ...]

    def features(self, manifest: ModelManifest) -> Features:
        """The customers' model inputs; each event 3 days after the one before, the last 1
        day before the cutoff, purchases of 60."""
        width = manifest.sequence.max_len
        tokens = np.full((len(self.customers), width), PAD, dtype=np.int32)
        numeric = np.zeros((len(self.customers), width, 3), dtype=np.float32)
        for row, customer in enumerate(self.customers):
            n = len(customer.events)
            tokens[row, :n] = manifest.vocabulary.encode(np.array(customer.events, dtype=object))
            if n == 0:
                tokens[row, 0] = NO_HISTORY
            ages = 1 + 3 * np.arange(n)[::-1]
            gaps = np.r_[0, np.full(n - 1, 3)] if n else []
            target = manifest.sequence.target_event
            amounts = [60.0 if event == target else 0.0 for event in customer.events]
            numeric[row, :n] = np.log1p(np.column_stack([gaps, ages, amounts]))
        names = manifest.static_names
        figures = [[c.figures.get(name, 0.0) for name in names] for c in self.customers]
        return Features(
            customer_ids=np.array([f"hand{row}" for row in range(len(tokens))], dtype=object),
            tokens=tokens,
            numeric=numeric,
            static=np.log1p(np.array(figures)).astype(np.float32),
            static_names=names,
        )

    @staticmethod
    def texts(customer: HandCustomer, manifest: ModelManifest) -> list[str | None]:
        """What each input's reason must read for the customer: every token id (None where
        no reason may name it), then every static feature."""
        named_tokens = {UNKNOWN: UNSEEN, NO_HISTORY: NO_RECENT_EVENT}
        tokens = [
            named_tokens.get(token) or manifest.vocabulary.event_types[token - N_RESERVED]
            for token in range(UNKNOWN, manifest.vocabulary.size)
        ]
        return [None, *(customer.texts.get(t) for t in tokens)] + [
            customer.texts[name] for name in manifest.static_names
        ]

    def assert_reasons(
        self, reasons: pd.DataFrame, contributions: np.ndarray, manifest: ModelManifest
    ) -> None:
        """Each customer's reasons are their texts of the three inputs with the largest
        contributions by absolute value (`contributions`: a column per token id, then per
        static feature), each followed by its direction, and weigh as much; no reason holds
        a comma or names the boosted score."""
        for row, customer in enumerate(self.customers):
            texts = self.texts(customer, manifest)
            magnitude = np.nan_to_num(np.abs(contributions[row]))
            top = [i for i in np.argsort(-magnitude, kind="stable")[:3] if magnitude[i] > 0]
            assert top, f"customer {row}: the check needs reasons to check"
            directions = ["raises" if contributions[row, i] > 0 else "lowers" for i in top]
            expected = [f"{texts[i]} ({way})" for i, way in zip(top, directions, strict=True)]
            got = reasons.loc[row, REASON_COLUMNS[: len(top)]].tolist()
            assert got == expected
            np.testing.assert_allclose(
                reasons.loc[row, WEIGHT_COLUMNS[: len(top)]].to_numpy(dtype=np.float64),
                contributions[row, top],
                rtol=1e-4,
                atol=1e-6,
            )
            assert not any("," in text or "boosted" in text for text in got)


@pytest.fixture(scope="session")
def hand_case() -> HandCase:
    """Two customers of the synthetic event types: a busy shopper and one without events
    (inputs set by hand, not all of them ones a history could give)."""
    windows = (7, 30, 90, 365)
    counts = {"visit": (1, 4, 9, 30), "add_to_cart": (3, 5, 8, 20), "purchase": (0, 1, 2, 2)}
    synthetic_types = (
        "visit", "product_view", "add_to_cart", "purchase", "email_open", "email_click",
        "support_ticket",
    )  # fmt: skip

    def window_counts(counts: dict[str, tuple[int, ...]]) -> tuple[dict, dict]:
        figures, texts = {}, {}
        for event_type in synthetic_types:
            for days, n in zip(windows, counts.get(event_type, (0,) * 4), strict=True):
                figures[f"count_{event_type}_{days}d"] = n
                texts[f"count_{event_type}_{days}d"] = (
                    f"{n or 'no'} {event_type} in last {days} days"
                )
        return figures, texts

    shopper_counts, shopper_texts = window_counts(counts)
    shopper = HandCustomer(
        events=("add_to_cart",) * 3 + ("purchase", "brand_new", "add_to_cart") * 2,
        figures={
            "recency": 2.0, "frequency": 40.0, "monetary": 1234.4, "target_recency": 212.0,
            "tenure": 400.0, **shopper_counts,
        },
        texts={
            "add_to_cart": "5 add_to_cart among recent events",
            "purchase": "2 purchase among recent events",
            UNSEEN: "2 events of unseen types among recent events",
            "recency": "no event for 2 days",
            "frequency": "40 events in all",
            "monetary": "spent 1234 on purchase in all",
            "target_recency": "no purchase for 212 days",
            "tenure": "customer for 400 days",
            **shopper_texts,
        },
    )  # fmt: skip
    none_counts, none_texts = window_counts({})
    newcomer = HandCustomer(
        events=(),
        figures={"recency": 365.0, "target_recency": 365.0, **none_counts},
        texts={
            NO_RECENT_EVENT: "no event in the last 365 days",
            "recency": "no event for 365 days",
            "frequency": "no events in all",
            "monetary": "spent 0 on purchase in all",
            "target_recency": "no purchase for 365 days",
            "tenure": "customer for less than a day",
            **none_texts,
        },
    )  # fmt: skip
    return HandCase((shopper, newcomer))


def assert_same_scores_and_reasons(ours, theirs, features) -> None:
    """Two models (one rebuilt from the other's bytes) give the same propensities and the
    same reasons to the same customers."""
    first, second = (m.scores(features, with_reasons=True) for m in (ours, theirs))
    np.testing.assert_allclose(first["propensity"], second["propensity"], rtol=1e-6)
    pd.testing.assert_frame_equal(
        first.drop(columns="propensity"), second.drop(columns="propensity")
    )


@pytest.fixture(scope="session")
def same_scores_and_reasons():
    """The check above, for the tests of every kind stored and loaded again."""
    return assert_same_scores_and_reasons
