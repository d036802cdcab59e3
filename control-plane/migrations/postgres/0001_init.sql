-- Initial schema (PostgreSQL). Times are Unix milliseconds; ids are text.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);
INSERT INTO projects (id, created_at) VALUES ('default', 0);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    machine_id    TEXT NOT NULL UNIQUE,
    hostname      TEXT NOT NULL,
    facts         TEXT NOT NULL,
    labels        TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at   BIGINT NOT NULL,
    last_seen_at  BIGINT,
    revoked_at    BIGINT,
    acked_seq     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX agents_project ON agents (project_id);

CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    labels      TEXT NOT NULL,
    description TEXT NOT NULL,
    uses_total  BIGINT NOT NULL,
    uses_left   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    issued_at   BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX certificates_agent ON certificates (agent_id);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE metric_points (
    agent_id  TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    payload   BYTEA NOT NULL,
    PRIMARY KEY (agent_id, ts)
);
CREATE INDEX metric_points_ts ON metric_points (ts);

CREATE TABLE metric_rollups (
    agent_id  TEXT NOT NULL,
    bucket    BIGINT NOT NULL,
    payload   BYTEA NOT NULL,
    PRIMARY KEY (agent_id, bucket)
);
CREATE INDEX metric_rollups_bucket ON metric_rollups (bucket);
