"""SQL of the views consumers read; migrations create them from here."""

from db.models import ScoreRunStatus

# Ordering by as_of keeps a backfill of an older date from replacing the current scores.
CURRENT_SCORES_VIEW = f"""
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
