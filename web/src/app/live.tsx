// Gives views the signed-in tab's LiveSocket and its state.

import { createContext, useContext, useEffect, useRef, useSyncExternalStore } from "react";
import type { ServerMessage } from "../api/types";
import type { LiveSocket, SocketState } from "../api/ws";

export const LiveContext = createContext<LiveSocket | null>(null);

export function useLive(): LiveSocket {
  const s = useContext(LiveContext);
  if (!s) throw new Error("useLive outside of LiveContext");
  return s;
}

export function useSocketState(): SocketState {
  const s = useLive();
  return useSyncExternalStore(
    (fn) => s.onState(fn),
    () => s.state,
    () => s.state,
  );
}

/** Calls `handler` for every server message while the component is mounted. */
export function useLiveMessages(handler: (m: ServerMessage) => void): void {
  const s = useLive();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => s.onMessage((m) => ref.current(m)), [s]);
}

/** Counts reconnects: views that missed pushes while down reload when it changes. */
export function useReconnects(): number {
  const st = useSocketState();
  const last = useRef(0);
  if (st.kind === "open") last.current = Math.max(0, st.opens - 1);
  return last.current;
}
