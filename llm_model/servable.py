"""What every servable model does, whatever its kind: build its inputs from events, score
them into calibrated propensities with the top reasons, and turn into bytes for the
registry."""

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from llm_model.manifest import ModelManifest
from llm_model.sequences import CustomerIds, Features, build_features


class ServableModel(ABC):
    manifest: ModelManifest

    @abstractmethod
    def raw_scores(self, features: Features) -> np.ndarray:
        """Uncalibrated probabilities."""

    @abstractmethod
    def raw_scores_with_reasons(self, features: Features) -> tuple[np.ndarray, pd.DataFrame]:
        """Uncalibrated probabilities and, per customer, reason_1..3 and their weights
        (llm_model.reasons.top_reasons)."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The fitted parameters as the registry stores them (never a pickle)."""

    def features(self, events: pd.DataFrame, customer_ids: CustomerIds, cutoff) -> Features:
        return build_features(
            events, customer_ids, cutoff, self.manifest.vocabulary, self.manifest.sequence
        )

    def propensity(self, features: Features) -> np.ndarray:
        return self.manifest.calibrator.transform(self.raw_scores(features))

    def scores(self, features: Features, with_reasons: bool) -> pd.DataFrame:
        """customer_id, calibrated propensity and (optionally) the top three reasons with
        their weights."""
        if with_reasons:
            raw, reasons = self.raw_scores_with_reasons(features)
        else:
            raw, reasons = self.raw_scores(features), pd.DataFrame(index=range(len(features)))
        frame = pd.DataFrame(
            {
                "customer_id": features.customer_ids,
                "propensity": self.manifest.calibrator.transform(raw),
            }
        )
        return pd.concat([frame, reasons], axis=1)
