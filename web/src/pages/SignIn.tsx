// The sign-in form. It shows the control plane's own words for a refusal:
// wrong credentials, an account locked for N minutes, too many attempts.

import { useRef, useState, type FormEvent } from "react";
import { ApiError, api, errorMessage } from "../api/client";
import type { Session } from "../api/types";

export function SignIn({ notice, onSignedIn }: { notice?: string | null; onSignedIn(s: Session): void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ code: string; message: string } | null>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    if (!username.trim() || !password) {
      setError({ code: "missing", message: "Enter your username and password." });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await api.login(username.trim(), password);
      onSignedIn(s);
    } catch (err) {
      setError({ code: err instanceof ApiError ? err.code : "error", message: errorMessage(err) });
      setPassword("");
      setBusy(false);
      passwordRef.current?.focus();
    }
  };

  return (
    <div className="signin-page">
      <form className="signin card" onSubmit={submit} aria-label="Sign in" data-testid="signin-form" noValidate>
        <div className="brand brand-large">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <span>Sovereign</span>
        </div>
        <h1>Sign in</h1>
        {notice && !error && (
          <p className="form-notice" role="status" data-testid="signin-notice">
            {notice}
          </p>
        )}
        <label htmlFor="signin-username">Username</label>
        <input
          id="signin-username"
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellCheck={false}
          autoFocus
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          data-testid="signin-username"
          aria-invalid={error?.code === "invalid_credentials" || undefined}
        />
        <label htmlFor="signin-password">Password</label>
        <input
          ref={passwordRef}
          id="signin-password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          data-testid="signin-password"
          aria-invalid={error?.code === "invalid_credentials" || undefined}
        />
        {error && (
          <p className="form-error" role="alert" data-testid="signin-error" data-code={error.code}>
            {error.message}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy} data-testid="signin-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
