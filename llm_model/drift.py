"""Whether the customers a run scores look like the ones its model was trained on: quantile
bins of a reference population per static feature and for the score, the share of a run's
customers in each bin, and the population stability index (PSI) between the two.

PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at
SHARE_FLOOR so that a bin empty on either side keeps it finite. A common reading: below
0.1 stable, 0.1 to 0.2 a moderate shift, above 0.2 a large one.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

N_BINS = 10
# An empty bin counts as this share: the index stays finite, and one that fills from empty
# to 1% of the rows adds 0.01 * ln(100) = 0.046.
SHARE_FLOOR = 1e-4
# The drift row of the calibrated score, beside those named by the static features.
SCORE = "propensity"
# Static features that grow with the days since the reference for every customer who stays
# (a closed population shifts by construction): measured and stored, never an alarm.
GROWS_WITH_TIME = frozenset({"tenure"})


@dataclass(frozen=True)
class Bins:
    """Right-closed bins (-inf, e1], (e1, e2], ..., (ek, inf) cut at `edges`, and the share
    of the reference rows in each."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]


def bin_counts(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Rows per bin of the bins cut at `edges`: len(edges) + 1 counts."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def bin_shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total == 0:
        raise ValueError("no rows to measure drift on")
    return counts / total


def reference_bins(values: np.ndarray, n_bins: int = N_BINS) -> Bins:
    """Bins cut at the n_bins-quantiles of `values` (values themselves, so a count falls on
    one side of a cut); a value that many rows share cuts once, so a feature that is mostly
    zero gets fewer bins, and a constant one two: up to its value and above it."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a drift reference needs at least one row")
    quantiles = np.quantile(values, np.arange(1, n_bins) / n_bins, method="lower")
    edges = tuple(float(edge) for edge in np.unique(quantiles))
    shares = bin_shares(bin_counts(values, edges))
    return Bins(edges, tuple(float(share) for share in shares))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of `actual` shares against `expected` ones (same
    bins); 0 for equal shares, never negative."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), SHARE_FLOOR)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class BinCounts:
    """Rows per bin of every column of a reference, in its order: what a partition of a score
    run counts, summed over its partitions."""

    counts: tuple[np.ndarray, ...]

    def __add__(self, other: "BinCounts") -> "BinCounts":
        return BinCounts(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))


@dataclass(frozen=True)
class DriftReference:
    """Bins of each static feature, by name in the model's column order, then of the score
    (named SCORE)."""

    names: tuple[str, ...]
    bins: tuple[Bins, ...]

    def counts(self, static: np.ndarray, scores: np.ndarray) -> BinCounts:
        """Rows per bin of these customers' static features (columns in the reference's
        order) and scores."""
        columns = [*np.asarray(static).T, scores]
        return BinCounts(
            tuple(
                bin_counts(column, bins.edges)
                for column, bins in zip(columns, self.bins, strict=True)
            )
        )

    def psi(self, counts: BinCounts) -> dict[str, float]:
        """PSI per column, by name, of the rows counted against the reference."""
        return {
            name: psi(np.array(bins.shares), bin_shares(count))
            for name, bins, count in zip(self.names, self.bins, counts.counts, strict=True)
        }

    def to_json(self) -> list[dict[str, Any]]:
        # A list, not an object: the order is the static features' column order.
        return [
            {"name": name, "edges": list(bins.edges), "shares": list(bins.shares)}
            for name, bins in zip(self.names, self.bins, strict=True)
        ]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> "DriftReference":
        return cls(
            names=tuple(str(column["name"]) for column in data),
            bins=tuple(
                Bins(
                    tuple(float(edge) for edge in column["edges"]),
                    tuple(float(share) for share in column["shares"]),
                )
                for column in data
            ),
        )
