"""Every kind is rebuilt from the bytes the registry keeps: static models through skops'
safe loader (only trusted types), recurrent ones from their .keras file, and a kind this
version does not know is refused by name."""

import dataclasses
import io
import json
import math
import zipfile

import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from llm_model.baselines import TRUSTED_TYPES, StaticModel, UntrustedArtifact
from llm_model.kinds import UnknownKind, load_servable
from llm_model.manifest import ModelManifest
from llm_model.model import TrainedModel


def through_json(manifest: ModelManifest) -> ModelManifest:
    return ModelManifest.from_json(json.loads(json.dumps(manifest.to_json())))


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_a_static_model_scores_and_explains_the_same_after_storage(training, static_models, kind):
    model = static_models[kind]
    artifact = model.to_bytes()
    assert "schema.json" in zipfile.ZipFile(io.BytesIO(artifact)).namelist()  # skops, no pickle

    loaded = load_servable(artifact, through_json(model.manifest))

    assert isinstance(loaded, StaticModel)
    assert loaded.manifest == model.manifest
    features = training.holdout.features
    pd.testing.assert_frame_equal(
        loaded.scores(features, with_reasons=True), model.scores(features, with_reasons=True)
    )


def test_a_recurrent_model_loads_as_a_trained_model(training, trained):
    loaded = load_servable(trained.to_bytes(), through_json(trained.manifest))
    assert isinstance(loaded, TrainedModel)
    features = training.holdout.features
    pd.testing.assert_frame_equal(
        loaded.scores(features, with_reasons=False),
        trained.scores(features, with_reasons=False),
        rtol=1e-6,
    )


def zip_without_schema() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.bin", b"\x00" * 8)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "artifact",
    [b"", b"not a skops file", zip_without_schema()],
    ids=["empty", "text", "zip-without-schema"],
)
def test_bytes_that_are_no_skops_file_are_refused_in_one_line(static_models, artifact):
    manifest = static_models["gbm"].manifest
    with pytest.raises(UntrustedArtifact, match=r"^gbm artifact is not a skops file") as raised:
        load_servable(artifact, manifest)
    assert "\n" not in str(raised.value)


def test_a_keras_file_registered_as_a_static_kind_is_refused(static_models, trained):
    with pytest.raises(UntrustedArtifact, match=r"^logistic artifact is not a skops file"):
        load_servable(trained.to_bytes(), static_models["logistic"].manifest)


def test_a_skops_file_with_an_untrusted_type_is_refused_naming_it(static_models):
    pipeline = make_pipeline(FunctionTransformer(func=math.sqrt), LogisticRegression())
    artifact = skops.io.dumps(pipeline)
    # The premise: skops itself would not rebuild math.sqrt, nor does the service trust it.
    assert skops.io.get_untrusted_types(data=artifact) == ["math.sqrt"]
    assert "math.sqrt" not in TRUSTED_TYPES

    with pytest.raises(UntrustedArtifact, match=r"does not trust: math\.sqrt$") as raised:
        load_servable(artifact, static_models["logistic"].manifest)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("kind", ["xgboost", "GRU", ""])
def test_an_unknown_kind_is_refused_naming_it(static_models, kind):
    model = static_models["logistic"]
    manifest = dataclasses.replace(model.manifest, kind=kind)
    with pytest.raises(UnknownKind, match=f"model kind {kind!r} is unknown"):
        load_servable(model.to_bytes(), manifest)


def test_a_boosting_model_without_its_training_means_is_refused(static_models):
    """Occlusion measures from the training means: without them no reason can be given."""
    gbm = static_models["gbm"]
    bare = dataclasses.replace(gbm.manifest, static_mean=())
    with pytest.raises(ValueError, match=r"gbm manifest has 0 training means for \d+ static"):
        load_servable(gbm.to_bytes(), bare)
