// The banners that say the dashboard is not getting fresh data: the control
// plane unreachable (probed with back-off until it answers) or the live
// WebSocket reconnecting.

import { useEffect, useRef, useState } from "react";
import type { SocketState } from "../api/ws";
import { backoffDelay } from "../api/ws";
import { reachability } from "./reachability";
import { useStore } from "./store";

function useCountdown(at: number | null): number | null {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (at === null) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [at]);
  return at === null ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** Shown while the control plane does not answer; probes it until it does. */
export function UnreachableBanner({ probe }: { probe(): Promise<void> }) {
  const r = useStore(reachability);
  const [retryAt, setRetryAt] = useState<number | null>(null);
  const [checking, setChecking] = useState(false);
  const attempt = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const probeRef = useRef(probe);
  probeRef.current = probe;
  const [kick, setKick] = useState(0);

  useEffect(() => {
    if (!r.down) {
      attempt.current = 0;
      setRetryAt(null);
      return;
    }
    let cancelled = false;
    const delay = backoffDelay(attempt.current, 2000, 15_000, Math.random);
    attempt.current += 1;
    setRetryAt(Date.now() + delay);
    timer.current = setTimeout(async () => {
      setChecking(true);
      setRetryAt(null);
      try {
        await probeRef.current();
      } catch {
        // Still down: the effect runs again below.
      }
      if (!cancelled) {
        setChecking(false);
        setKick((k) => k + 1);
      }
    }, delay);
    return () => {
      cancelled = true;
      if (timer.current) clearTimeout(timer.current);
    };
  }, [r.down, kick]);

  const seconds = useCountdown(retryAt);
  if (!r.down) return null;
  const retryNow = async () => {
    if (timer.current) clearTimeout(timer.current);
    setChecking(true);
    setRetryAt(null);
    try {
      await probeRef.current();
    } catch {
      // Still down.
    }
    setChecking(false);
    setKick((k) => k + 1);
  };
  return (
    <div className="banner banner-error" role="alert" data-testid="connection-banner">
      <span>
        <strong>Control plane unreachable.</strong> {r.message}{" "}
        {checking ? "Checking…" : seconds !== null ? `Retrying in ${seconds} s.` : ""}
      </span>
      <button type="button" className="small" onClick={retryNow} disabled={checking}>
        Retry now
      </button>
    </div>
  );
}

/** A compact live-updates indicator for the top bar. */
export function LiveIndicator({ state, onRetry }: { state: SocketState; onRetry(): void }) {
  const retryAt = state.kind === "waiting" ? state.retryAt : null;
  const seconds = useCountdown(retryAt);
  let text: string;
  let cls: string;
  switch (state.kind) {
    case "open":
      text = "Live";
      cls = "ok";
      break;
    case "waiting":
      text = `Live updates paused — reconnecting in ${seconds ?? 0} s`;
      cls = "warn";
      break;
    case "connecting":
      text = state.attempt > 0 ? "Reconnecting…" : "Connecting…";
      cls = "warn";
      break;
    default:
      text = "Offline";
      cls = "warn";
  }
  return (
    <span className={`live-indicator live-${cls}`} role="status" aria-live="polite" data-testid="ws-status" data-state={state.kind}>
      <span className="live-dot" aria-hidden="true" />
      <span className="live-text">{text}</span>
      {state.kind === "waiting" && (
        <button type="button" className="link small" onClick={onRetry}>
          Retry now
        </button>
      )}
    </span>
  );
}
