-- 0001_initial: orders, positions, executions, trades, audit log, idempotency records,
-- market-data snapshots and the kill-switch state.
--
-- Conventions (see docs/persistence.md):
--   * money and quantities are NUMERIC (exact; the driver refuses floats), never float;
--   * times are timestamptz (UTC on the wire);
--   * side is Bybit's spelling ('Buy' / 'Sell'); mode is paper / testnet / demo / live;
--   * every mutable row has a `version` for optimistic locking (UPDATE ... WHERE version = $n);
--   * every function pins its search_path to the schema it was created in, so the tables it
--     names are the ones next to it whatever the caller's search_path is.
-- Runs in one transaction (the migrator wraps it); nothing here may need to run outside one.

-- ---------------------------------------------------------------------------------------------
-- positions (created first: orders and trades point at them)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE positions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode            text        NOT NULL CHECK (mode IN ('paper', 'testnet', 'demo', 'live')),
    category        text        NOT NULL DEFAULT 'linear',
    symbol          text        NOT NULL CHECK (symbol <> ''),
    side            text        NOT NULL CHECK (side IN ('Buy', 'Sell')),
    -- OPEN, CLOSING, CLOSED plus what the lifecycle needs (the state machine owns the list; today
    -- PENDING_OPEN, LIQUIDATED, CANCELLED). The terminal states CLOSED, LIQUIDATED and CANCELLED,
    -- and only they, have closed_at set; at most one position per (mode, symbol) is not terminal.
    state           text        NOT NULL DEFAULT 'OPEN' CHECK (state ~ '^[A-Z][A-Z_]*$'),
    size            numeric     NOT NULL DEFAULT 0 CHECK (size >= 0),
    entry_price     numeric     CHECK (entry_price > 0),
    exit_price      numeric     CHECK (exit_price > 0),
    leverage        numeric     CHECK (leverage > 0),
    realised_pnl    numeric     NOT NULL DEFAULT 0,      -- net of fees
    fees            numeric     NOT NULL DEFAULT 0,
    stop_loss       numeric     CHECK (stop_loss > 0),
    take_profit     numeric     CHECK (take_profit > 0),
    strategy        text,
    entry_reason    text,
    exit_reason     text,
    signal_type     text,
    signal          jsonb,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT positions_closed_iff_terminal CHECK (
        (state IN ('CLOSED', 'LIQUIDATED', 'CANCELLED')) = (closed_at IS NOT NULL)),
    CONSTRAINT positions_closed_after_open CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
-- One active (not terminal) position per symbol and mode (risk limit "1 per symbol"; also stops a
-- restart from opening a duplicate of a position it forgot).
CREATE UNIQUE INDEX positions_one_active_per_symbol ON positions (mode, symbol) WHERE closed_at IS NULL;
-- Analysis query 1: top profitable closed positions.
CREATE INDEX positions_closed_by_pnl ON positions (realised_pnl DESC) WHERE state = 'CLOSED';
CREATE INDEX positions_closed_at ON positions (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE position_transitions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position_id     bigint      NOT NULL REFERENCES positions (id) ON DELETE RESTRICT,
    seq             integer     NOT NULL CHECK (seq >= 1),
    from_state      text,
    to_state        text        NOT NULL,
    event           text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT position_transitions_seq_key UNIQUE (position_id, seq)
);

-- ---------------------------------------------------------------------------------------------
-- orders and their state history
-- ---------------------------------------------------------------------------------------------
CREATE TABLE orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Bybit orderLinkId: at most 36 characters of [A-Za-z0-9_-], never reused.
    order_link_id   text        NOT NULL
                    CONSTRAINT orders_order_link_id_key UNIQUE
                    CONSTRAINT orders_order_link_id_format CHECK (order_link_id ~ '^[A-Za-z0-9_-]{1,36}$'),
    exchange_order_id text,                               -- Bybit orderId, once known
    mode            text        NOT NULL CHECK (mode IN ('paper', 'testnet', 'demo', 'live')),
    category        text        NOT NULL DEFAULT 'linear',
    symbol          text        NOT NULL CHECK (symbol <> ''),
    side            text        NOT NULL CHECK (side IN ('Buy', 'Sell')),
    order_type      text        NOT NULL CHECK (order_type IN ('Market', 'Limit')),
    qty             numeric     NOT NULL CHECK (qty > 0),
    price           numeric     CHECK (price > 0),
    reduce_only     boolean     NOT NULL DEFAULT false,
    time_in_force   text        NOT NULL DEFAULT 'GTC'
                    CHECK (time_in_force IN ('GTC', 'IOC', 'FOK', 'PostOnly', 'RPI')),
    state           text        NOT NULL DEFAULT 'NEW' CHECK (state IN (
                        'NEW', 'PENDING_SUBMIT', 'SUBMITTED', 'ACKNOWLEDGED', 'PARTIALLY_FILLED',
                        'FILLED', 'PENDING_CANCEL', 'CANCELLED', 'REJECTED', 'FAILED')),
    filled_qty      numeric     NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    avg_fill_price  numeric     CHECK (avg_fill_price > 0),
    fees            numeric     NOT NULL DEFAULT 0,
    take_profit     numeric     CHECK (take_profit > 0),
    stop_loss       numeric     CHECK (stop_loss > 0),
    strategy        text,
    signal          jsonb,
    position_id     bigint      REFERENCES positions (id) ON DELETE RESTRICT,
    error           text,                                 -- last rejection / failure reason
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT orders_filled_not_above_qty CHECK (filled_qty <= qty),
    CONSTRAINT orders_limit_has_price CHECK (order_type <> 'Limit' OR price IS NOT NULL)
);
CREATE UNIQUE INDEX orders_exchange_order_id_key ON orders (mode, exchange_order_id)
    WHERE exchange_order_id IS NOT NULL;
-- Open orders (start-up restore, reconciliation every 10 s).
CREATE INDEX orders_open ON orders (mode, symbol)
    WHERE state NOT IN ('FILLED', 'CANCELLED', 'REJECTED', 'FAILED');
CREATE INDEX orders_symbol_created ON orders (symbol, created_at);
CREATE INDEX orders_position ON orders (position_id) WHERE position_id IS NOT NULL;

CREATE TABLE order_transitions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        bigint      NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
    seq             integer     NOT NULL CHECK (seq >= 1),
    from_state      text,
    to_state        text        NOT NULL,
    event           text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT order_transitions_seq_key UNIQUE (order_id, seq)
);

-- ---------------------------------------------------------------------------------------------
-- executions (fills), deduplicated by the exchange's execId
-- ---------------------------------------------------------------------------------------------
CREATE TABLE executions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exec_id         text        NOT NULL CONSTRAINT executions_exec_id_key UNIQUE,
    order_id        bigint      REFERENCES orders (id) ON DELETE RESTRICT,  -- NULL: not one of ours
    exchange_order_id text,
    order_link_id   text,
    mode            text        NOT NULL CHECK (mode IN ('paper', 'testnet', 'demo', 'live')),
    category        text        NOT NULL DEFAULT 'linear',
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('Buy', 'Sell')),
    price           numeric     NOT NULL CHECK (price >= 0),
    qty             numeric     NOT NULL CHECK (qty >= 0),
    fee             numeric     NOT NULL DEFAULT 0,
    fee_currency    text,
    is_maker        boolean,
    exec_type       text        NOT NULL DEFAULT 'Trade',
    exec_time       timestamptz NOT NULL,
    seq             bigint,
    closed_size     numeric,
    raw             jsonb,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX executions_order ON executions (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX executions_exchange_order ON executions (exchange_order_id);
CREATE INDEX executions_symbol_time ON executions (symbol, exec_time);

-- ---------------------------------------------------------------------------------------------
-- trades: closed round trips (the input of analysis queries 2 and 3)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE trades (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position_id     bigint      REFERENCES positions (id) ON DELETE RESTRICT,
    mode            text        NOT NULL CHECK (mode IN ('paper', 'testnet', 'demo', 'live')),
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('Buy', 'Sell')),  -- side of the entry
    qty             numeric     NOT NULL CHECK (qty > 0),
    entry_price     numeric     NOT NULL CHECK (entry_price > 0),
    exit_price      numeric     NOT NULL CHECK (exit_price > 0),
    entry_time      timestamptz NOT NULL,
    exit_time       timestamptz NOT NULL,
    pnl             numeric     NOT NULL,                 -- realised, net of fees
    fees            numeric     NOT NULL DEFAULT 0,
    strategy        text,
    entry_reason    text,
    exit_reason     text,
    signal_type     text,
    signal_data     jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trades_exit_after_entry CHECK (exit_time >= entry_time)
);
CREATE INDEX trades_position ON trades (position_id) WHERE position_id IS NOT NULL;
CREATE INDEX trades_exit_reason ON trades (exit_reason);
CREATE INDEX trades_signal_type ON trades (signal_type);
CREATE INDEX trades_symbol_exit_time ON trades (symbol, exit_time);

-- ---------------------------------------------------------------------------------------------
-- audit log: append-only, enforced by the database
-- ---------------------------------------------------------------------------------------------
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor           text        NOT NULL CHECK (actor <> ''),     -- 'bot', 'user:<name>', ...
    action          text        NOT NULL CHECK (action <> ''),    -- 'order.place', 'kill_switch.halt', ...
    entity          text,                                         -- 'order:<orderLinkId>', 'position:<id>', ...
    reason          text,
    params          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    old_value       jsonb,
    new_value       jsonb,
    success         boolean     NOT NULL,
    error           text,
    trace_id        text,
    context         jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- signal, market data, indicators
    CONSTRAINT audit_log_failure_has_error CHECK (success OR error IS NOT NULL)
);
CREATE INDEX audit_log_at ON audit_log (at);
-- Analysis query 4: failed entries of the last 24 h.
CREATE INDEX audit_log_failed_at ON audit_log (at) WHERE NOT success;
CREATE INDEX audit_log_trace ON audit_log (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX audit_log_entity ON audit_log (entity, at) WHERE entity IS NOT NULL;

CREATE FUNCTION audit_log_reject_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit entries are never changed or removed; append a correcting entry instead';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();
-- Defence in depth for roles that are not the owner (the owner keeps its rights; the triggers are
-- the guard for it). docs/persistence.md shows a role with INSERT and SELECT only.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- idempotency records (the durable twin of the Redis SET NX reservation)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE idempotency_records (
    key             text        PRIMARY KEY CHECK (key <> ''),
    request_hash    text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'completed', 'failed')),
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT idempotency_records_expiry_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX idempotency_records_expires ON idempotency_records (expires_at);

-- ---------------------------------------------------------------------------------------------
-- kill switch / bot state: survives restarts; changed only with an audit entry (repository)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE bot_state (
    name            text        PRIMARY KEY,
    halted          boolean     NOT NULL DEFAULT false,
    halted_at       timestamptz,
    halted_by       text,
    halt_reason     text,
    resumed_at      timestamptz,
    resumed_by      text,
    resume_reason   text,
    data            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT bot_state_halted_has_who_why CHECK (
        NOT halted OR (halted_at IS NOT NULL AND halted_by IS NOT NULL AND halt_reason IS NOT NULL))
);
INSERT INTO bot_state (name) VALUES ('default');

-- ---------------------------------------------------------------------------------------------
-- market-data snapshots: a TimescaleDB hypertable with a retention policy when the extension can
-- be used, else a table range-partitioned by day with market_snapshots_maintain() to create
-- upcoming partitions and drop old ones.
-- ---------------------------------------------------------------------------------------------
DO $migration$
DECLARE
    use_timescale boolean := false;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            CREATE TABLE market_snapshots (
                ts          timestamptz NOT NULL,
                symbol      text        NOT NULL,
                best_bid    numeric,
                best_ask    numeric,
                bid_size    numeric,
                ask_size    numeric,
                last_price  numeric,
                mark_price  numeric,
                data        jsonb       NOT NULL DEFAULT '{}'::jsonb
            );
            PERFORM create_hypertable('market_snapshots', 'ts', chunk_time_interval => interval '1 day');
            PERFORM add_retention_policy('market_snapshots', interval '30 days');
            use_timescale := true;
        EXCEPTION WHEN OTHERS THEN
            -- Listed but not usable (not in shared_preload_libraries, no privilege, ...):
            -- everything in this block was rolled back; fall back to plain partitions.
            RAISE NOTICE 'TimescaleDB not usable (%), using a partitioned table', SQLERRM;
        END;
    END IF;
    IF NOT use_timescale THEN
        CREATE TABLE market_snapshots (
            ts          timestamptz NOT NULL,
            symbol      text        NOT NULL,
            best_bid    numeric,
            best_ask    numeric,
            bid_size    numeric,
            ask_size    numeric,
            last_price  numeric,
            mark_price  numeric,
            data        jsonb       NOT NULL DEFAULT '{}'::jsonb
        ) PARTITION BY RANGE (ts);
    END IF;
END
$migration$;
CREATE INDEX market_snapshots_symbol_ts ON market_snapshots (symbol, ts DESC);

CREATE FUNCTION market_snapshots_storage() RETURNS text
    LANGUAGE sql STABLE
    SET search_path FROM CURRENT
AS $$
    SELECT CASE c.relkind WHEN 'p' THEN 'partitioned' ELSE 'timescaledb' END
    FROM pg_class c
    WHERE c.oid = 'market_snapshots'::regclass
$$;

-- Partitions are named market_snapshots_pYYYYMMDD and each covers one UTC day.
-- Creates the partition holding `p_day` unless it exists; returns its name, or NULL when it existed
-- (or under TimescaleDB, where chunks are created on insert).
CREATE FUNCTION market_snapshots_create_partition(p_day date) RETURNS text
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    parent_oid  oid := 'market_snapshots'::regclass;
    nsp         text;
    part        text := 'market_snapshots_p' || to_char(p_day, 'YYYYMMDD');
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = parent_oid) <> 'p' THEN
        RETURN NULL;
    END IF;
    SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent_oid;
    -- Serialise partition DDL per schema (two inserts racing for the same new day).
    PERFORM pg_advisory_xact_lock(hashtext('market_snapshots_partitions'), hashtext(nsp));
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I.%I PARTITION OF %I.market_snapshots FOR VALUES FROM (%L) TO (%L)',
        nsp, part, nsp,
        (p_day::timestamp AT TIME ZONE 'UTC'), ((p_day + 1)::timestamp AT TIME ZONE 'UTC'));
    RETURN part;
END;
$$;

-- Creates the partitions for the UTC days from `as_of` to `as_of + ahead_days` and drops the
-- partitions whose day ended at or before `as_of - retain_days` (so `retain_days` full days are
-- kept before today). Returns what it did. A no-op under TimescaleDB, whose retention policy job
-- drops old chunks.
CREATE FUNCTION market_snapshots_maintain(
    ahead_days integer DEFAULT 7,
    retain_days integer DEFAULT 30,
    as_of timestamptz DEFAULT now()
) RETURNS TABLE (action text, partition_name text)
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    parent_oid  oid := 'market_snapshots'::regclass;
    nsp         text;
    today       date := (as_of AT TIME ZONE 'UTC')::date;
    cutoff      date := today - retain_days;
    d           date;
    child       record;
    created     text;
BEGIN
    IF ahead_days < 0 OR retain_days < 1 THEN
        RAISE EXCEPTION 'ahead_days must be >= 0 and retain_days >= 1 (got %, %)', ahead_days, retain_days;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = parent_oid) <> 'p' THEN
        RETURN;
    END IF;
    SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent_oid;
    PERFORM pg_advisory_xact_lock(hashtext('market_snapshots_partitions'), hashtext(nsp));

    FOR child IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent_oid AND c.relname ~ '^market_snapshots_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        IF to_date(substring(child.relname FROM '[0-9]{8}$'), 'YYYYMMDD') + 1 <= cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', nsp, child.relname);
            action := 'dropped'; partition_name := child.relname; RETURN NEXT;
        END IF;
    END LOOP;

    d := today;
    WHILE d <= today + ahead_days LOOP
        created := market_snapshots_create_partition(d);
        IF created IS NOT NULL THEN
            action := 'created'; partition_name := created; RETURN NEXT;
        END IF;
        d := d + 1;
    END LOOP;
END;
$$;

-- Partitions for today and the next week exist from the start.
SELECT count(*) FROM market_snapshots_maintain();
