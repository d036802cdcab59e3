// A terminal on an agent's PTY (/agents/:id/terminal[/:sessionId]), in
// xterm.js: fit to the window, search, copy and paste, clickable links.
// The connection (ticket, WebSocket, offsets, reattach) is TermConnection;
// this page wires it to xterm and keeps what it rendered in sessionStorage
// so a reload repaints the screen and resumes without repeating output.
// Loaded lazily: xterm stays out of the main bundle.

import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { useCallback, useEffect, useRef, useState, type KeyboardEvent as ReactKeyboardEvent } from "react";
import { api } from "../../api/client";
import { useResource } from "../../app/useResource";
import { ErrorBox } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { copyText } from "../../lib/clipboard";
import { Link, navigate } from "../../lib/router";
import { TermConnection, type TermState } from "../../lib/termConnection";
import {
  binaryStringToBytes,
  forgetSnapshot,
  loadSnapshot,
  saveSnapshot,
  TailBuffer,
  terminalUrl,
} from "../../lib/termProtocol";
import { effectiveTheme, useTheme } from "../../lib/theme";
import { createTerminal, openLink, searchDecorations, xtermTheme, type Terminal } from "./xterm";

/** Output kept per session in sessionStorage to repaint after a reload. */
const TAIL_BYTES = 64 * 1024;
const SAVE_EVERY_MS = 1000;

function terminalPath(agentId: string, sessionId?: string | null): string {
  const base = `/agents/${encodeURIComponent(agentId)}/terminal`;
  return sessionId ? `${base}/${encodeURIComponent(sessionId)}` : base;
}

export function TerminalPage({ agentId, sessionId }: { agentId: string; sessionId: string | null }) {
  const agent = useResource((signal) => api.getAgent(agentId, signal), [agentId]);
  // The session this page is connected to; the address follows it.
  const current = useRef<string | null>(sessionId);
  const [conn, setConn] = useState({ sessionId, gen: 0 });

  useEffect(() => {
    if (sessionId !== current.current) {
      current.current = sessionId;
      setConn((c) => ({ sessionId, gen: c.gen + 1 }));
    }
  }, [sessionId]);

  const onSession = useCallback(
    (sid: string) => {
      current.current = sid;
      navigate(terminalPath(agentId, sid), { replace: true });
    },
    [agentId],
  );

  const newSession = useCallback(() => {
    current.current = null;
    setConn((c) => ({ sessionId: null, gen: c.gen + 1 }));
    navigate(terminalPath(agentId), { replace: true });
  }, [agentId]);

  const a = agent.data;
  const name = a?.hostname || agentId;
  useEffect(() => {
    document.title = `Terminal · ${name} · Sovereign`;
  }, [name]);

  return (
    <section className="page page-terminal" aria-labelledby="terminal-title" data-testid="terminal-page">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/fleet">Fleet</Link> <span aria-hidden="true">/</span>{" "}
        <Link to={`/agents/${encodeURIComponent(agentId)}`}>{name}</Link> <span aria-hidden="true">/</span>{" "}
        <span>Terminal</span>
      </nav>
      <div className="page-head terminal-head">
        <h1 id="terminal-title">Terminal on {name}</h1>
        {a && <StatusBadge status={a.status} />}
      </div>
      <TerminalView
        key={conn.gen}
        agentId={agentId}
        sessionId={conn.sessionId}
        onSession={onSession}
        onNewSession={newSession}
      />
    </section>
  );
}

function statusText(s: TermState): string {
  switch (s.kind) {
    case "connecting":
      return "Connecting…";
    case "attached":
      return s.resumed ? "Connected (resumed)" : "Connected";
    case "reconnecting":
      return "Reconnecting…";
    case "closed":
      if (!s.ended) return "Disconnected";
      return s.exitCode === null ? "Session ended" : `Session ended (exit code ${s.exitCode})`;
  }
}

function TerminalView({
  agentId,
  sessionId,
  onSession,
  onNewSession,
}: {
  agentId: string;
  sessionId: string | null;
  onSession(sid: string): void;
  onNewSession(): void;
}) {
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const searchRef = useRef<SearchAddon | null>(null);
  const fitRef = useRef<(() => void) | null>(null);
  const connRef = useRef<TermConnection | null>(null);
  const searchInput = useRef<HTMLInputElement>(null);
  const onSessionRef = useRef(onSession);
  onSessionRef.current = onSession;
  const [state, setState] = useState<TermState>({ kind: "connecting" });
  const [hasSelection, setHasSelection] = useState(false);
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<{ index: number; count: number } | null>(null);
  const [maximized, setMaximized] = useState(false);
  const [copyNote, setCopyNote] = useState<string | null>(null);
  const theme = useTheme();

  useEffect(() => {
    const el = hostRef.current;
    if (!el) return;
    const term = createTerminal(effectiveTheme());
    const fit = new FitAddon();
    const search = new SearchAddon({ highlightLimit: 2000 });
    term.loadAddon(fit);
    term.loadAddon(search);
    term.loadAddon(new WebLinksAddon(openLink));
    term.open(el);
    termRef.current = term;
    searchRef.current = search;

    const doFit = () => {
      try {
        fit.fit();
      } catch {
        // Hidden or not laid out yet: the next resize fits.
      }
    };
    fitRef.current = doFit;
    doFit();

    // What this tab already rendered of the session (a reload): repaint it.
    const snap = sessionId ? loadSnapshot(sessionId) : null;
    const tail = new TailBuffer(TAIL_BYTES, snap?.tail);
    if (snap && snap.tail.byteLength > 0) term.write(snap.tail);
    let dirty = false;

    const conn = new TermConnection({
      url: terminalUrl(agentId),
      sessionId,
      initialOffset: snap?.offset ?? 0,
      getTicket: (sid) => api.terminalTicket(agentId, sid ?? undefined),
      size: () => ({ cols: term.cols, rows: term.rows }),
      onOutput: (data, gap) => {
        const before = conn.offset - data.byteLength - gap;
        if (gap > 0 && before > 0) {
          term.write(`\r\n\x1b[2m[${gap} bytes of output were lost while disconnected]\x1b[0m\r\n`);
        }
        term.write(data);
        tail.push(data);
        dirty = true;
      },
      onState: (s) => {
        setState(s);
        // Focus the terminal on attach unless the viewer is busy elsewhere (the search box).
        if (s.kind === "attached") {
          const active = document.activeElement;
          if (!active || active === document.body || el.contains(active)) term.focus();
        }
        if (s.kind === "closed" && s.ended && conn.session) {
          forgetSnapshot(conn.session);
          dirty = false;
        }
      },
      onSession: (sid) => onSessionRef.current(sid),
      onReset: () => {
        term.reset();
        tail.clear();
      },
    });
    connRef.current = conn;

    const save = () => {
      const sid = conn.session;
      if (!dirty || !sid) return;
      if (conn.state.kind === "closed" && conn.state.ended) return;
      saveSnapshot(sid, { offset: conn.offset, tail: tail.bytes() });
      dirty = false;
    };

    const disposables = [
      term.onData((d) => conn.send(d)),
      term.onBinary((d) => conn.send(binaryStringToBytes(d))),
      term.onResize(({ cols, rows }) => conn.resize(cols, rows)),
      term.onSelectionChange(() => setHasSelection(term.hasSelection())),
      search.onDidChangeResults((r) => setResults({ index: r.resultIndex, count: r.resultCount })),
    ];

    term.attachCustomKeyEventHandler((ev) => {
      const mod = ev.ctrlKey || ev.metaKey;
      const key = ev.key.toLowerCase();
      if (mod && ev.shiftKey && key === "f") {
        if (ev.type === "keydown") {
          ev.preventDefault();
          searchInput.current?.focus();
          searchInput.current?.select();
        }
        return false;
      }
      if (mod && ev.shiftKey && key === "c") {
        if (ev.type === "keydown") {
          ev.preventDefault();
          if (term.hasSelection()) void copyText(term.getSelection());
        }
        return false;
      }
      // Ctrl+Shift+V: let the browser's paste event reach xterm.
      if (mod && ev.shiftKey && key === "v") return false;
      // Ctrl+C with a selection copies it (a second Ctrl+C interrupts).
      if (ev.ctrlKey && !ev.shiftKey && !ev.altKey && key === "c" && term.hasSelection()) {
        if (ev.type === "keydown") {
          ev.preventDefault();
          void copyText(term.getSelection());
          term.clearSelection();
        }
        return false;
      }
      return true;
    });

    let frame = 0;
    const scheduleFit = () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(doFit);
    };
    const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(scheduleFit) : null;
    ro?.observe(el);
    window.addEventListener("resize", scheduleFit);
    const saver = window.setInterval(save, SAVE_EVERY_MS);
    const onHide = () => save();
    // Ctrl+Shift+F also works when focus is elsewhere on the page.
    const onPageKey = (ev: KeyboardEvent) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.shiftKey && ev.key.toLowerCase() === "f") {
        ev.preventDefault();
        searchInput.current?.focus();
        searchInput.current?.select();
      }
    };
    document.addEventListener("keydown", onPageKey);
    window.addEventListener("pagehide", onHide);
    document.addEventListener("visibilitychange", onHide);

    conn.start();
    term.focus();

    return () => {
      save();
      conn.stop();
      connRef.current = null;
      window.clearInterval(saver);
      window.removeEventListener("pagehide", onHide);
      document.removeEventListener("keydown", onPageKey);
      document.removeEventListener("visibilitychange", onHide);
      window.removeEventListener("resize", scheduleFit);
      cancelAnimationFrame(frame);
      ro?.disconnect();
      for (const d of disposables) d.dispose();
      termRef.current = null;
      searchRef.current = null;
      fitRef.current = null;
      term.dispose();
    };
    // The view is keyed by connection: agentId and sessionId are fixed for its life.
  }, []);

  useEffect(() => {
    const term = termRef.current;
    if (term) term.options.theme = xtermTheme(theme);
  }, [theme]);

  useEffect(() => {
    fitRef.current?.();
  }, [maximized]);

  const find = (dir: "next" | "prev", incremental = false) => {
    const s = searchRef.current;
    if (!s) return;
    if (!query) {
      s.clearDecorations();
      setResults(null);
      return;
    }
    const opts = { incremental, decorations: searchDecorations(theme) };
    const found = dir === "next" ? s.findNext(query, opts) : s.findPrevious(query, opts);
    if (!found) setResults({ index: -1, count: 0 });
  };

  useEffect(() => {
    find("next", true);
    // Search again as the query is typed.
  }, [query]);

  const onSearchKey = (e: ReactKeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") {
      e.preventDefault();
      find(e.shiftKey ? "prev" : "next");
    } else if (e.key === "Escape") {
      e.preventDefault();
      searchRef.current?.clearDecorations();
      termRef.current?.clearSelection();
      setResults(null);
      termRef.current?.focus();
    }
  };

  const copy = async () => {
    const t = termRef.current;
    if (!t || !t.hasSelection()) return;
    const ok = await copyText(t.getSelection());
    setCopyNote(ok ? "Copied" : "Copy failed: use Ctrl+Shift+C");
    window.setTimeout(() => setCopyNote(null), 2000);
    t.focus();
  };

  const canReadClipboard = typeof navigator !== "undefined" && !!navigator.clipboard?.readText && window.isSecureContext;
  const paste = async () => {
    const t = termRef.current;
    if (!t) return;
    try {
      const text = await navigator.clipboard.readText();
      if (text) t.paste(text);
    } catch {
      setCopyNote("Paste refused: use Ctrl+Shift+V");
      window.setTimeout(() => setCopyNote(null), 2500);
    }
    t.focus();
  };

  const closedError = state.kind === "closed" && !state.ended ? state : null;
  const ended = state.kind === "closed" && state.ended ? state : null;
  const reauth = closedError?.status === 403 && /sign in/i.test(closedError.reason);
  const resultText = !query || !results ? "" : results.count === 0 ? "No matches" : results.index >= 0 ? `${results.index + 1} of ${results.count}` : `${results.count}+ matches`;

  return (
    <div className={`terminal-shell${maximized ? " terminal-maximized" : ""}`}>
      {closedError && (
        <ErrorBox
          title={closedError.status ? "Could not open the terminal" : "Disconnected"}
          message={closedError.reason}
          onRetry={closedError.status === 403 ? undefined : () => connRef.current?.retry()}
        />
      )}
      {reauth && (
        <p className="form-notice">
          Opening a terminal needs a recent sign-in.{" "}
          <button type="button" className="small" onClick={() => void reSignIn()} data-testid="terminal-reauth">
            Sign in again
          </button>
        </p>
      )}
      <div className="terminal-toolbar" role="toolbar" aria-label="Terminal">
        <span className={`term-status term-${state.kind}`} data-testid="terminal-status" data-state={state.kind} role="status" aria-live="polite">
          <span className="live-dot" aria-hidden="true" />
          {statusText(state)}
        </span>
        {state.kind === "reconnecting" && (
          <button type="button" className="small" onClick={() => connRef.current?.retry()}>
            Retry now
          </button>
        )}
        {ended && (
          <button type="button" className="small primary" onClick={onNewSession} data-testid="terminal-new-session">
            Start a new session
          </button>
        )}
        {closedError && !reauth && sessionId && closedError.status === 404 && (
          <button type="button" className="small" onClick={onNewSession} data-testid="terminal-new-session">
            Start a new session
          </button>
        )}
        <span className="spacer" />
        <div className="term-search" role="search">
          <input
            ref={searchInput}
            type="search"
            placeholder="Search (Ctrl+Shift+F)"
            aria-label="Search terminal output"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            onKeyDown={onSearchKey}
            spellCheck={false}
            data-testid="terminal-search"
          />
          <button type="button" className="small icon" onClick={() => find("prev")} aria-label="Previous match" disabled={!query}>
            <span aria-hidden="true">↑</span>
          </button>
          <button type="button" className="small icon" onClick={() => find("next")} aria-label="Next match" disabled={!query}>
            <span aria-hidden="true">↓</span>
          </button>
          <span className="muted small term-search-count" aria-live="polite" data-testid="terminal-search-count">
            {resultText}
          </span>
        </div>
        <button type="button" className="small" onClick={() => void copy()} disabled={!hasSelection} title="Copy the selection (Ctrl+Shift+C)" data-testid="terminal-copy">
          Copy
        </button>
        {canReadClipboard && (
          <button type="button" className="small" onClick={() => void paste()} title="Paste (Ctrl+Shift+V)" data-testid="terminal-paste">
            Paste
          </button>
        )}
        <button
          type="button"
          className="small"
          aria-pressed={maximized}
          onClick={() => setMaximized((m) => !m)}
          title={maximized ? "Back to the page" : "Fill the window"}
          data-testid="terminal-maximize"
        >
          {maximized ? "Restore" : "Maximize"}
        </button>
        {copyNote && (
          <span className="muted small" role="status">
            {copyNote}
          </span>
        )}
      </div>
      <div className="terminal-area" role="region" aria-label="Terminal">
        <div ref={hostRef} className="terminal-host" data-testid="terminal" />
        {(state.kind === "connecting" || state.kind === "reconnecting") && (
          <div className="terminal-overlay" data-testid="terminal-overlay" aria-hidden="true">
            <span className="spinner" />
            {state.kind === "connecting" ? "Connecting…" : "reconnecting…"}
          </div>
        )}
      </div>
      {ended && (
        <p className="muted small" data-testid="terminal-ended">
          The shell exited{ended.exitCode !== null ? ` with code ${ended.exitCode}` : ""}
          {ended.reason ? ` (${ended.reason})` : ""}. The session is kept as a recording.
        </p>
      )}
    </div>
  );
}

/** Ends this session so the sign-in page asks for the password again; the address is kept. */
async function reSignIn(): Promise<void> {
  try {
    await api.logout();
  } catch {
    // Signed out or not, reload shows sign-in if needed.
  }
  window.location.reload();
}
