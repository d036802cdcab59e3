// Loads data for a view with loading and error states, aborts when the view
// goes away, and reloads when the control plane comes back after an outage.

import { useCallback, useEffect, useRef, useState, type DependencyList } from "react";
import { errorMessage, isAbort } from "../api/client";
import { reachability } from "./reachability";
import { useStore } from "./store";

export interface Resource<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload(): void;
  /** Replaces the data locally (after a successful PUT, a live update...). */
  setData(update: T | ((prev: T | undefined) => T | undefined)): void;
}

export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: DependencyList): Resource<T> {
  const { epoch } = useStore(reachability);
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    loadRef.current(ctl.signal).then(
      (d) => {
        if (ctl.signal.aborted) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (ctl.signal.aborted || isAbort(e)) return;
        setError(errorMessage(e));
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [...deps, epoch, nonce]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  const set = useCallback((u: T | ((prev: T | undefined) => T | undefined)) => {
    setData(u as T);
  }, []);
  return { data, error, loading, reload, setData: set };
}
