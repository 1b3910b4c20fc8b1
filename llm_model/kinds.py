"""Every kind of model the service trains and serves, by name, and how each is rebuilt from
the bytes the registry keeps."""

from typing import TYPE_CHECKING, Literal, get_args

from llm_model.tensorflow_log import load_tensorflow_quietly

if TYPE_CHECKING:
    from llm_model.manifest import ModelManifest
    from llm_model.servable import ServableModel

CellName = Literal["gru", "lstm"]
RECURRENT_KINDS: tuple[CellName, ...] = get_args(CellName)
STATIC_KINDS = ("logistic", "gbm")
HYBRID_KINDS = tuple(f"{cell}_hybrid" for cell in RECURRENT_KINDS)
KINDS = (*RECURRENT_KINDS, *HYBRID_KINDS, *STATIC_KINDS)


class UnknownKind(ValueError):
    pass


def hybrid_kind(cell: CellName) -> str:
    return f"{cell}_hybrid"


def load_servable(artifact: bytes, manifest: "ModelManifest") -> "ServableModel":
    if manifest.value_kind is not None:
        from dataclasses import replace

        from llm_model.value import ValuedModel, unpack_valued

        propensity, value = unpack_valued(artifact, manifest)
        model = load_servable(propensity, replace(manifest, value_kind=None))
        return ValuedModel(model, value, manifest)
    # Each kind's module is imported when a model of that kind is loaded: the networks' load
    # TensorFlow, seconds that serving a static model does not spend.
    if manifest.kind in STATIC_KINDS:
        from llm_model.baselines import StaticModel

        return StaticModel.from_artifact(artifact, manifest)
    load_tensorflow_quietly()
    if manifest.kind in RECURRENT_KINDS:
        from llm_model.model import TrainedModel

        return TrainedModel.from_artifact(artifact, manifest)
    if manifest.kind in HYBRID_KINDS:
        from llm_model.hybrid import HybridModel

        return HybridModel.from_artifact(artifact, manifest)
    raise UnknownKind(
        f"model kind {manifest.kind!r} is unknown to this version of the service "
        f"(it serves {', '.join(KINDS)}): run the version that trained it, or retrain"
    )
