// The browser-test harness: starts a real control plane and a real agent on
// 127.0.0.1 with temporary state, and Debian's Chromium through
// playwright-core. Everything started here is stopped by `stop()`.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const profile = process.env.SOVEREIGN_PROFILE ?? 'debug';
export const bin = (name) => {
  const p = join(root, 'target', profile, name);
  if (!existsSync(p)) throw new Error(`${p} is missing: build it first (scripts/test.sh does)`);
  return p;
};
export const artifacts = join(root, 'tests', 'artifacts');

export function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function eventually(what, fn, timeoutMs = 20000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function run(file, args, opts = {}) {
  return new Promise((ok) => {
    execFile(file, args, { timeout: 60000, ...opts }, (err, stdout, stderr) => ok({ code: err ? err.code ?? 1 : 0, stdout, stderr }));
  });
}

/** A control plane, its admin credentials, and helpers to call its API. */
export async function startControlPlane(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sov-browser-'));
  const data = join(dir, 'data');
  const grpcPort = await freePort();
  const apiPort = await freePort();
  const child = spawn(bin('sovereign'), ['serve', '--data-dir', data, '--grpc-listen', `127.0.0.1:${grpcPort}`, '--api-listen', `127.0.0.1:${apiPort}`], {
    env: { ...process.env, RUST_LOG: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let log = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (log += d));
  // The banner arrives in several writes: wait for every line read from it.
  const banner = () => {
    const ca = /CA SHA-256: (\S+)/.exec(out);
    const pw = /with password (\S+)/.exec(out);
    return ca && pw && { caSha256: ca[1], password: pw[1] };
  };
  const { caSha256, password } = await eventually('the control plane to start', banner, 30000);
  const token = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  const url = `http://127.0.0.1:${apiPort}`;
  const api = async (method, path, body) => {
    const r = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  return {
    dir, data, url, grpc: `https://127.0.0.1:${grpcPort}`, caSha256, password, token, api,
    logs: () => log,
    stop: () => { child.kill('SIGKILL'); },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Enrolls and runs a real agent; returns its id. */
export async function startAgent(cp, { hostname, labels = {}, env = {} } = {}) {
  const state = mkdtempSync(join(tmpdir(), 'sov-agent-'));
  const t = await cp.api('POST', '/tokens', { labels });
  if (t.status !== 201) throw new Error(`token: ${JSON.stringify(t.body)}`);
  const args = ['enroll', '--server', cp.grpc, '--token', t.body.secret, '--ca-sha256', cp.caSha256, '--state-dir', state, '--machine-id', `browser-${Math.random().toString(16).slice(2)}`];
  if (hostname) args.push('--hostname', hostname);
  const r = await run(bin('sovereign-agent'), args);
  if (r.code !== 0) throw new Error(`enroll failed: ${r.stdout}${r.stderr}`);
  const id = /agent_id = "([^"]+)"/.exec(readFileSync(join(state, 'agent.toml'), 'utf8'))[1];
  const child = spawn(bin('sovereign-agent'), ['run', '--state-dir', state], {
    env: { ...process.env, RUST_LOG: 'info', SOVEREIGN_AGENT_SUMMARY_INTERVAL: '1s', SOVEREIGN_AGENT_BACKOFF_CAP: '2s', ...env },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  await eventually('the agent to come online', async () => (await cp.api('GET', `/agents/${id}`)).body?.status === 'online');
  return { id, stop: () => child.kill('SIGKILL'), cleanup: () => rmSync(state, { recursive: true, force: true }) };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/** Runs `body(page)`; on failure keeps a screenshot under tests/artifacts/. */
export async function withPage(browser, name, body, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, ...contextOptions });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await body(page, errors);
  } catch (e) {
    mkdirSync(artifacts, { recursive: true });
    const file = join(artifacts, `${name.replace(/[^a-z0-9-]+/gi, '_')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    e.message += `\n(screenshot: ${file})`;
    throw e;
  } finally {
    await context.close();
  }
}

/** Signs in through the sign-in form (the first admin unless told otherwise). */
export async function signIn(page, cp, username = 'admin', password = cp.password) {
  await page.goto(`${cp.url}/`);
  await page.getByTestId('signin-username').fill(username);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signin-submit').click();
}
