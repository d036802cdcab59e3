// The HTTP client of /api/v1. It is the only code that calls fetch: it adds
// the CSRF header to every state-changing request, turns every failure into
// an `ApiError` whose message is fit to show, and tells the app when the
// control plane becomes unreachable, reachable again, or says the session
// is over.

import type {
  Agent,
  AgentPage,
  AuditPage,
  CreatedToken,
  ExecCreated,
  ExecDetail,
  ExecSpec,
  ExecSummary,
  JoinToken,
  Labels,
  NewToken,
  Project,
  Recording,
  SeriesResponse,
  Session,
  TerminalSession,
  TerminalTicket,
} from "./types";

export const API_BASE = "/api/v1";

/** A failed API call. `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** The control plane (or the network to it) is down, not the request. */
  get unreachable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export function isAbort(e: unknown): boolean {
  return !!e && typeof e === "object" && (e as { name?: unknown }).name === "AbortError";
}

/** A message to show for any error thrown by a call. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error && e.message) return e.message;
  return "Something went wrong.";
}

const FALLBACK_MESSAGES: Record<number, string> = {
  400: "The control plane rejected the request.",
  401: "Your session has ended. Sign in again.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  409: "That conflicts with the current state; reload and try again.",
  413: "The request is too large.",
  429: "Too many requests. Wait a moment and try again.",
};

/** Maps a non-2xx response to an ApiError, preferring the server's own words. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let code = "";
  let message = "";
  try {
    const body: unknown = await res.json();
    if (body && typeof body === "object" && "error" in body) {
      const err = (body as { error: unknown }).error;
      if (err && typeof err === "object") {
        const e = err as { code?: unknown; message?: unknown };
        if (typeof e.code === "string") code = e.code;
        if (typeof e.message === "string") message = e.message;
      }
    }
  } catch {
    // Not JSON (a proxy's error page, an empty body): fall back below.
  }
  if (!code) code = `http_${res.status}`;
  if (!message) {
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      message = `The control plane is unavailable (HTTP ${res.status}).`;
    } else {
      message = FALLBACK_MESSAGES[res.status] ?? `The control plane answered HTTP ${res.status}.`;
    }
  }
  return new ApiError(res.status, code, message);
}

export const UNREACHABLE_MESSAGE =
  "Cannot reach the control plane. Check that it is running and that this machine can reach it.";

export interface ClientHooks {
  /** A request found the control plane unreachable. */
  onUnreachable?(error: ApiError): void;
  /** A request got an answer (any status) from the control plane. */
  onReachable?(): void;
  /** A request was refused because the session is over (HTTP 401). */
  onUnauthorized?(error: ApiError): void;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Don't report a 401 through onUnauthorized (sign-in, session probe). */
  expect401?: boolean;
  /** Return the body as text instead of parsing JSON (recordings). */
  text?: boolean;
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

const SAFE_METHODS = new Set<Method>(["GET"]);

export class ApiClient {
  csrfToken: string | null = null;
  hooks: ClientHooks;
  private readonly fetchImpl: typeof fetch;
  private readonly base: string;

  constructor(opts: { fetch?: typeof fetch; base?: string; hooks?: ClientHooks } = {}) {
    // Bind so that a plain `fetch` keeps its `this` (window) when called.
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.base = opts.base ?? API_BASE;
    this.hooks = opts.hooks ?? {};
  }

  async request<T>(method: Method, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.send<T>(method, path, body, opts, true);
  }

  private async send<T>(
    method: Method,
    path: string,
    body: unknown,
    opts: RequestOptions,
    mayRetryCsrf: boolean,
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: opts.text ? "*/*" : "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (!SAFE_METHODS.has(method) && this.csrfToken) headers["X-CSRF-Token"] = this.csrfToken;
    let res: Response;
    try {
      res = await this.fetchImpl(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        signal: opts.signal,
      });
    } catch (e) {
      if (isAbort(e) || opts.signal?.aborted) throw e;
      const err = new ApiError(0, "unreachable", UNREACHABLE_MESSAGE);
      this.hooks.onUnreachable?.(err);
      throw err;
    }
    if (res.ok) {
      this.hooks.onReachable?.();
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      if (opts.text) return text as T;
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new ApiError(res.status, "bad_response", "The control plane sent a response that could not be read.");
      }
    }
    const err = await errorFromResponse(res);
    if (err.unreachable) {
      this.hooks.onUnreachable?.(err);
      throw err;
    }
    this.hooks.onReachable?.();
    if (err.status === 401 && !opts.expect401) this.hooks.onUnauthorized?.(err);
    // A stale CSRF token (e.g. after the session was renewed elsewhere):
    // fetch the current one once and retry.
    if (err.status === 403 && err.code.toLowerCase().includes("csrf") && mayRetryCsrf && !SAFE_METHODS.has(method)) {
      try {
        await this.me(opts.signal);
      } catch {
        throw err;
      }
      return this.send<T>(method, path, body, opts, false);
    }
    throw err;
  }

  // --- Authentication -----------------------------------------------------

  async me(signal?: AbortSignal): Promise<Session> {
    const s = await this.request<Session>("GET", "/auth/me", undefined, { signal, expect401: true });
    this.csrfToken = s.csrf_token;
    return s;
  }

  async login(username: string, password: string): Promise<Session> {
    const s = await this.request<Session>("POST", "/auth/login", { username, password }, { expect401: true });
    this.csrfToken = s.csrf_token;
    return s;
  }

  async logout(): Promise<void> {
    try {
      await this.request<void>("POST", "/auth/logout", undefined, { expect401: true });
    } catch (e) {
      // Already signed out is as good as signed out.
      if (!(e instanceof ApiError && e.status === 401)) throw e;
    }
    this.csrfToken = null;
  }

  // --- Agents ---------------------------------------------------------------

  listAgents(query: URLSearchParams, signal?: AbortSignal): Promise<AgentPage> {
    return this.request("GET", `/agents?${query.toString()}`, undefined, { signal });
  }

  getAgent(id: string, signal?: AbortSignal): Promise<Agent> {
    return this.request("GET", `/agents/${encodeURIComponent(id)}`, undefined, { signal });
  }

  setLabels(id: string, labels: Labels): Promise<Agent> {
    return this.request("PUT", `/agents/${encodeURIComponent(id)}/labels`, { labels });
  }

  revokeAgent(id: string): Promise<Agent> {
    return this.request("POST", `/agents/${encodeURIComponent(id)}/revoke`);
  }

  metrics(
    id: string,
    q: { series: string; from: number; to: number; step: string },
    signal?: AbortSignal,
  ): Promise<SeriesResponse> {
    const params = new URLSearchParams({
      series: q.series,
      from: String(Math.floor(q.from)),
      to: String(Math.floor(q.to)),
      step: q.step,
    });
    return this.request("GET", `/agents/${encodeURIComponent(id)}/metrics?${params.toString()}`, undefined, {
      signal,
    });
  }

  // --- Enrollment -------------------------------------------------------------

  tokens(signal?: AbortSignal): Promise<JoinToken[]> {
    return this.request("GET", "/tokens", undefined, { signal });
  }

  createToken(t: NewToken): Promise<CreatedToken> {
    return this.request("POST", "/tokens", t);
  }

  revokeToken(id: string): Promise<JoinToken | undefined> {
    return this.request("POST", `/tokens/${encodeURIComponent(id)}/revoke`);
  }

  projects(signal?: AbortSignal): Promise<Project[]> {
    return this.request("GET", "/projects", undefined, { signal });
  }

  // --- Terminal -------------------------------------------------------------

  /** A single-use ticket for the terminal WebSocket; `sessionId` resumes that PTY. */
  terminalTicket(agentId: string, sessionId?: string, signal?: AbortSignal): Promise<TerminalTicket> {
    return this.request("POST", `/agents/${encodeURIComponent(agentId)}/terminal/ticket`, sessionId ? { session_id: sessionId } : {}, {
      signal,
    });
  }

  terminals(agentId: string, signal?: AbortSignal): Promise<TerminalSession[]> {
    return this.request("GET", `/agents/${encodeURIComponent(agentId)}/terminals`, undefined, { signal });
  }

  recordings(agentId: string, signal?: AbortSignal): Promise<Recording[]> {
    return this.request("GET", `/agents/${encodeURIComponent(agentId)}/recordings`, undefined, { signal });
  }

  /** A recording as asciicast v2 text. */
  recording(sessionId: string, signal?: AbortSignal): Promise<string> {
    return this.request("GET", `/recordings/${encodeURIComponent(sessionId)}`, undefined, { signal, text: true });
  }

  // --- Exec -----------------------------------------------------------------

  startExec(spec: ExecSpec): Promise<ExecCreated> {
    return this.request("POST", "/exec", spec);
  }

  execs(signal?: AbortSignal): Promise<ExecSummary[]> {
    return this.request("GET", "/exec", undefined, { signal });
  }

  exec(id: string, signal?: AbortSignal): Promise<ExecDetail> {
    return this.request("GET", `/exec/${encodeURIComponent(id)}`, undefined, { signal });
  }

  cancelExec(id: string): Promise<unknown> {
    return this.request("POST", `/exec/${encodeURIComponent(id)}/cancel`);
  }

  // --- Audit ------------------------------------------------------------------

  audit(q: { limit?: number; before?: string | null } = {}, signal?: AbortSignal): Promise<AuditPage> {
    const params = new URLSearchParams({ limit: String(q.limit ?? 100) });
    if (q.before) params.set("before", q.before);
    return this.request("GET", `/audit?${params.toString()}`, undefined, { signal });
  }
}

/** Same-origin path of the SSE stream of one exec. */
export function execEventsUrl(id: string): string {
  return `${API_BASE}/exec/${encodeURIComponent(id)}/events`;
}

/** The app's one client. */
export const api = new ApiClient();
