"""SQL of the views consumers read; migrations create them from here."""

from db.models import ScoreRunStatus

# Each view as the revision that creates it writes it: a later revision's view names columns
# an earlier schema lacks, and a downgrade writes the earlier view back.

# Ordering by as_of keeps a backfill of an older date from replacing the current scores.
CURRENT_SCORES_VIEW_0001 = f"""
CREATE VIEW current_propensity_scores AS
SELECT s.customer_id, s.propensity, s.decile, s.rank, r.as_of, r.model_version_id,
       r.finished_at AS scored_at, s.reason_1, s.reason_2, s.reason_3
FROM propensity_scores s
JOIN score_runs r ON r.id = s.score_run_id
WHERE r.id = (
    SELECT latest.id FROM score_runs latest
    WHERE latest.status = '{ScoreRunStatus.SUCCEEDED}'
    ORDER BY latest.as_of DESC, latest.id DESC
    LIMIT 1
)
"""

# Runs whose scores were pruned keep their row in score_runs, so the history stays whole.
MONITORING_VIEW_0005 = f"""
CREATE VIEW score_run_monitoring AS
SELECT r.id AS score_run_id, r.as_of, r.model_version_id, m.kind, r.n_scored,
       (SELECT MAX(d.psi) FROM score_run_drift d WHERE d.score_run_id = r.id) AS max_psi,
       o.evaluated_at, o.n_converted, o.base_rate, o.roc_auc, o.pr_auc, o.log_loss,
       o.brier, o.ece, o.top_decile_lift
FROM score_runs r
JOIN model_versions m ON m.id = r.model_version_id
LEFT JOIN score_run_outcomes o ON o.score_run_id = r.id
WHERE r.status = '{ScoreRunStatus.SUCCEEDED}'
"""

# Revision 0009: each reason's contribution and the expected value beside the propensity.
CURRENT_SCORES_VIEW = f"""
CREATE VIEW current_propensity_scores AS
SELECT s.customer_id, s.propensity, s.decile, s.rank, r.as_of, r.model_version_id,
       r.finished_at AS scored_at, s.reason_1, s.reason_2, s.reason_3,
       s.reason_1_weight, s.reason_2_weight, s.reason_3_weight,
       s.expected_value, s.value_decile
FROM propensity_scores s
JOIN score_runs r ON r.id = s.score_run_id
WHERE r.id = (
    SELECT latest.id FROM score_runs latest
    WHERE latest.status = '{ScoreRunStatus.SUCCEEDED}'
    ORDER BY latest.as_of DESC, latest.id DESC
    LIMIT 1
)
"""

# Revision 0009: forward results only (a run its model's training labels reach is in
# sample, not a forward result), with the judged revenue beside the conversions.
MONITORING_VIEW = f"""
CREATE VIEW score_run_monitoring AS
SELECT r.id AS score_run_id, r.as_of, r.model_version_id, m.kind, r.n_scored,
       (SELECT MAX(d.psi) FROM score_run_drift d WHERE d.score_run_id = r.id) AS max_psi,
       o.evaluated_at, o.n_converted, o.base_rate, o.roc_auc, o.pr_auc, o.log_loss,
       o.brier, o.ece, o.top_decile_lift,
       o.realized_revenue, o.predicted_revenue, o.value_gini, o.value_mae,
       o.top_decile_revenue_share
FROM score_runs r
JOIN model_versions m ON m.id = r.model_version_id
LEFT JOIN score_run_outcomes o ON o.score_run_id = r.id
WHERE r.status = '{ScoreRunStatus.SUCCEEDED}' AND NOT r.in_sample
"""
