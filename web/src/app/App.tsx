// The app shell: checks the session, shows sign-in or the dashboard, owns
// the tab's WebSocket while signed in, and routes between pages.

import { lazy, Suspense, useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { ApiError, api, errorMessage } from "../api/client";
import type { Session, User } from "../api/types";
import { LiveSocket, liveUrl } from "../api/ws";
import { ErrorBox, Loading } from "../components/Notice";
import { Link, matchPath, useLocation } from "../lib/router";
import { setTheme, useTheme } from "../lib/theme";
import { Enroll } from "../pages/Enroll";
import { Fleet } from "../pages/fleet/Fleet";
import { SignIn } from "../pages/SignIn";
import { LiveIndicator, UnreachableBanner } from "./ConnectionBanner";
import { LiveContext } from "./live";
import { markDown, markUp } from "./reachability";

type Auth =
  | { kind: "checking"; error: string | null }
  | { kind: "signed-out"; notice: string | null }
  | { kind: "signed-in"; user: User };

// The agent page carries the chart library: load it when first opened.
const AgentPage = lazy(() => import("../pages/agent/AgentPage").then((m) => ({ default: m.AgentPage })));
// xterm.js comes with the terminal and the recording player only.
const TerminalPage = lazy(() => import("../pages/terminal/TerminalPage").then((m) => ({ default: m.TerminalPage })));
const RecordingPage = lazy(() => import("../pages/terminal/RecordingPage").then((m) => ({ default: m.RecordingPage })));
const ExecPage = lazy(() => import("../pages/exec/ExecPage").then((m) => ({ default: m.ExecPage })));
const ExecRunPage = lazy(() => import("../pages/exec/ExecRunPage").then((m) => ({ default: m.ExecRunPage })));
const AuditPage = lazy(() => import("../pages/AuditPage").then((m) => ({ default: m.AuditPage })));

const SESSION_ENDED = "Your session has ended. Sign in again.";

export function App() {
  const [auth, setAuth] = useState<Auth>({ kind: "checking", error: null });

  useEffect(() => {
    api.hooks = {
      onUnreachable: (e) => markDown(e.message),
      onReachable: markUp,
      onUnauthorized: () =>
        setAuth((a) => (a.kind === "signed-in" ? { kind: "signed-out", notice: SESSION_ENDED } : a)),
    };
    return () => {
      api.hooks = {};
    };
  }, []);

  /** Asks who we are; throws while the control plane is unreachable. */
  const checkSession = useCallback(async () => {
    try {
      const s = await api.me();
      setAuth((a) => (a.kind === "signed-in" && a.user.id === s.user.id ? a : { kind: "signed-in", user: s.user }));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setAuth((a) => ({ kind: "signed-out", notice: a.kind === "signed-in" ? SESSION_ENDED : null }));
        return;
      }
      if (e instanceof ApiError && e.unreachable) throw e;
      setAuth((a) => (a.kind === "checking" ? { kind: "checking", error: errorMessage(e) } : a));
    }
  }, []);

  useEffect(() => {
    checkSession().catch(() => undefined);
  }, [checkSession]);

  let body;
  if (auth.kind === "checking") {
    body = (
      <div className="boot">
        {auth.error ? (
          <ErrorBox title="Could not start" message={auth.error} onRetry={() => checkSession().catch(() => undefined)} />
        ) : (
          <Loading label="Connecting to the control plane…" />
        )}
      </div>
    );
  } else if (auth.kind === "signed-out") {
    body = (
      <SignIn
        notice={auth.notice}
        onSignedIn={(s: Session) => setAuth({ kind: "signed-in", user: s.user })}
      />
    );
  } else {
    body = (
      <Shell
        user={auth.user}
        checkSession={checkSession}
        onSignedOut={() => setAuth({ kind: "signed-out", notice: "You have signed out." })}
      />
    );
  }

  return (
    <>
      <UnreachableBanner probe={checkSession} />
      {body}
    </>
  );
}

function ThemeToggle() {
  const theme = useTheme();
  const other = theme === "dark" ? "light" : "dark";
  return (
    <button
      type="button"
      className="icon theme-toggle"
      onClick={() => setTheme(other)}
      aria-label={`Switch to ${other} theme`}
      title={`Switch to ${other} theme`}
      data-testid="theme-toggle"
    >
      <span aria-hidden="true">{theme === "dark" ? "☀" : "☾"}</span>
    </button>
  );
}

function Shell({
  user,
  checkSession,
  onSignedOut,
}: {
  user: User;
  checkSession(): Promise<void>;
  onSignedOut(): void;
}) {
  const socket = useMemo(() => new LiveSocket({ url: liveUrl() }), []);
  useEffect(() => {
    socket.start();
    return () => socket.stop();
  }, [socket]);
  const wsState = useSyncExternalStore(
    (fn) => socket.onState(fn),
    () => socket.state,
    () => socket.state,
  );

  // A socket that keeps failing may mean the session ended: ask.
  const failing = wsState.kind === "waiting" && wsState.attempt >= 2 ? wsState.attempt : 0;
  useEffect(() => {
    if (failing > 0) checkSession().catch(() => undefined);
  }, [failing, checkSession]);

  const [logoutError, setLogoutError] = useState<string | null>(null);
  const [loggingOut, setLoggingOut] = useState(false);
  const logout = async () => {
    setLoggingOut(true);
    setLogoutError(null);
    try {
      await api.logout();
      socket.stop();
      onSignedOut();
    } catch (e) {
      setLogoutError(errorMessage(e));
      setLoggingOut(false);
    }
  };

  const loc = useLocation();
  const path = loc.pathname;
  const agentMatch = matchPath("/agents/:id", path);
  const termMatch = matchPath("/agents/:id/terminal", path) ?? matchPath("/agents/:id/terminal/:sessionId", path);
  const recordingMatch = matchPath("/recordings/:sessionId", path);
  const execMatch = matchPath("/exec/:id", path);
  let page;
  let title = "Sovereign";
  if (path === "/" || path === "/fleet" || path === "/index.html") {
    page = <Fleet />;
    title = "Fleet · Sovereign";
  } else if (agentMatch?.id) {
    page = <AgentPage key={agentMatch.id} id={agentMatch.id} />;
    title = "Agent · Sovereign";
  } else if (termMatch?.id) {
    page = <TerminalPage key={termMatch.id} agentId={termMatch.id} sessionId={termMatch.sessionId ?? null} />;
    title = "Terminal · Sovereign";
  } else if (recordingMatch?.sessionId) {
    page = <RecordingPage key={recordingMatch.sessionId} sessionId={recordingMatch.sessionId} />;
    title = "Recording · Sovereign";
  } else if (path === "/exec") {
    page = <ExecPage />;
    title = "Run · Sovereign";
  } else if (execMatch?.id) {
    page = <ExecRunPage key={execMatch.id} id={execMatch.id} />;
    title = "Run · Sovereign";
  } else if (path === "/audit") {
    page = <AuditPage />;
    title = "Audit · Sovereign";
  } else if (path === "/enroll") {
    page = <Enroll />;
    title = "Enroll · Sovereign";
  } else {
    page = (
      <section className="page">
        <h1>Page not found</h1>
        <p>
          Nothing lives at this address. <Link to="/fleet">Go to the fleet</Link>.
        </p>
      </section>
    );
  }
  useEffect(() => {
    document.title = title;
  }, [title]);

  const navLink = (to: string, label: string, active: boolean) => (
    <Link to={to} aria-current={active ? "page" : undefined} className="nav-link" data-testid={`nav-${label.toLowerCase()}`}>
      {label}
    </Link>
  );

  return (
    <LiveContext.Provider value={socket}>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/fleet" className="brand" aria-label="Sovereign home">
          <img src="/favicon.svg" alt="" width={22} height={22} />
          <span>Sovereign</span>
        </Link>
        <nav aria-label="Main" className="nav">
          {navLink("/fleet", "Fleet", path === "/" || path === "/fleet" || !!agentMatch || !!termMatch || !!recordingMatch)}
          {navLink("/exec", "Run", path === "/exec" || !!execMatch)}
          {navLink("/audit", "Audit", path === "/audit")}
          {navLink("/enroll", "Enroll", path === "/enroll")}
        </nav>
        <span className="spacer" />
        <LiveIndicator state={wsState} onRetry={() => socket.retryNow()} />
        <ThemeToggle />
        <span className="user" data-testid="current-user" title="Signed in as">
          {user.username}
        </span>
        <button type="button" className="small" onClick={logout} disabled={loggingOut} data-testid="logout">
          {loggingOut ? "Signing out…" : "Sign out"}
        </button>
      </header>
      {logoutError && (
        <div className="banner banner-error" role="alert" data-testid="logout-error">
          Could not sign out: {logoutError}
        </div>
      )}
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading label="Loading…" />}>{page}</Suspense>
      </main>
    </LiveContext.Provider>
  );
}
