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
