-- Analysis query 3 (mission section 9): effectiveness of each signal type over closed trades:
-- count, wins, losses, win rate (percent, 2 decimals), average and total PnL (net of fees).
-- Best total PnL first.
SELECT
    COALESCE(t.signal_type, 'unknown')                                  AS signal_type,
    count(*)                                                            AS trades,
    count(*) FILTER (WHERE t.pnl > 0)                                   AS wins,
    count(*) FILTER (WHERE t.pnl < 0)                                   AS losses,
    round(100.0 * count(*) FILTER (WHERE t.pnl > 0) / count(*), 2)      AS win_rate_pct,
    avg(t.pnl)                                                          AS avg_pnl,
    sum(t.pnl)                                                          AS total_pnl
FROM trades AS t
GROUP BY COALESCE(t.signal_type, 'unknown')
ORDER BY total_pnl DESC, signal_type;
