"""Fit every contender (the recurrent model, the static models and the recurrent model on
top of the boosted one) on the same training snapshots, calibrate the recurrent ones, and
compare them all on the temporal holdout with the champion and the recency reference."""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from llm_model import metrics
from llm_model.attribution import INFERENCE_BATCH
from llm_model.baselines import RecencyReference, StaticModel, fit_static_model
from llm_model.buckets import bucketed_dataset
from llm_model.calibration import EPS, choose_calibrator, log_odds
from llm_model.drift import SCORE, DriftReference, reference_bins
from llm_model.hybrid import (
    BOOSTER_KIND,
    N_FOLDS,
    HybridModel,
    out_of_fold_log_odds,
    with_boosted_score,
)
from llm_model.inputs import TrainingInputs, training_inputs
from llm_model.kinds import STATIC_KINDS, hybrid_kind
from llm_model.level import Level, forecast_level
from llm_model.manifest import (
    ModelConfig,
    ModelManifest,
    ModelMetrics,
    TrainingData,
    TrainingPlan,
    ValueMetrics,
)
from llm_model.metrics import VALUE_METRIC
from llm_model.model import (
    TrainedModel,
    build_model,
    predict,
    probability_function,
    use_inter_op_threads,
)
from llm_model.progress import TrainingProgress
from llm_model.selection import CHAMPION, Evaluation
from llm_model.sequences import (
    Features,
    SequenceConfig,
    Snapshot,
    TrainingSet,
)
from llm_model.servable import ServableModel
from llm_model.value import (
    ZILN,
    ValueContenders,
    ValuedModel,
    ValueModel,
    evaluate_values,
    fit_value_contenders,
    global_drivers,
    level_scale,
    require_spenders,
    scale_to,
)
from llm_model.ziln import ZilnValueModel


def customer_hash(customer_ids: np.ndarray) -> np.ndarray:
    """A stable hash per customer id, the same on every run and host."""
    return pd.util.hash_array(np.asarray(customer_ids, dtype=object))


def validation_mask(customer_ids: np.ndarray, share: float) -> np.ndarray:
    """Hold out whole customers (all their snapshots) so validation never sees their past."""
    return (customer_hash(customer_ids) % 10_000) < int(share * 10_000)


def calibration_split(training: TrainingSet) -> tuple[TrainingSet, Snapshot]:
    """The training set whose holdout keeps half of the holdout customers, and the other
    half, on which the calibrators are chosen: the reported and promoted figures come from
    customers the choice never saw. The halves use bits of the hash the validation split
    does not, so neither half gathers the validation customers."""
    holdout = training.holdout
    chooses = (customer_hash(holdout.features.customer_ids) >> np.uint64(32)) % 2 == 1
    reported, judge = (holdout.take(np.flatnonzero(rows)) for rows in (~chooses, chooses))
    return replace(training, holdout=reported), judge


def validation_split(train: Snapshot, share: float) -> tuple[Snapshot, Snapshot]:
    """The part the network fits and the customers it validates on (early stopping and
    calibration)."""
    held = validation_mask(train.features.customer_ids, share)
    fit_part, validation = (train.take(np.flatnonzero(rows)) for rows in (~held, held))
    if fit_part.labels.sum() == 0 or validation.labels.sum() == 0:
        raise ValueError("too few positive labels to train and validate: nothing to learn")
    return fit_part, validation


# What a network's fit shows: Keras' own verbosity (0: nothing), or a function of the
# network's name that gives the callback showing its fit while entered (TrainingProgress).
Verbosity = int | str | Callable[[str], TrainingProgress]


def fit_network(
    fit_part: Snapshot,
    validation: Snapshot,
    vocab_size: int,
    config: ModelConfig,
    verbose: Verbosity,
    name: str,
    spend: bool = False,
) -> keras.Model:
    """The network `name` fitted with early stopping on the validation customers;
    deterministic under the config's seed. With `spend`, the ZILN network fitted on the
    snapshots' spend instead of their labels."""
    use_inter_op_threads()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    static = fit_part.features.static
    targets, validation_targets = (
        (fit_part.values, validation.values) if spend else (fit_part.labels, validation.labels)
    )
    network = build_model(
        config,
        vocab_size=vocab_size,
        static_mean=static.mean(axis=0),
        static_variance=np.maximum(static.var(axis=0), 1e-6),
        base_rate=float((targets > 0).mean()),
        mean_spend=float(targets[targets > 0].mean()) if spend else None,
    )
    stop_early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    progress = verbose(name) if callable(verbose) else None
    with progress or nullcontext():
        network.fit(
            bucketed_dataset(fit_part.features, targets, config.batch_size, config.seed),
            validation_data=bucketed_dataset(
                validation.features, validation_targets, INFERENCE_BATCH
            ),
            epochs=config.epochs,
            callbacks=[stop_early] if progress is None else [stop_early, progress],
            shuffle=False,  # the dataset reshuffles its batches itself
            verbose=verbose if progress is None else 0,
        )
    return network


def fit_model(
    training: TrainingSet,
    judge: Snapshot,
    config: ModelConfig,
    sequence_config: SequenceConfig,
    verbose: Verbosity = "auto",
    name: str | None = None,
) -> tuple[TrainedModel, dict[str, float]]:
    """Train on a customer split of the training snapshots; choose the calibrator fitted on
    the validation customers by its log loss on `judge`, the holdout half kept for it.
    `name` (default: the cell) names the network in its progress."""
    fit_part, validation = validation_split(training.train, config.validation_share)
    network = fit_network(
        fit_part, validation, training.vocab.size, config, verbose, name or config.cell
    )
    static_names = training.train.features.static_names
    probability = probability_function(network, sequence_config.max_len, len(static_names))
    calibrator, calibration_report = choose_calibrator(
        validation.labels,
        predict(probability, validation.features),
        judge.labels,
        predict(probability, judge.features),
    )
    manifest = ModelManifest.for_training(
        training, sequence_config, config.cell, calibrator, network=config
    )
    return TrainedModel(network=network, manifest=manifest), calibration_report


def fit_hybrid(
    training: TrainingSet,
    judge: Snapshot,
    booster: StaticModel,
    config: ModelConfig,
    sequence_config: SequenceConfig,
    verbose: Verbosity = "auto",
    n_folds: int = N_FOLDS,
) -> tuple[HybridModel, dict[str, float]]:
    """The recurrent model fitted as fit_model fits it (early stopping on the validation
    customers, the calibrator chosen on `judge`) with one more static input: the booster's
    log-odds, out of fold on the training rows, and those of `booster` (fitted on every
    training row) on `judge`."""
    train = training.train
    boosted = replace(
        training,
        train=Snapshot(
            train.cutoff,
            with_boosted_score(train.features, out_of_fold_log_odds(train, config.seed, n_folds)),
            train.labels,
        ),
    )
    boosted_judge = Snapshot(
        judge.cutoff,
        with_boosted_score(judge.features, log_odds(booster.raw_scores(judge.features))),
        judge.labels,
    )
    corrector, calibration = fit_model(
        boosted, boosted_judge, config, sequence_config, verbose, hybrid_kind(config.cell)
    )
    manifest = replace(
        corrector.manifest,
        kind=hybrid_kind(config.cell),
        static_names=train.features.static_names,
        static_mean=booster.manifest.static_mean,
    )
    return HybridModel(corrector.network, booster, manifest), calibration


def fit_ziln(
    training: TrainingSet, config: ModelConfig, max_len: int, verbose: Verbosity = "auto"
) -> ZilnValueModel:
    """The recurrent network with the zero-inflated lognormal head, on the training
    snapshots' spend, with early stopping on the same validation customers."""
    train = training.train
    require_spenders(train)
    fit_part, validation = validation_split(train, config.validation_share)
    network = fit_network(
        fit_part, validation, training.vocab.size, config, verbose, ZILN, spend=True
    )
    return ZilnValueModel(network, max_len)


def with_ziln(
    values: ValueContenders, training: TrainingSet, plan: TrainingPlan, verbose: Verbosity
) -> ValueContenders:
    """The value contenders with the ZILN network, or the reason it could not be trained."""
    try:
        model = fit_ziln(training, plan.network, plan.sequence.max_len, verbose)
    except ValueError as error:
        return replace(values, failures={**values.failures, ZILN: str(error)})
    return replace(values, models={**values.models, ZILN: model})


@dataclass(frozen=True)
class Contenders:
    """The models a retrain fitted, by kind, the calibrators' holdout log loss of the
    recurrent ones (by method for the plain one, by "kind method" for the hybrid), and why
    any kind could not be trained."""

    models: dict[str, ServableModel]
    calibration: dict[str, float]
    failures: dict[str, str]


def fit_contenders(
    training: TrainingSet,
    judge: Snapshot,
    config: ModelConfig,
    sequence_config: SequenceConfig,
    verbose: Verbosity = "auto",
    hybrid: bool = True,
) -> Contenders:
    """Every servable kind on the same snapshots: with `hybrid`, also the recurrent model
    on top of the gbm contender; the recurrent ones are calibrated on `judge`. One that
    cannot be trained (one class in its data, too few positives to validate, no gbm to
    build on) is reported and skipped; none at all is an error."""
    models, failures, calibration = {}, {}, {}
    try:
        recurrent, calibration = fit_model(training, judge, config, sequence_config, verbose)
        models[config.cell] = recurrent
    except ValueError as error:
        failures[config.cell] = str(error)
    for kind in STATIC_KINDS:
        try:
            models[kind] = fit_static_model(kind, training, sequence_config, config.seed)
        except ValueError as error:
            failures[kind] = str(error)
    if hybrid:
        kind = hybrid_kind(config.cell)
        try:
            if BOOSTER_KIND not in models:
                raise ValueError(f"no {BOOSTER_KIND} contender to build on")
            models[kind], report = fit_hybrid(
                training, judge, models[BOOSTER_KIND], config, sequence_config, verbose
            )
            calibration.update({f"{kind} {method}": loss for method, loss in report.items()})
        except ValueError as error:
            failures[kind] = str(error)
    if not models:
        reasons = "; ".join(f"{kind}: {reason}" for kind, reason in failures.items())
        raise ValueError(f"no contender could be trained ({reasons})")
    return Contenders(models, calibration, failures)


def evaluate(
    contenders: dict[str, ServableModel],
    training: TrainingSet,
    champion_scores: np.ndarray | None = None,
) -> Evaluation:
    """Score every contender and the recency reference on the same temporal holdout, beside
    the champion's scores of it (in the holdout's row order)."""
    holdout = training.holdout
    scores = {}
    for kind, model in contenders.items():
        raw = model.raw_scores(holdout.features)
        scores[kind] = model.manifest.calibrator.transform(raw)
        if kind not in STATIC_KINDS:
            scores[f"{kind}_raw"] = np.clip(raw, EPS, 1 - EPS)
    scores["recency"] = RecencyReference.fit(training.train).propensity(holdout.features)
    if champion_scores is not None:
        scores[CHAMPION] = champion_scores
    table = {name: metrics.summary(holdout.labels, score) for name, score in scores.items()}
    return Evaluation(
        table=table, contenders=tuple(contenders), labels=holdout.labels, scores=scores
    )


def population_scores(contenders: Contenders, population: Features) -> dict[str, np.ndarray]:
    """Every contender's calibrated scores of the customers at the retrain's data cutoff."""
    return {kind: model.propensity(population) for kind, model in contenders.models.items()}


def with_drift_references(
    contenders: Contenders, population: Features, scores: dict[str, np.ndarray]
) -> Contenders:
    """Every contender with the reference its score runs measure drift against: the static
    features and its calibrated `scores` of the customers as they were at the retrain's data
    cutoff. That is the population the runs that follow score, as it looked when the model
    was made: a run on the same date finds no drift, where a labelled snapshot, older by the
    horizon, made every customer's tenure and recency look shifted. Its scores are out of
    sample, as scoring's are (no row of it was trained on: its labels lie in the future)."""
    names = (*population.static_names, SCORE)
    features = tuple(reference_bins(column) for column in population.static.T)
    models = {}
    for kind, model in contenders.models.items():
        reference = DriftReference(names, (*features, reference_bins(scores[kind])))
        models[kind] = replace(model, manifest=replace(model.manifest, drift_reference=reference))
    return replace(contenders, models=models)


@dataclass(frozen=True)
class RetrainResult:
    """The contenders and their evaluation; the value contenders, the reported holdout they
    are judged on, the holdout half that puts them on its level, the champion's expected
    values of the reported customers (None without a champion's value model), the
    customers at the data cutoff with every contender's scores of them, and the level
    forecast for their next horizon (None without spend in the holdout)."""

    contenders: Contenders
    evaluation: Evaluation
    data: TrainingData
    values: ValueContenders
    holdout: Snapshot
    judge: Snapshot
    population: Features
    population_scores: dict[str, np.ndarray]
    level: Level | None
    champion_values: np.ndarray | None = None

    def metrics(
        self,
        registered: str,
        metric: str,
        champion_version_id: int | None,
        value: ValueMetrics | None = None,
    ) -> ModelMetrics:
        """What the registry keeps of this retrain's evaluation, beside the contender
        `registered` (the winner by `metric`, unless a benchmark asks for another)."""
        return ModelMetrics(
            table=self.evaluation.table,
            contenders=self.evaluation.contenders,
            winner=registered,
            selection_metric=metric,
            data=self.data,
            champion_version_id=champion_version_id,
            calibration_log_loss=self.contenders.calibration,
            skipped_contenders=self.contenders.failures,
            value=value,
        )

    def valued(
        self, contender: str, value_kind: str | None = None
    ) -> tuple[ServableModel, ValueMetrics]:
        """The contender with the value model that serves best beside it (or the one of
        `value_kind`, where a benchmark asks for it): the value models judged on the
        holdout's realized spend, the two-stage one through this contender's own
        probabilities. Without a value model that can be judged (no spend in the holdout,
        none trained), the contender alone, and why."""
        model = self.contenders.models[contender]
        skipped = dict(self.values.failures)
        if not self.values.models:
            return model, ValueMetrics({}, (), None, skipped=skipped)
        propensity = self.evaluation.scores[contender]
        judged = model.propensity(self.judge.features)
        scales = {
            kind: level_scale(value, self.judge, judged)
            for kind, value in self.values.models.items()
        }
        try:
            evaluation = evaluate_values(
                self.values.models, self.holdout, propensity, self.champion_values, scales
            )
        except ValueError as error:
            reason = f"not judged on the holdout: {error}"
            skipped.update({kind: reason for kind in self.values.models})
            return model, ValueMetrics({}, (), None, skipped=skipped)
        winner = value_kind if value_kind in self.values.models else evaluation.winner(VALUE_METRIC)
        value = self.values.models[winner]
        scale = self.served_scale(contender, value)
        drivers = global_drivers(value, self.holdout.features, propensity)
        drivers = {name: moved * scale for name, moved in drivers.items()}
        metrics = ValueMetrics(
            evaluation.table, evaluation.contenders, winner, drivers, skipped, self.level
        )
        return ValuedModel.of(model, value, scale), metrics

    def served_scale(self, contender: str, value: ValueModel) -> float:
        """The factor that puts `value` beside `contender` on the level forecast for the
        customers at the data cutoff."""
        if self.level is None:
            return 1.0
        propensity = self.population_scores[contender]
        return scale_to(self.level.total, value, self.population, propensity)


def on_rows_of(features: Features, customer_ids: np.ndarray) -> Features:
    """`features`' rows of these customers, in their order (every one must have a row)."""
    rows = pd.Index(features.customer_ids).get_indexer(customer_ids)
    if (rows < 0).any():
        raise ValueError("the champion's holdout features miss holdout customers")
    return features.take(rows)


def train_on(
    inputs: TrainingInputs,
    as_of: pd.Timestamp,
    plan: TrainingPlan,
    champion: ServableModel | None = None,
    verbose: Verbosity = "auto",
) -> RetrainResult:
    """Every contender trained on the inputs' training snapshots and judged, beside the
    champion, on the holdout half the calibrators' choice never saw."""
    training, judge = calibration_split(inputs.training)
    contenders = fit_contenders(training, judge, plan.network, plan.sequence, verbose, plan.hybrid)
    values = with_ziln(
        fit_value_contenders(training.train, plan.network.seed), training, plan, verbose
    )
    champion_scores = champion_values = None
    if champion is not None:
        reported = training.holdout.features.customer_ids
        scored = champion.scores(on_rows_of(inputs.champion_holdout, reported), False)
        champion_scores = scored["propensity"].to_numpy()
        if "expected_value" in scored:
            champion_values = scored["expected_value"].to_numpy()
    evaluation = evaluate(contenders.models, training, champion_scores)
    scores = population_scores(contenders, inputs.reference)
    contenders = with_drift_references(contenders, inputs.reference, scores)
    data = TrainingData(
        as_of=str(as_of),
        n_events=inputs.n_events,
        train_cutoffs=tuple(str(c) for c in training.train_cutoffs),
        holdout_cutoff=str(training.holdout.cutoff),
        n_train=len(training.train.labels),
        n_holdout=len(training.holdout.labels),
        n_calibration=len(judge.labels),
        train_base_rate=float(training.train.labels.mean()),
        holdout_base_rate=float(training.holdout.labels.mean()),
        vocabulary=training.vocab.event_types,
        skipped_cutoffs=tuple(str(c) for c in training.skipped_cutoffs),
        n_customers=inputs.n_customers,
        population=inputs.population,
        first_event=str(inputs.first_event),
    )
    return RetrainResult(
        contenders,
        evaluation,
        data,
        values,
        training.holdout,
        judge,
        inputs.reference,
        scores,
        level_of(inputs, plan),
        champion_values,
    )


def level_of(inputs: TrainingInputs, plan: TrainingPlan) -> Level | None:
    """The level forecast of the inputs' customers at the data cutoff, its forecasters
    judged on the spend realized in the holdout's label window."""
    realized = inputs.training.holdout.values
    if realized is None:
        return None
    return forecast_level(inputs.level, float(realized.sum()), plan.sequence.horizon_days)


def train_and_evaluate(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    plan: TrainingPlan,
    champion: ServableModel | None = None,
    verbose: Verbosity = "auto",
) -> RetrainResult:
    """train_on every customer's events in one frame."""
    manifest = champion.manifest if champion is not None else None
    inputs = training_inputs(events, as_of, plan, manifest)
    return train_on(inputs, as_of, plan, champion, verbose)
