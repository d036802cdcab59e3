//! The OpenAPI 3 description of `/api/v1`, served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

/// Every documented path that needs authentication, with its methods; a
/// test checks the router serves and guards exactly these.
pub const PATHS: &[(&str, &[&str])] = &[
    ("/agents", &["get"]),
    ("/agents/{id}", &["get"]),
    ("/agents/{id}/revoke", &["post"]),
    ("/agents/{id}/labels", &["put"]),
    ("/agents/{id}/metrics", &["get"]),
    ("/agents/{id}/live", &["get"]),
    ("/tokens", &["get", "post"]),
    ("/tokens/{id}/revoke", &["post"]),
    ("/projects", &["get", "post"]),
    ("/ca", &["get"]),
    ("/prometheus", &["get"]),
    ("/auth/logout", &["post"]),
    ("/auth/me", &["get"]),
    ("/exec", &["get", "post"]),
    ("/exec/{id}", &["get"]),
    ("/exec/{id}/events", &["get"]),
    ("/exec/{id}/cancel", &["post"]),
    ("/agents/{id}/terminal/ticket", &["post"]),
    ("/agents/{id}/terminals", &["get"]),
    ("/agents/{id}/recordings", &["get"]),
    ("/recordings/{id}", &["get"]),
    ("/audit", &["get"]),
    ("/audit/verify", &["get"]),
];

/// Documented paths that answer without authentication.
pub const PUBLIC_PATHS: &[(&str, &[&str])] = &[
    ("/auth/login", &["post"]),
    ("/ws", &["get"]),
    ("/agents/{id}/terminal", &["get"]),
    ("/openapi.json", &["get"]),
];

pub async fn document() -> Json<Value> {
    Json(spec())
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } })
}

fn q(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": { "type": ty }, "description": description })
}

fn ok(schema: &str) -> Value {
    json!({
        "200": { "description": "OK", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } },
        "400": { "$ref": "#/components/responses/Error" },
        "401": { "$ref": "#/components/responses/Error" },
        "404": { "$ref": "#/components/responses/Error" }
    })
}

pub fn spec() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sovereign control plane API",
            "version": "v1",
            "description": "Fleet control plane. Authenticate with `Authorization: Bearer <token>` (the bootstrap admin token is printed on first start and kept in DATA_DIR/admin.token). Times are Unix milliseconds."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/agents": { "get": {
                "summary": "List agents (filtered, paged)",
                "parameters": [
                    q("project", "string", "Only this project"),
                    q("status", "string", "online, offline or revoked"),
                    q("label", "string", "k=v[,k=v]: every label must match"),
                    q("q", "string", "Substring of hostname or id"),
                    q("limit", "integer", "Page size, 1..1000 (default 100)"),
                    q("offset", "integer", "Items to skip")
                ],
                "responses": ok("AgentPage")
            }},
            "/agents/{id}": { "get": { "summary": "One agent, with live state and top processes when online", "parameters": [id_param()], "responses": ok("Agent") } },
            "/agents/{id}/revoke": { "post": { "summary": "Revoke an agent: cuts its stream within seconds and refuses it from then on", "parameters": [id_param()], "responses": ok("Agent") } },
            "/agents/{id}/labels": { "put": {
                "summary": "Replace an agent's labels",
                "parameters": [id_param()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["labels"], "properties": { "labels": { "type": "object", "additionalProperties": { "type": "string" } } } } } } },
                "responses": ok("Agent")
            }},
            "/agents/{id}/metrics": { "get": {
                "summary": "One metric series over a time range, aggregated per step (min/avg/max)",
                "parameters": [
                    id_param(),
                    { "name": "series", "in": "query", "required": true, "schema": { "type": "string" }, "description": "e.g. cpu, mem.used, disk.used:/, net.rx:eth0" },
                    q("from", "integer", "Start, Unix ms (default to - 1h)"),
                    q("to", "integer", "End, Unix ms (default now)"),
                    q("step", "string", "10s, 1m, ... or milliseconds (default: range/300, at least 10s)")
                ],
                "responses": ok("Series")
            }},
            "/agents/{id}/live": { "get": {
                "summary": "Server-sent events with 1 s samples and process snapshots while connected",
                "parameters": [id_param()],
                "responses": { "200": { "description": "text/event-stream of JSON events" }, "409": { "$ref": "#/components/responses/Error" } }
            }},
            "/tokens": {
                "get": { "summary": "List join tokens (never their secrets)", "responses": ok("TokenList") },
                "post": {
                    "summary": "Create a join token; the secret and the enroll command are returned once",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CreateToken" } } } },
                    "responses": { "201": { "description": "Created", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CreatedToken" } } } }, "400": { "$ref": "#/components/responses/Error" } }
                }
            },
            "/tokens/{id}/revoke": { "post": { "summary": "Revoke a join token", "parameters": [id_param()], "responses": ok("Token") } },
            "/projects": {
                "get": { "summary": "List projects", "responses": ok("ProjectList") },
                "post": {
                    "summary": "Create a project",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$" } } } } } },
                    "responses": { "201": { "description": "Created" }, "409": { "$ref": "#/components/responses/Error" } }
                }
            },
            "/ca": { "get": { "summary": "The control plane's CA certificate and its SHA-256 (what agents pin)", "responses": ok("Ca") } },
            "/auth/login": { "post": {
                "summary": "Sign in to the dashboard: sets an HttpOnly SameSite=Strict session cookie and returns the CSRF token to send as X-CSRF-Token on changes. Five failures lock the username for 15 minutes.",
                "security": [],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["username", "password"], "properties": { "username": { "type": "string" }, "password": { "type": "string" } } } } } },
                "responses": { "200": { "description": "Signed in" }, "401": { "$ref": "#/components/responses/Error" }, "429": { "$ref": "#/components/responses/Error" } }
            }},
            "/auth/logout": { "post": { "summary": "End the session", "responses": { "204": { "description": "Signed out" } } } },
            "/auth/me": { "get": { "summary": "The signed-in user and the session's CSRF token", "responses": { "200": { "description": "OK" }, "401": { "$ref": "#/components/responses/Error" } } } },
            "/ws": { "get": {
                "summary": "WebSocket for the dashboard (same origin, session cookie). Client: {type:subscribe, ids}, {type:watch, id}, {type:unwatch}. Server: agent, summary, live, processes, counts, resync, error.",
                "security": [],
                "responses": { "101": { "description": "Switching protocols" }, "403": { "$ref": "#/components/responses/Error" } }
            }},
            "/exec": {
                "get": { "summary": "Recent exec jobs with per-host counts", "parameters": [q("limit", "integer", "1..500 (default 50)")], "responses": ok("Any") },
                "post": {
                    "summary": "Run a command on agents chosen by ids, or by project and labels (operator role, recent sign-in). Each agent runs it at most once.",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["target"], "properties": {
                        "target": { "type": "object", "properties": { "ids": { "type": "array", "items": { "type": "string" } }, "project": { "type": "string" }, "labels": { "type": "object" } } },
                        "argv": { "type": "array", "items": { "type": "string" } }, "script": { "type": "string" },
                        "env": { "type": "object" }, "cwd": { "type": "string" }, "timeout": { "type": "string" }, "run_as": { "type": "string" },
                        "concurrency": { "type": "integer", "minimum": 1, "maximum": 1000 }
                    } } } } },
                    "responses": { "201": { "description": "Started: {id, agents}" }, "400": { "$ref": "#/components/responses/Error" }, "403": { "$ref": "#/components/responses/Error" } }
                }
            },
            "/exec/{id}": { "get": { "summary": "A job with every host's state, result and stored output", "parameters": [id_param()], "responses": ok("Any") } },
            "/exec/{id}/events": { "get": { "summary": "Server-sent events: run, output, result, done (stored first, then live)", "parameters": [id_param()], "responses": { "200": { "description": "text/event-stream" } } } },
            "/exec/{id}/cancel": { "post": { "summary": "Cancel a running job (kills each host's process group)", "parameters": [id_param()], "responses": ok("Any") } },
            "/agents/{id}/terminal/ticket": { "post": {
                "summary": "A single-use, 30 s ticket to open (or, with session_id, resume) a terminal (operator role, recent sign-in)",
                "parameters": [id_param()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "session_id": { "type": "string" } } } } } },
                "responses": { "201": { "description": "{ticket, session_id, expires_in_s}" }, "409": { "$ref": "#/components/responses/Error" } }
            }},
            "/agents/{id}/terminal": { "get": {
                "summary": "WebSocket relayed to the agent's PTY. First message {type:auth, ticket, session_id, cols, rows, offset}; output arrives as binary frames (8-byte big-endian offset + bytes); input as binary frames; {type:resize, cols, rows}.",
                "security": [], "parameters": [id_param()],
                "responses": { "101": { "description": "Switching protocols" }, "403": { "$ref": "#/components/responses/Error" } }
            }},
            "/agents/{id}/terminals": { "get": { "summary": "Live terminal sessions that can be resumed", "parameters": [id_param()], "responses": ok("Any") } },
            "/agents/{id}/recordings": { "get": { "summary": "Recorded terminal sessions: who, when, how long", "parameters": [id_param()], "responses": ok("Any") } },
            "/recordings/{id}": { "get": { "summary": "A session's recording as asciicast v2 text", "parameters": [id_param()], "responses": { "200": { "description": "application/x-asciicast" } } } },
            "/audit": { "get": { "summary": "The audit log, newest first", "parameters": [q("limit", "integer", "1..1000"), q("before", "integer", "Entries with a smaller id")], "responses": ok("Any") } },
            "/audit/verify": { "get": { "summary": "Checks the audit log's hash chain", "responses": ok("Any") } },
            "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OK" } } } },
            "/prometheus": { "get": {
                "summary": "Latest point of every connected agent in Prometheus text format (sovereign_host_* gauges labelled agent_id, hostname, project, instance)",
                "responses": { "200": { "description": "text/plain; version=0.0.4" }, "401": { "$ref": "#/components/responses/Error" } }
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } },
            "schemas": {
                "Any": { "type": "object" },
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Agent": { "type": "object", "properties": {
                    "id": { "type": "string" }, "project": { "type": "string" }, "hostname": { "type": "string" },
                    "status": { "type": "string", "enum": ["online", "offline", "revoked"] },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                    "agent_version": { "type": "string" }, "enrolled_at": { "type": "integer" },
                    "last_seen": { "type": "integer", "nullable": true }, "revoked_at": { "type": "integer", "nullable": true },
                    "facts": { "type": "object" }, "live": { "type": "object" }
                }},
                "AgentPage": { "type": "object", "properties": { "total": { "type": "integer" }, "offset": { "type": "integer" }, "items": { "type": "array", "items": { "$ref": "#/components/schemas/Agent" } } } },
                "Series": { "type": "object", "properties": {
                    "agent_id": { "type": "string" }, "series": { "type": "string" }, "from": { "type": "integer" }, "to": { "type": "integer" },
                    "step_ms": { "type": "integer" }, "source": { "type": "string", "enum": ["points", "rollups"] },
                    "points": { "type": "array", "items": { "type": "object", "properties": { "ts": { "type": "integer" }, "min": { "type": "number" }, "avg": { "type": "number" }, "max": { "type": "number" } } } }
                }},
                "CreateToken": { "type": "object", "additionalProperties": false, "properties": {
                    "project": { "type": "string", "default": "default" }, "ttl": { "type": "string", "default": "1h" },
                    "uses": { "type": "integer", "minimum": 1, "maximum": 100000, "default": 1 },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } }, "description": { "type": "string", "maxLength": 200 }
                }},
                "Token": { "type": "object", "properties": {
                    "id": { "type": "string" }, "project": { "type": "string" }, "state": { "type": "string", "enum": ["active", "used", "expired", "revoked"] },
                    "labels": { "type": "object" }, "description": { "type": "string" }, "uses_total": { "type": "integer" }, "uses_left": { "type": "integer" },
                    "created_at": { "type": "integer" }, "expires_at": { "type": "integer" }, "revoked_at": { "type": "integer", "nullable": true }
                }},
                "CreatedToken": { "allOf": [{ "$ref": "#/components/schemas/Token" }, { "type": "object", "properties": {
                    "secret": { "type": "string" }, "ca_sha256": { "type": "string" }, "server": { "type": "string" }, "command": { "type": "string" }
                }}]},
                "TokenList": { "type": "array", "items": { "$ref": "#/components/schemas/Token" } },
                "ProjectList": { "type": "array", "items": { "type": "object", "properties": { "id": { "type": "string" }, "created_at": { "type": "integer" } } } },
                "Ca": { "type": "object", "properties": { "sha256": { "type": "string" }, "pem": { "type": "string" }, "server": { "type": "string" } } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_path_has_its_methods() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        assert_eq!(paths.len(), PATHS.len() + PUBLIC_PATHS.len());
        for (path, methods) in PATHS.iter().chain(PUBLIC_PATHS) {
            let item = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} undocumented"));
            for m in *methods {
                assert!(item.get(*m).is_some(), "{m} {path} undocumented");
            }
        }
    }
}
