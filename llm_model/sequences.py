"""Point-in-time model inputs: event sequences, static RFM features, labels and snapshots.

A snapshot at cutoff ``t`` describes every customer as they looked at ``t``: features use only
events with ``occurred_at <= t``, the label is whether a ``target_event`` happened in
``(t, t + horizon_days]``. The static features cover a customer's whole history up to ``t``; only
the event sequence is bounded, by ``max_len`` and (when set) ``lookback_days``: events in
``(t - lookback_days, t]``. Training uses several
cutoffs ``stride_days`` apart; the newest one, whose label window ends exactly at ``as_of``, is
the temporal holdout, and the vocabulary is fit only on events up to the newest training cutoff.

Timestamps are naive UTC, handled as int64 microseconds since the epoch: comparisons against
the cutoff are exact and a far-future sentinel date in the source cannot overflow.

Everything is vectorised: events are validated and sorted once by (customer, time), so each
customer's history is one contiguous run and a snapshot is a mask, a gather and a few scatters.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PAD, UNKNOWN, NO_HISTORY = 0, 1, 2
N_RESERVED = 3
EVENT_COLUMNS = ("customer_id", "event_type", "occurred_at", "amount")
NUMERIC_NAMES = ("log_gap_days", "log_age_days", "log_amount")
BASE_STATIC_NAMES = ("recency", "frequency", "monetary", "target_recency", "tenure")
# Days used as "since ever" for recency without history when there is no lookback to bound it.
NO_HISTORY_DAYS = 3650
US_PER_DAY = 86_400 * 1_000_000

CustomerIds = Sequence[str] | np.ndarray | pd.Series | pd.Index


@dataclass(frozen=True)
class SequenceConfig:
    """How snapshots are cut and encoded.

    ``max_len`` and ``lookback_days`` (None: no bound) bound only the event sequence; the static
    features use the whole history at or before the cutoff.
    """

    max_len: int = 50
    target_event: str = "purchase"
    horizon_days: int = 30
    windows_days: tuple[int, ...] = (7, 30, 90, 365)
    lookback_days: int | None = 365

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {self.horizon_days}")
        if any(w <= 0 for w in self.windows_days):
            raise ValueError(f"windows_days must all be > 0, got {self.windows_days}")
        if self.lookback_days is not None and self.lookback_days <= 0:
            raise ValueError(f"lookback_days must be > 0 or None, got {self.lookback_days}")
        if not self.target_event:
            raise ValueError("target_event must be a non-empty event type")

    @property
    def no_history_days(self) -> int:
        """Days since the last (target) event reported for a customer without one."""
        return self.lookback_days or NO_HISTORY_DAYS


@dataclass(frozen=True)
class Vocabulary:
    """Event types known at training time; ids start after PAD, UNKNOWN and NO_HISTORY."""

    event_types: tuple[str, ...]

    def __post_init__(self) -> None:
        if list(self.event_types) != sorted(set(self.event_types)):
            raise ValueError("Vocabulary.event_types must be sorted and unique")

    @classmethod
    def fit(cls, events: pd.DataFrame) -> "Vocabulary":
        """The event types present in ``events``: pass TRAINING events only."""
        _check_columns(events)
        return cls.of_types(events["event_type"].dropna().unique())

    @classmethod
    def of_types(cls, event_types: Iterable[str | None]) -> "Vocabulary":
        """The vocabulary of these event types seen in training (nulls left out)."""
        return cls(tuple(sorted({str(t) for t in event_types if t is not None})))

    def encode(self, event_types: np.ndarray | pd.Series) -> np.ndarray:
        """Token ids (int32); types not in the vocabulary, and nulls, become UNKNOWN."""
        index = pd.Index(self.event_types, dtype=object).get_indexer(np.asarray(event_types))
        return np.where(index >= 0, index + N_RESERVED, UNKNOWN).astype(np.int32)

    @property
    def size(self) -> int:
        """Number of token ids including the reserved ones: the Embedding ``input_dim``."""
        return N_RESERVED + len(self.event_types)

    def to_dict(self) -> dict:
        return {"event_types": list(self.event_types)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(tuple(d["event_types"]))


@dataclass(frozen=True, eq=False)
class Features:
    """Model inputs for ``n`` customers, row ``i`` describing ``customer_ids[i]``.

    ``tokens`` (int32, n x max_len): the last ``max_len`` events in the lookback, oldest first,
    PAD on the right; ``[NO_HISTORY, PAD, ...]`` for a customer without any.
    ``numeric`` (float32, n x max_len x 3, 0 on padding), see ``NUMERIC_NAMES``: log1p days
    since the previous event in the lookback (0 for the first one; a predecessor dropped by
    truncation still counts), log1p days from the event to the cutoff, and log1p amount
    (0 where NaN; signed, so refunds stay finite).
    ``static`` (float32, n x len(static_names)): see ``static_names()``.
    """

    customer_ids: np.ndarray
    tokens: np.ndarray
    numeric: np.ndarray
    static: np.ndarray
    static_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.customer_ids)

    def take(self, index: np.ndarray) -> "Features":
        """The rows at ``index`` (positions or a boolean mask)."""
        return Features(
            customer_ids=self.customer_ids[index],
            tokens=self.tokens[index],
            numeric=self.numeric[index],
            static=self.static[index],
            static_names=self.static_names,
        )

    @staticmethod
    def concat(parts: list["Features"]) -> "Features":
        if not parts:
            raise ValueError("Features.concat needs at least one part")
        if len({p.static_names for p in parts}) > 1 or len({p.tokens.shape[1] for p in parts}) > 1:
            raise ValueError("Features.concat parts differ in static features or max_len")
        return Features(
            customer_ids=np.concatenate([p.customer_ids for p in parts]),
            tokens=np.concatenate([p.tokens for p in parts]),
            numeric=np.concatenate([p.numeric for p in parts]),
            static=np.concatenate([p.static for p in parts]),
            static_names=parts[0].static_names,
        )


def non_finite_inputs(features: Features) -> tuple[tuple[str, ...], np.ndarray]:
    """The inputs, by name, holding a value that is not finite, and the customers whose rows
    hold one: a model turns such rows into NaN scores."""
    bad = np.concatenate(
        [~np.isfinite(features.numeric).all(axis=1), ~np.isfinite(features.static)], axis=1
    )
    names = np.array([*NUMERIC_NAMES, *features.static_names], dtype=object)
    return tuple(names[bad.any(axis=0)]), features.customer_ids[bad.any(axis=1)]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Customers existing at ``cutoff`` (sorted by id), their features, labels and realized
    spend: the sum of their target events' amounts in the label window (refunds net, never
    below 0, a missing amount counts 0; None where only labels were built)."""

    cutoff: pd.Timestamp
    features: Features
    labels: np.ndarray
    values: np.ndarray | None = None

    def take(self, index: np.ndarray) -> "Snapshot":
        """The rows at ``index`` (positions or a boolean mask)."""
        values = None if self.values is None else self.values[index]
        return Snapshot(self.cutoff, self.features.take(index), self.labels[index], values)

    @staticmethod
    def concat(cutoff: pd.Timestamp, parts: Sequence["Snapshot"]) -> "Snapshot":
        """The parts' rows in order, labelled as of ``cutoff``."""
        has_values = all(part.values is not None for part in parts)
        return Snapshot(
            cutoff=cutoff,
            features=Features.concat([part.features for part in parts]),
            labels=np.concatenate([part.labels for part in parts]),
            values=np.concatenate([part.values for part in parts]) if has_values else None,
        )


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """Training snapshots concatenated, the temporal holdout, and the vocabulary fit for both.

    ``train_cutoffs`` are the training cutoffs used, oldest first; ``skipped_cutoffs`` the older
    ones left out because no customer existed yet (no event at or before them).
    """

    train: Snapshot
    holdout: Snapshot
    train_cutoffs: tuple[pd.Timestamp, ...]
    vocab: Vocabulary
    skipped_cutoffs: tuple[pd.Timestamp, ...] = ()


@dataclass(frozen=True, eq=False)
class _Events:
    """Validated events as arrays, sorted by (customer, time, type, amount).

    The sort makes each customer's events one contiguous chronological run, and the tie-breaks
    make the output independent of the input row order.
    """

    customers: np.ndarray  # unique customer ids, sorted; ``customer`` indexes into it
    customer: np.ndarray
    types: np.ndarray  # unique event types, sorted; ``type`` indexes into it, -1 for null
    type: np.ndarray
    ts: np.ndarray  # int64 microseconds since the epoch
    amount: np.ndarray  # float64, NaN where absent

    def type_code(self, event_type: str) -> int:
        """Index of ``event_type`` in ``types``; when absent -2, which matches no event.

        Not -1: that is the code of null event types.
        """
        found = np.flatnonzero(self.types == event_type)
        return int(found[0]) if len(found) else -2


def _check_columns(events: pd.DataFrame) -> None:
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events frame is missing columns {missing}; expected {EVENT_COLUMNS}")


def naive_utc(moment: pd.Timestamp) -> pd.Timestamp:
    """The moment as the service keeps time: naive UTC."""
    moment = pd.Timestamp(moment)
    return moment.tz_convert(None) if moment.tzinfo is not None else moment


def naive_utc_times(column: pd.Series) -> pd.Series:
    """A column of moments as the service keeps time: naive UTC."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert(None)
    return column


def _to_us(moment: pd.Timestamp) -> int:
    ts = pd.Timestamp(moment)
    if pd.isna(ts):
        raise ValueError("cutoff/as_of must be a timestamp, got NaT")
    return int(naive_utc(ts).to_datetime64().astype("datetime64[us]").astype(np.int64))


def _timestamps_us(column: pd.Series) -> np.ndarray:
    column = naive_utc_times(column)
    if not pd.api.types.is_datetime64_dtype(column.dtype):
        raise ValueError(f"events.occurred_at must be datetime64, got {column.dtype}")
    if column.isna().any():
        raise ValueError("events.occurred_at has null timestamps")
    return column.to_numpy().astype("datetime64[us]").astype(np.int64)


def _strictly_increasing(customer: np.ndarray, ts: np.ndarray) -> bool:
    next_customer = np.diff(customer)
    return bool(np.all((next_customer > 0) | ((next_customer == 0) & (np.diff(ts) > 0))))


def _chronological_order(
    customer: np.ndarray, ts: np.ndarray, event_type: np.ndarray, amount: np.ndarray
) -> np.ndarray:
    """The permutation sorting by (customer, ts, event_type, amount).

    Same result as a four-key ``np.lexsort``, cheaper on millions of rows: rank by
    (ts, event_type, amount), then a single argsort of ``customer * n + rank``, whose keys
    are unique and stay below n**2, far from int64 overflow for any in-memory n.
    """
    n = len(ts)
    if _strictly_increasing(customer, ts):
        # Already in order with no ties (as the database reads them): nothing to sort.
        return np.arange(n)
    by_time = np.lexsort((amount, event_type))
    by_time = by_time[np.argsort(ts[by_time], kind="stable")]
    rank = np.empty(n, dtype=np.int64)
    rank[by_time] = np.arange(n)
    return np.argsort(customer.astype(np.int64) * n + rank)


def _prepare(events: pd.DataFrame) -> _Events:
    _check_columns(events)
    if events["customer_id"].isna().any():
        raise ValueError("events.customer_id has null customer ids")
    ts = _timestamps_us(events["occurred_at"])
    customer, customers = pd.factorize(events["customer_id"].astype(str), sort=True)
    event_type, types = pd.factorize(events["event_type"], sort=True)
    amount = events["amount"].to_numpy(dtype=np.float64, na_value=np.nan)
    order = _chronological_order(customer, ts, event_type, amount)
    return _Events(
        customers=customers.to_numpy(dtype=object),
        customer=customer[order],
        types=types.to_numpy(dtype=object),
        type=event_type[order],
        ts=ts[order],
        amount=amount[order],
    )


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of the runs of equal values in ``rows``."""
    change = np.flatnonzero(rows[1:] != rows[:-1]) + 1
    if len(rows) == 0:
        return change, change
    return np.r_[0, change], np.r_[change, len(rows)]


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    # Refunds can make amounts negative; keep the sign instead of producing NaN.
    return np.sign(x) * np.log1p(np.abs(x))


def _days(us: np.ndarray) -> np.ndarray:
    return us / US_PER_DAY


@dataclass(frozen=True, eq=False)
class _History:
    """Events of the requested customers at or before a cutoff, in ``_Events`` order."""

    rows: np.ndarray  # output row of each event
    tokens: np.ndarray
    ts: np.ndarray
    age_us: np.ndarray  # cutoff - ts
    amount: np.ndarray
    is_target: np.ndarray

    def within(self, days: int | None) -> "_History":
        """The events in (cutoff - days, cutoff], still in order; all of them for None."""
        if days is None:
            return self
        keep = self.age_us < days * US_PER_DAY
        if keep.all():
            return self
        return _History(
            rows=self.rows[keep],
            tokens=self.tokens[keep],
            ts=self.ts[keep],
            age_us=self.age_us[keep],
            amount=self.amount[keep],
            is_target=self.is_target[keep],
        )


def _history(
    ev: _Events, row_of: np.ndarray, cutoff_us: int, vocab: Vocabulary, config: SequenceConfig
) -> _History:
    """Every event at or before the cutoff of the customers with a row (the whole history)."""
    rows = row_of[ev.customer]
    idx = np.flatnonzero((rows >= 0) & (ev.ts <= cutoff_us))
    # Null event types have type -1, which picks the trailing UNKNOWN.
    token_of_type = np.r_[vocab.encode(ev.types), UNKNOWN].astype(np.int32)
    event_type = ev.type[idx]
    return _History(
        rows=rows[idx],
        tokens=token_of_type[event_type],
        ts=ev.ts[idx],
        age_us=cutoff_us - ev.ts[idx],
        amount=ev.amount[idx],
        is_target=event_type == ev.type_code(config.target_event),
    )


def _sequences(h: _History, n: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens (n, max_len) and numeric (n, max_len, 3) of the last ``max_len`` events."""
    starts, ends = _runs(h.rows)
    lengths = ends - starts
    pos_from_end = np.repeat(ends, lengths) - 1 - np.arange(len(h.rows))
    keep = pos_from_end < max_len
    col = (np.repeat(np.minimum(lengths, max_len), lengths) - 1 - pos_from_end)[keep]
    row = h.rows[keep]
    # The gap uses the predecessor even when truncation drops it; only a first event gets 0.
    gap_us = np.diff(h.ts, prepend=h.ts[:1])
    gap_us[starts] = 0
    per_event = np.stack(
        [
            np.log1p(_days(gap_us[keep])),
            np.log1p(_days(h.age_us[keep])),
            _signed_log1p(np.nan_to_num(h.amount[keep])),
        ],
        axis=1,
    )
    tokens = np.full((n, max_len), PAD, dtype=np.int32)
    tokens[row, col] = h.tokens[keep]
    # A fully padded row is fully masked, which breaks the cuDNN GRU/LSTM kernels.
    tokens[np.bincount(h.rows, minlength=n) == 0, 0] = NO_HISTORY
    numeric = np.zeros((n, max_len, len(NUMERIC_NAMES)), dtype=np.float32)
    numeric[row, col] = per_event
    return tokens, numeric


def _edge_age_days(
    rows: np.ndarray, age_us: np.ndarray, n: int, fill: float, last: bool
) -> np.ndarray:
    """Per row, the age in days of its last (or first) event; ``fill`` for rows without one."""
    starts, ends = _runs(rows)
    edge = ends - 1 if last else starts
    out = np.full(n, float(fill))
    out[rows[edge]] = _days(age_us[edge])
    return out


def _type_counts(h: _History, n: int, vocab: Vocabulary, windows: tuple[int, ...]) -> np.ndarray:
    """(n, n_types * n_windows) counts of each known type in each window, type-major."""
    n_types = len(vocab.event_types)
    if not windows:
        return np.zeros((n, 0))
    known = h.tokens >= N_RESERVED
    per_window = []
    for w in windows:
        m = known & (h.age_us < w * US_PER_DAY)
        flat = h.rows[m] * n_types + (h.tokens[m] - N_RESERVED)
        per_window.append(np.bincount(flat, minlength=n * n_types).reshape(n, n_types))
    return np.stack(per_window, axis=2).reshape(n, n_types * len(windows))


def static_names(vocab: Vocabulary, config: SequenceConfig) -> tuple[str, ...]:
    """Names of the static feature columns, in order; every value is log1p of a figure over
    the customer's whole history at or before the cutoff (not only the lookback):

    recency: days since the last event (``config.no_history_days`` without one); frequency:
    number of events; monetary: summed target-event amounts (NaN as 0, floored at 0);
    target_recency: days since the last target event (``no_history_days`` without one);
    tenure: days since the first event (0 without one); count_<type>_<w>d: events of that
    vocabulary type in (cutoff - w days, cutoff].
    """
    counts = [f"count_{t}_{w}d" for t in vocab.event_types for w in config.windows_days]
    return (*BASE_STATIC_NAMES, *counts)


def _static(h: _History, n: int, vocab: Vocabulary, config: SequenceConfig) -> np.ndarray:
    """log1p of the columns named by ``static_names`` from the whole history ``h``; all finite
    and >= 0."""
    none_days = config.no_history_days
    target_rows = h.rows[h.is_target]
    target_amount = np.bincount(target_rows, np.nan_to_num(h.amount[h.is_target]), n)
    base = np.stack(
        [
            _edge_age_days(h.rows, h.age_us, n, none_days, last=True),
            np.bincount(h.rows, minlength=n),
            # Net refunds count as no spend rather than a negative log.
            np.maximum(target_amount, 0),
            _edge_age_days(target_rows, h.age_us[h.is_target], n, none_days, last=True),
            _edge_age_days(h.rows, h.age_us, n, 0, last=False),
        ],
        axis=1,
    )
    counts = _type_counts(h, n, vocab, config.windows_days)
    return np.log1p(np.concatenate([base, counts], axis=1)).astype(np.float32)


def _features(
    ev: _Events,
    ids: np.ndarray,
    row_of: np.ndarray,
    cutoff_us: int,
    vocab: Vocabulary,
    config: SequenceConfig,
) -> Features:
    history = _history(ev, row_of, cutoff_us, vocab, config)
    sequence = history.within(config.lookback_days)
    tokens, numeric = _sequences(sequence, len(ids), config.max_len)
    return Features(
        customer_ids=ids,
        tokens=tokens,
        numeric=numeric,
        static=_static(history, len(ids), vocab, config),
        static_names=static_names(vocab, config),
    )


def _labels(
    ev: _Events, row_of: np.ndarray, n: int, cutoff_us: int, config: SequenceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, whether a target event falls in the label window, and the sum of those
    events' amounts (missing ones count 0, a net refund counts 0)."""
    rows = row_of[ev.customer]
    in_window = (ev.ts > cutoff_us) & (ev.ts <= cutoff_us + config.horizon_days * US_PER_DAY)
    hit = in_window & (rows >= 0) & (ev.type == ev.type_code(config.target_event))
    labels = (np.bincount(rows[hit], minlength=n) > 0).astype(np.float32)
    spend = np.bincount(rows[hit], weights=np.nan_to_num(ev.amount[hit]), minlength=n)
    return labels, np.maximum(spend, 0.0)


def _requested(ev: _Events, customer_ids: CustomerIds) -> tuple[np.ndarray, np.ndarray]:
    """The requested ids as str, and for each known customer its row among them (-1: none)."""
    ids = pd.Index(customer_ids, dtype=object)
    if ids.hasnans:
        raise ValueError("customer_ids has null values")
    ids = ids.astype(str)
    if not ids.is_unique:
        raise ValueError(f"customer_ids has duplicates, e.g. {ids[ids.duplicated()][:5].tolist()}")
    return ids.to_numpy(dtype=object), ids.get_indexer(ev.customers)


def build_features(
    events: pd.DataFrame,
    customer_ids: CustomerIds,
    cutoff: pd.Timestamp,
    vocab: Vocabulary,
    config: SequenceConfig,
) -> Features:
    """Features of ``customer_ids`` (rows in that order) as of ``cutoff``.

    Static features use every event at or before ``cutoff`` that ``events`` holds: pass the whole
    history. Customers without events in the lookback get a ``[NO_HISTORY, PAD, ...]``
    sequence; duplicate or null ids are a ValueError.
    """
    ev = _prepare(events)
    ids, row_of = _requested(ev, customer_ids)
    return _features(ev, ids, row_of, _to_us(cutoff), vocab, config)


def snapshot_cutoffs(
    as_of: pd.Timestamp, horizon_days: int, n_snapshots: int, stride_days: int
) -> list[pd.Timestamp]:
    """Cutoffs oldest first; the newest one's label window ends exactly at ``as_of``."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    if n_snapshots < 1 or stride_days < 1:
        raise ValueError(
            f"n_snapshots and stride_days must be >= 1, got {n_snapshots}, {stride_days}"
        )
    newest = pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)
    return [newest - pd.Timedelta(days=stride_days * k) for k in range(n_snapshots - 1, -1, -1)]


@dataclass(frozen=True)
class SnapshotPlan:
    """The cutoffs of a training set, oldest first (the newest is the holdout's), and the
    older ones left out because they fall before the first event."""

    cutoffs: tuple[pd.Timestamp, ...]
    skipped: tuple[pd.Timestamp, ...] = ()

    @property
    def train_cutoffs(self) -> tuple[pd.Timestamp, ...]:
        return self.cutoffs[:-1]

    @property
    def holdout_cutoff(self) -> pd.Timestamp:
        return self.cutoffs[-1]


def plan_snapshots(
    as_of: pd.Timestamp,
    config: SequenceConfig,
    n_snapshots: int,
    stride_days: int,
    first_event: pd.Timestamp | None,
) -> SnapshotPlan:
    """The cutoffs of a training set as of ``as_of`` whose events begin at ``first_event``
    (None: there are none). Cutoffs before the first event (a snapshot without customers)
    are skipped; fewer than two usable ones (training + holdout) is a ValueError, and so is
    ``stride_days < horizon_days``, where the newest training label window would overlap the
    holdout's."""
    if n_snapshots < 2:
        raise ValueError(f"n_snapshots must be >= 2 (training + holdout), got {n_snapshots}")
    if stride_days < config.horizon_days:
        raise ValueError(
            f"stride_days ({stride_days}) must be >= horizon_days ({config.horizon_days}): "
            "otherwise training labels reach into the holdout's label window"
        )
    if first_event is None or _to_us(as_of) < _to_us(first_event):
        raise ValueError(f"as_of {as_of} is before the first event (or there are no events)")
    all_cutoffs = snapshot_cutoffs(as_of, config.horizon_days, n_snapshots, stride_days)
    skipped, usable = _split_usable(all_cutoffs, _to_us(first_event))
    return SnapshotPlan(tuple(usable), tuple(skipped))


def _snapshot(
    ev: _Events,
    first_seen_us: np.ndarray,
    cutoff: pd.Timestamp,
    vocab: Vocabulary,
    config: SequenceConfig,
) -> Snapshot:
    """All customers that exist at ``cutoff`` (an event at or before it), sorted by id."""
    cutoff_us = _to_us(cutoff)
    present = first_seen_us <= cutoff_us
    row_of = np.where(present, np.cumsum(present) - 1, -1)
    labels, values = _labels(ev, row_of, int(present.sum()), cutoff_us, config)
    return Snapshot(
        cutoff=cutoff,
        features=_features(ev, ev.customers[present], row_of, cutoff_us, vocab, config),
        labels=labels,
        values=values,
    )


def _snapshots(
    ev: _Events, plan: SnapshotPlan, vocab: Vocabulary, config: SequenceConfig
) -> list[Snapshot]:
    # Events are sorted by (customer, time), so each customer's run starts with its first event.
    first_seen_us = ev.ts[_runs(ev.customer)[0]]
    return [_snapshot(ev, first_seen_us, cutoff, vocab, config) for cutoff in plan.cutoffs]


def build_snapshots(
    events: pd.DataFrame, plan: SnapshotPlan, vocab: Vocabulary, config: SequenceConfig
) -> list[Snapshot]:
    """A snapshot at every cutoff of ``plan`` of the customers whose events (their whole
    history up to the newest label window's end) ``events`` holds."""
    return _snapshots(_prepare(events), plan, vocab, config)


def _split_usable(
    cutoffs: list[pd.Timestamp], first_event_us: int
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """The cutoffs (oldest first) before the first event, whose snapshots would hold no
    customers, and the usable rest; fewer than two usable ones is a ValueError."""
    usable = [c for c in cutoffs if _to_us(c) >= first_event_us]
    skipped = cutoffs[: len(cutoffs) - len(usable)]
    if len(usable) < 2:
        first = pd.Timestamp(first_event_us, unit="us")
        raise ValueError(
            f"{len(usable)} of the snapshot cutoffs {[str(c) for c in cutoffs]} fall at or after "
            f"the first event ({first}), the others would have no customers; a training set "
            "needs two (training + holdout): use fewer snapshots, a shorter stride or a later as_of"
        )
    return skipped, usable


def join_training_set(
    parts: list[list[Snapshot]], plan: SnapshotPlan, vocab: Vocabulary, config: SequenceConfig
) -> TrainingSet:
    """The training set of customers read in chunks: ``parts`` holds, per chunk, its
    snapshots at the plan's cutoffs. Chunks of ids in ascending order give the rows one read
    of every customer would (by cutoff, then id), copied once."""
    by_cutoff = list(zip(*parts, strict=True))
    training = [snapshot for group in by_cutoff[:-1] for snapshot in group]
    train = Snapshot.concat(plan.train_cutoffs[-1], training)
    if not train.labels.any():
        raise ValueError(
            f"nothing to learn: no '{config.target_event}' event in any training label window "
            f"(cutoffs {[str(c) for c in plan.train_cutoffs]}, horizon {config.horizon_days} "
            "days)"
        )
    holdout = Snapshot.concat(plan.holdout_cutoff, by_cutoff[-1])
    return TrainingSet(
        train=train,
        holdout=holdout,
        train_cutoffs=plan.train_cutoffs,
        vocab=vocab,
        skipped_cutoffs=plan.skipped,
    )


def build_training_set(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    config: SequenceConfig,
    n_snapshots: int = 4,
    stride_days: int = 30,
) -> TrainingSet:
    """Training snapshots at the older cutoffs, the newest labelled cutoff as holdout, of
    every customer in ``events`` (see plan_snapshots for the cutoffs). The vocabulary is fit
    on the events up to the newest training cutoff."""
    ev = _prepare(events)
    first = pd.Timestamp(int(ev.ts.min()), unit="us") if len(ev.ts) else None
    plan = plan_snapshots(as_of, config, n_snapshots, stride_days, first)
    seen_by_newest_train = _timestamps_us(events["occurred_at"]) <= _to_us(plan.train_cutoffs[-1])
    vocab = Vocabulary.fit(events[seen_by_newest_train])
    return join_training_set([_snapshots(ev, plan, vocab, config)], plan, vocab, config)
