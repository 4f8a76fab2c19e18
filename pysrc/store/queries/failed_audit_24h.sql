-- Analysis query 4 (mission section 9): audit entries that failed in the last 24 hours, newest
-- first, with who, what, why and the error. Uses index audit_log_failed_at.
SELECT
    a.id,
    a.at,
    a.actor,
    a.action,
    a.entity,
    a.reason,
    a.error,
    a.trace_id,
    a.params,
    a.context
FROM audit_log AS a
WHERE NOT a.success
  AND a.at >= now() - interval '24 hours'
ORDER BY a.at DESC, a.id DESC;
