"""Every kind of model the service trains and serves, and how each is rebuilt from the
bytes the registry keeps."""

from llm_model.baselines import STATIC_KINDS, StaticModel
from llm_model.hybrid import HYBRID_KINDS, HybridModel
from llm_model.manifest import ModelManifest
from llm_model.model import TrainedModel
from llm_model.servable import ServableModel

RECURRENT_KINDS = ("gru", "lstm")
KINDS = (*RECURRENT_KINDS, *HYBRID_KINDS, *STATIC_KINDS)


class UnknownKind(ValueError):
    pass


def load_servable(artifact: bytes, manifest: ModelManifest) -> ServableModel:
    if manifest.kind in RECURRENT_KINDS:
        return TrainedModel.from_artifact(artifact, manifest)
    if manifest.kind in HYBRID_KINDS:
        return HybridModel.from_artifact(artifact, manifest)
    if manifest.kind in STATIC_KINDS:
        return StaticModel.from_artifact(artifact, manifest)
    raise UnknownKind(
        f"model kind {manifest.kind!r} is unknown to this version of the service "
        f"(it serves {', '.join(KINDS)}): run the version that trained it, or retrain"
    )
