"""The PostgreSQL ledger's SQL text: its tables, its functions, its row-level policies (executed by the setup).

Plain strings, run once per database by
:func:`tunedp.ledger.postgres_schema.setup` as the ledger role, in schema
``tunedp``. What they enforce — who may charge, read, bind or grant, and the
charge under a row lock — is described in :mod:`tunedp.ledger.postgres_schema`;
the ε formula they call, ``tunedp.epsilon_of``, is
:data:`tunedp.ledger.curves.EPSILON_FUNCTION_SQL`. Every time stored is the
UTC day (``tunedp.today()``).
"""

from __future__ import annotations

__all__ = ["FUNCTIONS", "POLICIES", "TABLES"]

TABLES = """
CREATE TABLE tunedp.settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version text NOT NULL,
    orders float8[] NOT NULL,
    ledger_role name NOT NULL,
    owner_role name NOT NULL,
    analyst_role name NOT NULL,
    auditor_role name NOT NULL,
    created_on date NOT NULL
);
CREATE TABLE tunedp.budgets (
    dataset text PRIMARY KEY CHECK (dataset ~ '^[A-Za-z0-9_.-]{1,64}$'),
    -- NaN sorts above every number in PostgreSQL, so these checks refuse it too.
    epsilon float8 NOT NULL CHECK (epsilon > 0 AND epsilon < 'Infinity'),
    delta float8 NOT NULL CHECK (delta > 0 AND delta < 1),
    fingerprint text NOT NULL DEFAULT '',
    key_id text NOT NULL DEFAULT '',
    created_by name NOT NULL,
    created_on date NOT NULL,
    bound_by name,
    bound_on date
);
-- The fingerprint keys: read only through tunedp.data_key (analysts of the dataset, the owner).
CREATE TABLE tunedp.dataset_keys (
    dataset text PRIMARY KEY REFERENCES tunedp.budgets,
    key bytea NOT NULL
);
CREATE TABLE tunedp.grants (
    dataset text NOT NULL REFERENCES tunedp.budgets,
    grantee name NOT NULL,
    granted_by name NOT NULL,
    granted_on date NOT NULL,
    PRIMARY KEY (dataset, grantee)
);
CREATE TABLE tunedp.charges (
    id bigserial PRIMARY KEY,
    dataset text NOT NULL REFERENCES tunedp.budgets,
    search_id text NOT NULL UNIQUE,
    charged_by name NOT NULL,
    created_on date NOT NULL,
    config_hash text NOT NULL,
    mode text NOT NULL,
    label text NOT NULL,
    epsilon float8 NOT NULL,
    event_json text NOT NULL,
    curve float8[] NOT NULL,
    status text NOT NULL,
    updated_on date NOT NULL
);
CREATE INDEX charges_by_dataset ON tunedp.charges (dataset, id);
CREATE TABLE tunedp.refusals (
    id bigserial PRIMARY KEY,
    dataset text NOT NULL,
    search_id text NOT NULL,
    refused_by name NOT NULL,
    refused_on date NOT NULL,
    reason text NOT NULL,
    mode text NOT NULL,
    epsilon_after float8,
    event_json text NOT NULL
);
"""

# Helpers first: who the caller is (session_user: the authenticated login, which
# no SET ROLE changes and no argument can name) and what it may do.
FUNCTIONS = """
CREATE FUNCTION tunedp.today() RETURNS date
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT (now() AT TIME ZONE 'UTC')::date $$;

CREATE FUNCTION tunedp.is_owner() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_has_role(session_user, s.owner_role, 'MEMBER') FROM tunedp.settings s
$$;

CREATE FUNCTION tunedp.may_charge(p_dataset text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_has_role(session_user, s.analyst_role, 'MEMBER') AND EXISTS (
        SELECT 1 FROM tunedp.grants g
        WHERE g.dataset = p_dataset AND pg_has_role(session_user, g.grantee, 'MEMBER')
    ) FROM tunedp.settings s
$$;

CREATE FUNCTION tunedp.may_read(p_dataset text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_has_role(session_user, s.owner_role, 'MEMBER')
        OR pg_has_role(session_user, s.auditor_role, 'MEMBER')
        OR tunedp.may_charge(p_dataset)
    FROM tunedp.settings s
$$;

CREATE FUNCTION tunedp.require_owner() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT tunedp.is_owner() THEN
        RAISE EXCEPTION 'permission denied: role % is not the ledger''s owner', session_user USING ERRCODE = '42501';
    END IF;
END $$;

CREATE FUNCTION tunedp.curve_sum(p_dataset text) RETURNS float8[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(total ORDER BY i) FROM (
        SELECT i, sum(c.curve[i]) AS total
        FROM tunedp.charges c, generate_subscripts(c.curve, 1) AS i
        WHERE c.dataset = p_dataset GROUP BY i
    ) AS per_order
$$;

CREATE FUNCTION tunedp.create_budget(
    p_dataset text, p_epsilon float8, p_delta float8, p_fingerprint text, p_key bytea, p_key_id text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM tunedp.require_owner();
    IF EXISTS (SELECT 1 FROM tunedp.budgets WHERE dataset = p_dataset) THEN
        RAISE EXCEPTION 'dataset % already has a budget; a global budget cannot be reset', p_dataset
            USING ERRCODE = '23505';
    END IF;
    INSERT INTO tunedp.budgets
        (dataset, epsilon, delta, fingerprint, key_id, created_by, created_on, bound_by, bound_on)
    VALUES (p_dataset, p_epsilon, p_delta, coalesce(p_fingerprint, ''), coalesce(p_key_id, ''), session_user,
            tunedp.today(),
            CASE WHEN coalesce(p_fingerprint, '') <> '' THEN session_user END,
            CASE WHEN coalesce(p_fingerprint, '') <> '' THEN tunedp.today() END);
    IF p_key IS NOT NULL THEN
        INSERT INTO tunedp.dataset_keys (dataset, key) VALUES (p_dataset, p_key);
    END IF;
END $$;

CREATE FUNCTION tunedp.bind_dataset(p_dataset text, p_fingerprint text, p_key bytea, p_key_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE current_fingerprint text;
BEGIN
    PERFORM tunedp.require_owner();
    SELECT fingerprint INTO current_fingerprint FROM tunedp.budgets WHERE dataset = p_dataset FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no budget for dataset %', p_dataset USING ERRCODE = 'P0002';
    END IF;
    IF current_fingerprint <> '' THEN
        RAISE EXCEPTION 'dataset % is already bound to its data', p_dataset USING ERRCODE = '23505';
    END IF;
    UPDATE tunedp.budgets SET fingerprint = p_fingerprint, key_id = p_key_id, bound_by = session_user,
        bound_on = tunedp.today() WHERE dataset = p_dataset;
    INSERT INTO tunedp.dataset_keys (dataset, key) VALUES (p_dataset, p_key);
END $$;

CREATE FUNCTION tunedp.grant_dataset(p_dataset text, p_grantee name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE analyst name;
BEGIN
    PERFORM tunedp.require_owner();
    IF NOT EXISTS (SELECT 1 FROM tunedp.budgets WHERE dataset = p_dataset) THEN
        RAISE EXCEPTION 'no budget for dataset %', p_dataset USING ERRCODE = 'P0002';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_grantee) THEN
        RAISE EXCEPTION 'role % does not exist; create it first (CREATE ROLE % LOGIN ...)', p_grantee, p_grantee
            USING ERRCODE = '42704';
    END IF;
    SELECT analyst_role INTO analyst FROM tunedp.settings;
    IF NOT pg_has_role(p_grantee, analyst, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', analyst, p_grantee);
    END IF;
    INSERT INTO tunedp.grants (dataset, grantee, granted_by, granted_on)
    VALUES (p_dataset, p_grantee, session_user, tunedp.today()) ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION tunedp.grant_auditor(p_grantee name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE auditor name;
BEGIN
    PERFORM tunedp.require_owner();
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_grantee) THEN
        RAISE EXCEPTION 'role % does not exist; create it first (CREATE ROLE % LOGIN ...)', p_grantee, p_grantee
            USING ERRCODE = '42704';
    END IF;
    SELECT auditor_role INTO auditor FROM tunedp.settings;
    EXECUTE format('GRANT %I TO %I', auditor, p_grantee);
END $$;

CREATE FUNCTION tunedp.revoke_dataset(p_dataset text, p_grantee name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM tunedp.require_owner();
    DELETE FROM tunedp.grants WHERE dataset = p_dataset AND grantee = p_grantee;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role % has no grant on dataset %', p_grantee, p_dataset USING ERRCODE = 'P0002';
    END IF;
END $$;

CREATE FUNCTION tunedp.data_key(p_dataset text) RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE found_key bytea;
BEGIN
    IF NOT (tunedp.may_charge(p_dataset) OR tunedp.is_owner()) THEN
        RAISE EXCEPTION 'permission denied: role % may not read the data key of dataset %', session_user, p_dataset
            USING ERRCODE = '42501';
    END IF;
    SELECT key INTO found_key FROM tunedp.dataset_keys WHERE dataset = p_dataset;
    RETURN found_key;
END $$;

CREATE FUNCTION tunedp.charge(
    p_dataset text, p_search_id text, p_fingerprint text, p_config_hash text, p_mode text, p_label text,
    p_event_json text, p_curve float8[], p_events_fit boolean
) RETURNS TABLE (outcome text, spent_before float8, spent_after float8, own_epsilon float8, charged_on date)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    budget tunedp.budgets%ROWTYPE;
    total float8[];
    before_epsilon float8 := 0;
    after_epsilon float8;
    alone float8;
    day date := tunedp.today();
BEGIN
    IF NOT tunedp.may_charge(p_dataset) THEN
        RAISE EXCEPTION 'permission denied: role % has no grant to charge dataset %', session_user, p_dataset
            USING ERRCODE = '42501';
    END IF;
    -- The row lock: every charge of this dataset waits here for the one before to commit.
    SELECT * INTO budget FROM tunedp.budgets WHERE dataset = p_dataset FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no budget for dataset %', p_dataset USING ERRCODE = 'P0002';
    END IF;
    alone := tunedp.epsilon_of(p_curve, budget.delta);  -- also refuses a malformed curve
    IF EXISTS (SELECT 1 FROM tunedp.charges WHERE search_id = p_search_id) THEN
        RAISE EXCEPTION 'search id % is already charged; use a new id', p_search_id USING ERRCODE = '23505';
    END IF;
    total := tunedp.curve_sum(p_dataset);
    IF total IS NOT NULL THEN
        before_epsilon := tunedp.epsilon_of(total, budget.delta);
        SELECT array_agg(a + b ORDER BY i) INTO total
        FROM unnest(total, p_curve) WITH ORDINALITY AS pairs(a, b, i);
    ELSE
        total := p_curve;
    END IF;
    after_epsilon := tunedp.epsilon_of(total, budget.delta);
    IF budget.fingerprint <> '' AND p_fingerprint IS DISTINCT FROM budget.fingerprint THEN
        INSERT INTO tunedp.refusals
            (dataset, search_id, refused_by, refused_on, reason, mode, epsilon_after, event_json)
        VALUES (p_dataset, p_search_id, session_user, day, 'data fingerprint mismatch', p_mode, NULL, p_event_json);
        RETURN QUERY SELECT 'data_mismatch'::text, before_epsilon, after_epsilon, alone, day;
        RETURN;
    END IF;
    -- p_events_fit: the client's recomposition of the stored events; it can only refuse, never admit.
    IF NOT (after_epsilon <= budget.epsilon) OR NOT coalesce(p_events_fit, false) THEN
        INSERT INTO tunedp.refusals
            (dataset, search_id, refused_by, refused_on, reason, mode, epsilon_after, event_json)
        VALUES (p_dataset, p_search_id, session_user, day, 'over budget', p_mode, after_epsilon, p_event_json);
        RETURN QUERY SELECT 'over_budget'::text, before_epsilon, after_epsilon, alone, day;
        RETURN;
    END IF;
    INSERT INTO tunedp.charges (dataset, search_id, charged_by, created_on, config_hash, mode, label, epsilon,
                                event_json, curve, status, updated_on)
    VALUES (p_dataset, p_search_id, session_user, day, p_config_hash, p_mode, p_label, alone,
            p_event_json, p_curve, 'charged', day);
    RETURN QUERY SELECT 'charged'::text, before_epsilon, after_epsilon, alone, day;
END $$;

CREATE FUNCTION tunedp.set_status(p_search_id text, p_status text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_status NOT IN ('charged', 'running', 'completed', 'failed', 'interrupted') THEN
        RAISE EXCEPTION 'status % is not one of charged, running, completed, failed, interrupted', p_status
            USING ERRCODE = '22023';
    END IF;
    -- Bookkeeping only: status and its day change; what was charged, by whom, never does.
    UPDATE tunedp.charges SET status = p_status, updated_on = tunedp.today()
    WHERE search_id = p_search_id AND (charged_by = session_user OR tunedp.is_owner());
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no charge with search id % made by role %', p_search_id, session_user
            USING ERRCODE = 'P0002';
    END IF;
END $$;

-- Migration from a sqlite ledger: the dataset, its binding and its whole history, at once.
CREATE FUNCTION tunedp.import_dataset(
    p_dataset text, p_epsilon float8, p_delta float8, p_fingerprint text, p_key bytea, p_key_id text,
    p_charges jsonb
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    item jsonb;
    imported integer := 0;
    curve float8[];
BEGIN
    PERFORM tunedp.create_budget(p_dataset, p_epsilon, p_delta, p_fingerprint, p_key, p_key_id);
    FOR item IN SELECT e.value FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS e(value, position)
                ORDER BY e.position LOOP
        curve := ARRAY(SELECT (x #>> '{}')::float8 FROM jsonb_array_elements(item -> 'curve') AS x);
        INSERT INTO tunedp.charges (dataset, search_id, charged_by, created_on, config_hash, mode, label, epsilon,
                                    event_json, curve, status, updated_on)
        VALUES (p_dataset, item ->> 'search_id', session_user, (item ->> 'created_on')::date, item ->> 'config_hash',
                item ->> 'mode', item ->> 'label', tunedp.epsilon_of(curve, p_delta), item ->> 'event_json', curve,
                item ->> 'status', (item ->> 'updated_on')::date);
        imported := imported + 1;
    END LOOP;
    RETURN imported;
END $$;
"""

POLICIES = """
ALTER TABLE tunedp.budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tunedp.charges ENABLE ROW LEVEL SECURITY;
ALTER TABLE tunedp.refusals ENABLE ROW LEVEL SECURITY;
ALTER TABLE tunedp.grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_granted ON tunedp.budgets FOR SELECT USING (tunedp.may_read(dataset));
CREATE POLICY read_granted ON tunedp.charges FOR SELECT USING (tunedp.may_read(dataset));
CREATE POLICY read_granted ON tunedp.refusals FOR SELECT USING (tunedp.may_read(dataset));
CREATE POLICY read_granted ON tunedp.grants FOR SELECT USING (tunedp.may_read(dataset));
"""
