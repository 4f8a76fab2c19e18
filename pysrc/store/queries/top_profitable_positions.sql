-- Analysis query 1 (mission section 9): the most profitable closed positions, with why they were
-- opened and closed. realised_pnl is net of fees. Uses index positions_closed_by_pnl.
SELECT
    p.id,
    p.mode,
    p.symbol,
    p.side,
    p.strategy,
    p.entry_price,
    p.exit_price,
    p.realised_pnl,
    p.fees,
    p.entry_reason,
    p.exit_reason,
    p.signal_type,
    p.opened_at,
    p.closed_at,
    p.closed_at - p.opened_at AS held_for
FROM positions AS p
WHERE p.state = 'CLOSED'
ORDER BY p.realised_pnl DESC, p.closed_at DESC, p.id
LIMIT 10;
