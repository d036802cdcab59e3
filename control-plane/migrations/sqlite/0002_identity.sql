-- People: users, their sessions, and room for roles, TOTP and single sign-on.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL DEFAULT '',
    password_hash  TEXT,
    totp_secret    TEXT,
    created_at     BIGINT NOT NULL,
    disabled_at    BIGINT
);

-- Role of a user in the whole organization (project_id = '') or in one project.
CREATE TABLE memberships (
    user_id     TEXT NOT NULL REFERENCES users (id),
    project_id  TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id)
);

-- Links to external identity providers (OIDC issuer + subject).
CREATE TABLE user_identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (provider, subject)
);

CREATE TABLE sessions (
    id_hash           TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    csrf_token        TEXT NOT NULL,
    auth_method       TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    authenticated_at  BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    remote_addr       TEXT NOT NULL DEFAULT '',
    user_agent        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Failed sign-ins per username, whether or not the user exists, so that a
-- lockout looks the same for both.
CREATE TABLE login_throttle (
    username      TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    locked_until  BIGINT,
    updated_at    BIGINT NOT NULL
);
