"""The data side of judging score runs: which runs await their outcome, and who converted
in a window of a mapped source. Whole evaluations are tested in tests/flows/test_evaluation.py."""

from datetime import datetime, timedelta

import pandas as pd

from db.engine import transaction
from db.outcomes import RunToEvaluate, converted_customers, runs_awaiting_outcome, store_outcome
from db.scores import fail_score_run, start_score_run
from db.source import resolve_columns

T0 = datetime(2026, 1, 1)


def test_runs_awaiting_their_outcome_are_succeeded_unjudged_runs_oldest_first(
    engine, gbm_version, published_run
):
    later = published_run(T0 + timedelta(days=2))
    judged = published_run(T0)
    backfill = published_run(T0 + timedelta(days=1))
    with transaction(engine) as session:
        failed = start_score_run(session, T0 + timedelta(days=3), gbm_version, None)
        fail_score_run(session, failed, "boom")
        running = start_score_run(session, T0 + timedelta(days=4), gbm_version, None)
    with transaction(engine) as session:
        [oldest, *_] = runs_awaiting_outcome(session)
        figures = {"n_customers": 1, "n_converted": 1, "base_rate": 1.0, "roc_auc": None}
        figures |= {"pr_auc": None, "log_loss": 0.7, "brier": 0.25, "ece": 0.5}
        figures |= {"top_decile_lift": 1.0, "note": "every customer converted"}
        deciles = pd.DataFrame({"decile": [1], "customers": [1], "expected": [0.5], "actual": [1]})
        store_outcome(session, oldest, figures, deciles)

    with transaction(engine) as session:
        awaiting = runs_awaiting_outcome(session)

    assert oldest.score_run_id == judged
    assert [run.score_run_id for run in awaiting] == [backfill, later]
    assert awaiting[0] == RunToEvaluate(
        backfill, T0 + timedelta(days=1), gbm_version, "gbm", 14, {"kind": "gbm"}
    )
    assert awaiting[0].matures_at == T0 + timedelta(days=15)
    # The failed and the running run are no results to judge.
    assert {failed, running}.isdisjoint(run.score_run_id for run in awaiting)


def test_converted_customers_had_a_target_event_in_the_half_open_window(warehouse, mapped):
    """The warehouse holds u2's view at T0 and u1's buy an hour later."""
    hour = timedelta(hours=1)
    with warehouse.connect() as connection:
        columns = resolve_columns(connection, mapped)

        def converted(target: str, after: datetime, until: datetime) -> list[str]:
            frame = converted_customers(connection, columns, target, after, until)
            return frame["customer_id"].tolist()

        assert converted("buy", T0, T0 + hour) == ["u1"]
        assert converted("buy", T0 + hour, T0 + 2 * hour) == []
        assert converted("buy", T0 - hour, T0 + hour - timedelta(seconds=1)) == []
        assert converted("view", T0 - hour, T0) == ["u2"]
        assert converted("view", T0, T0 + hour) == []
        # Their spend: u1's 4.0; u2's view has no amount, counted as 0 and said.
        bought = converted_customers(connection, columns, "buy", T0, T0 + hour)
        assert bought.to_dict("records") == [
            {"customer_id": "u1", "spend": 4.0, "missing_amounts": 0}
        ]
        viewed = converted_customers(connection, columns, "view", T0 - hour, T0)
        assert viewed.to_dict("records") == [
            {"customer_id": "u2", "spend": 0.0, "missing_amounts": 1}
        ]
