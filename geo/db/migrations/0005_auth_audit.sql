-- Who may do what, and a record of what they did.
--
-- api_key: one row per API key for its whole life. The key itself is never stored: only
-- a short random prefix (to find the row and to show which key is which) and the SHA-256
-- of the whole key (see geo/auth.py for why a fast hash is right for random keys).
-- A revoked key keeps its row, so the audit log can still name it.
--
-- app_secret: secrets the app generates once, such as the key that signs map session
-- cookies (unless GRIDMAP_SECRET is set). Never in the repository.
--
-- audit_log: one row per change that matters to the office: boundary commits (plan
-- commit, unit edit, load), incident intake and transitions, workers, key changes. It is
-- written in the transaction of the change it records, so a change rolled back leaves no
-- row, and a row cannot be changed or removed afterwards.

CREATE TABLE api_key (
    id            bigserial PRIMARY KEY,
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{8}$'),
    hash          bytea NOT NULL CHECK (length(hash) = 32),
    name          text NOT NULL CHECK (name <> ''),
    role          text NOT NULL CHECK (role IN ('service', 'dispatcher', 'planner', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    revoked_at    timestamptz,
    revoked_by    text,
    last_used_at  timestamptz
);

CREATE TABLE app_secret (
    name        text PRIMARY KEY,
    value       bytea NOT NULL CHECK (length(value) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),   -- the change's transaction time
    actor        text NOT NULL,      -- 'key:3 office-desk (planner)', 'cli:alice', 'anonymous (auth off)'
    key_id       bigint REFERENCES api_key (id),
    role         text,               -- the key's role; NULL for the command line
    action       text NOT NULL,      -- 'plan.commit', 'unit.edit', 'incident.transition', 'key.revoke', ...
    subject      text NOT NULL,      -- what subject_ids are ids of: 'plan', 'unit', 'incident', 'key', ...
    subject_ids  bigint[] NOT NULL DEFAULT '{}',
    change_id    bigint REFERENCES change_set (id),
    before       jsonb,              -- versions or states before the change
    after        jsonb,              -- and after it
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, at);
CREATE INDEX audit_log_subject ON audit_log USING gin (subject_ids);
CREATE INDEX audit_log_key ON audit_log (key_id) WHERE key_id IS NOT NULL;

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END $$;

CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
