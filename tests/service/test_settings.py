"""Settings and the requests that override them for one run: a date alone is the end of
that day, a time keeps its instant, overrides carry the settings' names."""

from datetime import date, datetime

import pytest
from pydantic import ValidationError

from service.settings import BacktestRequest, RetrainRequest, ScoreRequest

END_OF_THE_31ST = datetime(2026, 10, 31, 23, 59, 59, 999_999)


@pytest.mark.parametrize(
    ("given", "cutoff"),
    [
        ("2026-10-31", END_OF_THE_31ST),
        (" 2026-10-31 ", END_OF_THE_31ST),
        (date(2026, 10, 31), END_OF_THE_31ST),
        ("2026-10-31 10:30:00", datetime(2026, 10, 31, 10, 30)),
        ("2026-10-31T00:00:00", datetime(2026, 10, 31)),
        (datetime(2026, 10, 31), datetime(2026, 10, 31)),
        ("2026-10-31T10:30:00+02:00", datetime(2026, 10, 31, 8, 30)),
    ],
)
def test_a_date_alone_is_the_end_of_that_day_and_a_time_stays_its_instant(given, cutoff):
    assert ScoreRequest(as_of=given).as_of == cutoff
    assert RetrainRequest(as_of=given).as_of == cutoff
    backtest = BacktestRequest(start=given, end=given, every_days=7)
    assert (backtest.start, backtest.end) == (cutoff, cutoff)


def test_a_date_that_is_not_one_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match="as_of"):
        ScoreRequest(as_of="2026-02-30")


def test_a_request_overrides_the_settings_of_its_names_only():
    request = RetrainRequest(as_of="2026-10-31", horizon_days=14, n_snapshots=3)
    assert request.overrides() == {"horizon_days": 14, "n_snapshots": 3}
