import json

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression

from llm_model.calibration import Calibrator, choose_calibrator, fit_calibrator
from llm_model.metrics import expected_calibration_error, log_loss

FITTED_METHODS = ["isotonic", "platt"]


def miscalibrated(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities q, scores that are overconfident and too high."""
    rng = np.random.default_rng(seed)
    q = rng.beta(2, 6, n)
    y = (rng.random(n) < q).astype(int)
    p = expit(2.5 * logit(q) + 1.0)
    return y, p


@pytest.fixture(scope="module")
def fit_and_judge():
    return miscalibrated(seed=1), miscalibrated(seed=2)


def test_isotonic_is_monotone_and_matches_sklearn(fit_and_judge):
    (y, p), _ = fit_and_judge
    calibrator = fit_calibrator(y, p, "isotonic")
    grid = np.linspace(0, 1, 1001)
    out = calibrator.transform(grid)
    assert np.all(np.diff(out) >= 0)
    # Outside the fitted range np.interp holds the end values, as sklearn's "clip" does.
    reference = IsotonicRegression(out_of_bounds="clip").fit(p, y).predict(grid)
    np.testing.assert_allclose(out, np.clip(reference, 1e-6, 1 - 1e-6), atol=1e-12)


def test_platt_recovers_known_slope_and_intercept():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 20_000)
    y = (rng.random(p.size) < expit(0.6 * logit(p) - 0.8)).astype(int)
    calibrator = fit_calibrator(y, p, "platt")
    assert calibrator.slope == pytest.approx(0.6, abs=0.05)
    assert calibrator.intercept == pytest.approx(-0.8, abs=0.05)


def test_identity_only_clips():
    p = np.array([0.0, 0.3, 1.0])
    out = fit_calibrator([0, 1, 1], p, "identity").transform(p)
    np.testing.assert_array_equal(out, [1e-6, 0.3, 1 - 1e-6])


@pytest.mark.parametrize("method", [*FITTED_METHODS, "identity"])
def test_output_stays_inside_open_unit_interval(fit_and_judge, method):
    (y, p), _ = fit_and_judge
    out = fit_calibrator(y, p, method).transform(np.array([0.0, 1e-12, 0.5, 1 - 1e-12, 1.0]))
    assert np.all(out >= 1e-6)
    assert np.all(out <= 1 - 1e-6)


@pytest.mark.parametrize("method", [*FITTED_METHODS, "identity"])
def test_round_trip_through_json_gives_identical_transform(fit_and_judge, method):
    (y, p), (_, p_new) = fit_and_judge
    calibrator = fit_calibrator(y, p, method)
    restored = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert restored == calibrator
    np.testing.assert_array_equal(restored.transform(p_new), calibrator.transform(p_new))


@pytest.mark.parametrize("method", FITTED_METHODS)
def test_calibration_reduces_ece_and_log_loss_on_fresh_data(fit_and_judge, method):
    (y_fit, p_fit), (y_new, p_new) = fit_and_judge
    calibrated = fit_calibrator(y_fit, p_fit, method).transform(p_new)
    raw_ece = expected_calibration_error(y_new, p_new)
    assert raw_ece > 0.05  # the fixture really is mis-calibrated
    assert expected_calibration_error(y_new, calibrated) < raw_ece / 3
    assert log_loss(y_new, calibrated) < log_loss(y_new, p_new) - 0.03


def test_choose_calibrator_picks_a_fitted_method_when_it_helps(fit_and_judge):
    (y_fit, p_fit), (y_judge, p_judge) = fit_and_judge
    chosen, report = choose_calibrator(y_fit, p_fit, y_judge, p_judge)
    assert set(report) == {"identity", "isotonic", "platt"}
    assert chosen.method in FITTED_METHODS
    assert report[chosen.method] == min(report.values())
    assert report[chosen.method] < report["identity"]
    assert report[chosen.method] == pytest.approx(log_loss(y_judge, chosen.transform(p_judge)))


def test_choose_calibrator_keeps_identity_under_base_rate_drift():
    rng = np.random.default_rng(4)
    # Raw scores are right for the judge period (base rate 0.4) ...
    p_judge = rng.beta(4, 6, 4000)
    y_judge = (rng.random(p_judge.size) < p_judge).astype(int)
    # ... but the earlier fit period had a quarter of the purchase rate (base rate 0.1).
    p_fit = rng.beta(4, 6, 4000)
    y_fit = (rng.random(p_fit.size) < 0.25 * p_fit).astype(int)
    chosen, report = choose_calibrator(y_fit, p_fit, y_judge, p_judge)
    assert chosen.method == "identity"
    assert report["identity"] < report["isotonic"]
    assert report["identity"] < report["platt"]
    np.testing.assert_array_equal(chosen.transform(p_judge), np.clip(p_judge, 1e-6, 1 - 1e-6))


def test_choose_calibrator_needs_strict_improvement():
    # Scores constant at the base rate: isotonic reproduces them exactly, an exact tie.
    y = np.array([1, 0, 0, 0] * 50)
    p = np.full(y.size, 0.25)
    chosen, report = choose_calibrator(y, p, y, p, methods=("isotonic",))
    assert report == {"identity": report["isotonic"], "isotonic": report["identity"]}
    assert chosen.method == "identity"


@pytest.mark.parametrize(
    ("y", "p", "method", "message"),
    [
        ([0, 1], [0.2, 0.8], "beta", "unknown calibration method"),
        ([1, 1], [0.2, 0.8], "platt", "only one class"),
        ([0, 1, 1], [0.2, 0.8], "isotonic", "length mismatch"),
        ([], [], "isotonic", "empty input"),
        ([0, 3], [0.2, 0.8], "isotonic", "labels must be 0 or 1"),
        ([0, 1], [0.2, np.nan], "platt", "NaN"),
        ([0, 1], [-0.2, 0.8], "platt", r"must lie in \[0, 1\]"),
    ],
)
def test_fit_calibrator_rejects_bad_input(y, p, method, message):
    with pytest.raises(ValueError, match=message):
        fit_calibrator(y, p, method)


def test_calibrator_rejects_bad_parameters_and_scores():
    with pytest.raises(ValueError, match="unknown Calibrator fields"):
        Calibrator.from_dict({"method": "platt", "temperature": 2.0})
    with pytest.raises(ValueError, match="non-empty thresholds"):
        Calibrator.from_dict({"method": "isotonic", "x_thresholds": [0.1], "y_thresholds": []})
    with pytest.raises(ValueError, match="sorted"):
        Calibrator("isotonic", x_thresholds=[0.5, 0.1], y_thresholds=[0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        Calibrator("identity").transform([0.5, np.nan])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        Calibrator("platt").transform([1.5])
