// Wire types of the control plane's JSON API (/api/v1) and WebSocket.
// Every string that comes from an agent (hostname, labels, facts, process
// names) is untrusted: it is only ever rendered as React text.

export type AgentStatus = "online" | "offline" | "revoked";

export const AGENT_STATUSES: readonly AgentStatus[] = ["online", "offline", "revoked"];

export type Labels = Record<string, string>;

export interface User {
  id: string;
  username: string;
}

export interface Session {
  user: User;
  csrf_token: string;
}

export interface HostFacts {
  hostname: string;
  os_name: string;
  os_version: string;
  kernel_version: string;
  arch: string;
  cpu_model: string;
  cpu_cores: number;
  memory_total_bytes: number;
  boot_time_ms: number;
  container: string;
}

/** One sample of many series at one instant. */
export interface Point {
  ts: number;
  values: Record<string, number>;
}

export interface ProcessInfo {
  pid: number;
  name: string;
  cpu_percent: number;
  memory_bytes: number;
}

export interface Processes {
  ts: number;
  by_cpu: ProcessInfo[];
  by_memory: ProcessInfo[];
}

export interface LiveInfo {
  connected_at: number;
  remote_addr: string;
  outbox_pending: number;
  latest?: Point | null;
  processes?: Processes | null;
}

/** Recent coarse history for the fleet sparklines (percentages). */
export interface Spark {
  ts: number[];
  cpu: number[];
  mem: number[];
  disk: number[];
}

export interface Agent {
  id: string;
  project: string;
  hostname: string;
  machine_id: string;
  status: AgentStatus;
  labels: Labels;
  agent_version: string;
  enrolled_at: number;
  last_seen: number | null;
  revoked_at: number | null;
  facts: HostFacts;
  live?: LiveInfo | null;
  spark?: Spark | null;
}

export interface StatusCounts {
  online: number;
  offline: number;
  revoked: number;
}

export interface AgentPage {
  total: number;
  offset: number;
  counts?: StatusCounts;
  items: Agent[];
}

export interface Bucket {
  ts: number;
  min: number;
  avg: number;
  max: number;
}

export interface SeriesResponse {
  series: string;
  step_ms: number;
  source: string;
  points: Bucket[];
}

export type TokenState = "active" | "used" | "expired" | "revoked";

export interface JoinToken {
  id: string;
  project: string;
  state: TokenState;
  labels: Labels;
  description: string;
  uses_total: number;
  uses_left: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface CreatedToken extends JoinToken {
  secret: string;
  ca_sha256: string;
  server: string;
  command: string;
}

export interface NewToken {
  project: string;
  ttl: string;
  uses: number;
  labels: Labels;
  description: string;
}

export interface Project {
  id: string;
  created_at: number;
}

/** Messages the server sends on /api/v1/ws. */
export type ServerMessage =
  | { type: "agent"; agent: Agent }
  | { type: "summary"; id: string; ts: number; cpu: number; mem: number; disk: number }
  | { type: "live"; id: string; points: Point[] }
  | ({ type: "counts" } & StatusCounts);

/** Messages the client sends on /api/v1/ws. */
export type ClientMessage =
  | { type: "subscribe"; ids: string[] }
  | { type: "watch"; id: string }
  | { type: "unwatch" };

/** Times of the terminal, exec and audit endpoints: epoch milliseconds (an RFC 3339 string is accepted too). */
export type Timestamp = number | string;

// --- Terminal ---------------------------------------------------------------

/** POST /agents/{id}/terminal/ticket → 201. */
export interface TerminalTicket {
  ticket: string;
  session_id: string;
  expires_in_s: number;
}

/** GET /agents/{id}/terminals: PTYs alive on the agent. */
export interface TerminalSession {
  session_id: string;
  user: string;
  started_at: Timestamp;
  last_attached_at: Timestamp | null;
  attached: boolean;
}

/** GET /agents/{id}/recordings. */
export interface Recording {
  session_id: string;
  user: string;
  started_at: Timestamp;
  ended_at: Timestamp | null;
  duration_ms: number;
  bytes: number;
}

// --- Exec ---------------------------------------------------------------------

export interface ExecTarget {
  ids?: string[];
  project?: string;
  labels?: Labels;
}

/** POST /exec. Exactly one of argv and script. */
export interface ExecSpec {
  target: ExecTarget;
  argv?: string[];
  script?: string;
  env?: Record<string, string>;
  cwd?: string;
  timeout?: string;
  run_as?: string;
  concurrency?: number;
}

export interface ExecCreated {
  id: string;
  agents: number;
}

export type ExecRunState = "pending" | "running" | "done" | "offline" | "failed";

export type ExecStream = "stdout" | "stderr";

export interface ExecChunk {
  seq: number;
  stream: ExecStream;
  data: string;
}

export interface ExecResultFields {
  exit_code: number | null;
  signal: string | number | null;
  duration_ms: number | null;
  timed_out: boolean;
  cancelled: boolean;
  truncated: boolean;
  error: string | null;
}

/** One agent's run in GET /exec/{id}. */
export interface ExecRunDetail extends Partial<ExecResultFields> {
  agent_id: string;
  hostname: string;
  state: ExecRunState;
  output?: ExecChunk[];
}

/** GET /exec/{id}. */
export interface ExecDetail {
  id: string;
  spec: ExecSpec & { [key: string]: unknown };
  created_at?: Timestamp;
  created_by?: string;
  runs: ExecRunDetail[];
}

/** One row of GET /exec. */
export interface ExecSummary {
  id: string;
  created_at: Timestamp;
  created_by: string;
  command: string;
  agents: number;
  ok: number;
  failed: number;
  running: number;
}

/** Events of GET /exec/{id}/events (SSE, by event name). */
export type ExecEvent =
  | { type: "run"; agent_id: string; hostname?: string; state: ExecRunState }
  | ({ type: "output"; agent_id: string } & ExecChunk)
  | ({ type: "result"; agent_id: string } & Partial<ExecResultFields>)
  | { type: "done" };

// --- Audit --------------------------------------------------------------------

export interface AuditEntry {
  id: string | number;
  at: Timestamp;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown> | null;
}

export interface AuditPage {
  items: AuditEntry[];
  next_before?: string | number | null;
}
