-- Analysis query 2 (mission section 9): exit reasons with how many trades closed for each, their
-- average PnL (net of fees) and how many of them won (pnl > 0). Most frequent reason first.
SELECT
    COALESCE(t.exit_reason, 'unknown')                      AS exit_reason,
    count(*)                                                AS trades,
    avg(t.pnl)                                              AS avg_pnl,
    sum(t.pnl)                                              AS total_pnl,
    count(*) FILTER (WHERE t.pnl > 0)                       AS winning_trades
FROM trades AS t
GROUP BY COALESCE(t.exit_reason, 'unknown')
ORDER BY trades DESC, exit_reason;
