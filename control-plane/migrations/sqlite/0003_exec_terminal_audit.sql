-- Remote exec, terminal sessions with recordings, and the audit log.
CREATE TABLE exec_jobs (
    id           TEXT PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    spec         TEXT NOT NULL,
    target       TEXT NOT NULL,
    concurrency  BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX exec_jobs_created ON exec_jobs (created_at);

CREATE TABLE exec_runs (
    job_id        TEXT NOT NULL REFERENCES exec_jobs (id),
    agent_id      TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    state         TEXT NOT NULL,
    exit_code     BIGINT,
    signal        BIGINT,
    duration_ms   BIGINT,
    timed_out     BIGINT NOT NULL DEFAULT 0,
    cancelled     BIGINT NOT NULL DEFAULT 0,
    truncated     BIGINT NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    output_bytes  BIGINT NOT NULL DEFAULT 0,
    started_at    BIGINT,
    finished_at   BIGINT,
    PRIMARY KEY (job_id, agent_id)
);

-- Output chunks as the agent sent them (stream 0 = stdout, 1 = stderr),
-- capped per run by the control plane.
CREATE TABLE exec_output (
    job_id    TEXT NOT NULL,
    agent_id  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    stream    BIGINT NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (job_id, agent_id, seq)
);

CREATE TABLE terminal_sessions (
    id                TEXT PRIMARY KEY,
    agent_id          TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    started_at        BIGINT NOT NULL,
    last_attached_at  BIGINT NOT NULL,
    ended_at          BIGINT,
    exit_code         BIGINT,
    cols              BIGINT NOT NULL,
    rows              BIGINT NOT NULL,
    recorded_bytes    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX terminal_sessions_agent ON terminal_sessions (agent_id, started_at);

-- asciicast v2 recordings, as gzip members appended in order (their
-- concatenation is one gzip stream).
CREATE TABLE terminal_recordings (
    session_id  TEXT NOT NULL,
    part        BIGINT NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (session_id, part)
);

-- Append-only and hash-chained: hash = SHA-256(prev_hash || the row's fields).
CREATE TABLE audit_log (
    id         BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
