import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, errorFromResponse } from "../api/client";

type Call = { url: string; init: RequestInit };

function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

function client(responses: (Response | Error | DOMException)[]) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error("no more responses");
    if (!(next instanceof Response)) throw next;
    return next;
  });
  const hooks = { onUnreachable: vi.fn(), onReachable: vi.fn(), onUnauthorized: vi.fn() };
  const c = new ApiClient({ fetch: fetch as unknown as typeof globalThis.fetch, hooks });
  return { c, calls, hooks };
}

function header(call: Call | undefined, name: string): string | undefined {
  return (call?.init.headers as Record<string, string> | undefined)?.[name];
}

describe("ApiClient", () => {
  it("remembers the CSRF token from sign-in and sends it on every state-changing request", async () => {
    const { c, calls } = client([
      json(200, { user: { id: "u1", username: "admin" }, csrf_token: "tok-1" }),
      json(200, { total: 0, offset: 0, items: [] }),
      json(200, { id: "a1" }),
      json(200, { id: "a1" }),
      json(201, { id: "t1" }),
      new Response(null, { status: 204 }),
    ]);
    await c.login("admin", "pw");
    await c.listAgents(new URLSearchParams("limit=1"));
    await c.setLabels("a1", { env: "prod" });
    await c.revokeAgent("a1");
    await c.createToken({ project: "default", ttl: "1h", uses: 1, labels: {}, description: "" });
    await c.logout();

    expect(calls.map((x) => `${x.init.method} ${x.url}`)).toEqual([
      "POST /api/v1/auth/login",
      "GET /api/v1/agents?limit=1",
      "PUT /api/v1/agents/a1/labels",
      "POST /api/v1/agents/a1/revoke",
      "POST /api/v1/tokens",
      "POST /api/v1/auth/logout",
    ]);
    expect(header(calls[1], "X-CSRF-Token")).toBeUndefined();
    for (const i of [2, 3, 4, 5]) expect(header(calls[i], "X-CSRF-Token")).toBe("tok-1");
    expect(JSON.parse(String(calls[2]?.init.body))).toEqual({ labels: { env: "prod" } });
    expect(calls[0]?.init.credentials).toBe("same-origin");
    expect(c.csrfToken).toBeNull();
  });

  it("refreshes the token from /auth/me", async () => {
    const { c, calls } = client([
      json(200, { user: { id: "u1", username: "admin" }, csrf_token: "fresh" }),
      json(200, {}),
    ]);
    await c.me();
    await c.revokeToken("t 1");
    expect(calls[1]?.url).toBe("/api/v1/tokens/t%201/revoke");
    expect(header(calls[1], "X-CSRF-Token")).toBe("fresh");
  });

  it("surfaces the server's error code and message", async () => {
    const { c, hooks } = client([
      json(429, { error: { code: "locked", message: "Too many failed sign-ins: try again in 15 minutes." } }),
    ]);
    const err = await c.login("admin", "bad").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(429);
    expect((err as ApiError).code).toBe("locked");
    expect((err as ApiError).message).toBe("Too many failed sign-ins: try again in 15 minutes.");
    expect(hooks.onReachable).toHaveBeenCalled();
    expect(hooks.onUnreachable).not.toHaveBeenCalled();
  });

  it("does not treat a failed sign-in as an expired session", async () => {
    const { c, hooks } = client([
      json(401, { error: { code: "invalid_credentials", message: "Wrong username or password." } }),
    ]);
    await expect(c.login("a", "b")).rejects.toMatchObject({ code: "invalid_credentials", status: 401 });
    expect(hooks.onUnauthorized).not.toHaveBeenCalled();
  });

  it("reports a 401 on other calls as the end of the session", async () => {
    const { c, hooks } = client([json(401, { error: { code: "unauthorized", message: "Sign in." } })]);
    await expect(c.tokens()).rejects.toMatchObject({ status: 401 });
    expect(hooks.onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it("maps a network failure to an unreachable error and tells the app", async () => {
    const { c, hooks } = client([new TypeError("Failed to fetch")]);
    const err = (await c.projects().catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(0);
    expect(err.unreachable).toBe(true);
    expect(err.message).toMatch(/Cannot reach the control plane/);
    expect(hooks.onUnreachable).toHaveBeenCalledWith(err);
  });

  it("treats a proxy's 502 page as unreachable with a readable message", async () => {
    const { c, hooks } = client([new Response("<html>Bad Gateway</html>", { status: 502 })]);
    const err = (await c.tokens().catch((e: unknown) => e)) as ApiError;
    expect(err.unreachable).toBe(true);
    expect(err.code).toBe("http_502");
    expect(err.message).toBe("The control plane is unavailable (HTTP 502).");
    expect(hooks.onUnreachable).toHaveBeenCalled();
  });

  it("lets aborts through untouched", async () => {
    const ctl = new AbortController();
    ctl.abort();
    const { c, hooks } = client([new DOMException("aborted", "AbortError")]);
    await expect(c.projects(ctl.signal)).rejects.toMatchObject({ name: "AbortError" });
    expect(hooks.onUnreachable).not.toHaveBeenCalled();
  });

  it("retries once with a fresh CSRF token when the server refuses a stale one", async () => {
    const { c, calls } = client([
      json(403, { error: { code: "csrf_mismatch", message: "Missing or wrong CSRF token." } }),
      json(200, { user: { id: "u1", username: "admin" }, csrf_token: "new" }),
      json(200, { id: "a1" }),
    ]);
    c.csrfToken = "old";
    await c.revokeAgent("a1");
    expect(calls.map((x) => x.url)).toEqual([
      "/api/v1/agents/a1/revoke",
      "/api/v1/auth/me",
      "/api/v1/agents/a1/revoke",
    ]);
    expect(header(calls[2], "X-CSRF-Token")).toBe("new");
  });

  it("builds metric queries with integer milliseconds", async () => {
    const { c, calls } = client([json(200, { series: "cpu", step_ms: 10000, source: "points", points: [] })]);
    await c.metrics("a1", { series: "disk.used:/", from: 1000.7, to: 2000.2, step: "10s" });
    expect(calls[0]?.url).toBe("/api/v1/agents/a1/metrics?series=disk.used%3A%2F&from=1000&to=2000&step=10s");
  });
});

describe("errorFromResponse", () => {
  it("falls back to a message per status when the body is not the API's", async () => {
    expect((await errorFromResponse(new Response("", { status: 404 }))).message).toBe("Not found.");
    const e = await errorFromResponse(new Response("{}", { status: 418 }));
    expect(e.message).toBe("The control plane answered HTTP 418.");
    expect(e.code).toBe("http_418");
  });
});
