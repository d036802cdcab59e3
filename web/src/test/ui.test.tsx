import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError, api } from "../api/client";
import { App } from "../app/App";
import { markUp, reachability } from "../app/reachability";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { StatusBadge } from "../components/StatusBadge";
import { Enroll } from "../pages/Enroll";
import { Fleet } from "../pages/fleet/Fleet";
import { SignIn } from "../pages/SignIn";
import { fakeLayout, fakeLive, makeAgent, renderWithLive } from "./helpers";

let restoreLayout: () => void;
beforeEach(() => {
  restoreLayout = fakeLayout();
  window.history.replaceState(null, "", "/fleet");
  markUp();
});
afterEach(() => restoreLayout());

describe("sign-in", () => {
  it("shows the server's message for a lock-out and clears the password", async () => {
    vi.spyOn(api, "login").mockRejectedValue(
      new ApiError(429, "locked", "Too many failed sign-ins. Try again in 15 minutes."),
    );
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Username"), "admin");
    await user.type(screen.getByLabelText("Password"), "wrong");
    await user.click(screen.getByTestId("signin-submit"));
    const err = await screen.findByTestId("signin-error");
    expect(err.textContent).toBe("Too many failed sign-ins. Try again in 15 minutes.");
    expect(err.dataset.code).toBe("locked");
    expect(err.getAttribute("role")).toBe("alert");
    expect((screen.getByTestId("signin-password") as HTMLInputElement).value).toBe("");
    expect(onSignedIn).not.toHaveBeenCalled();
  });

  it("asks for both fields before calling the server", async () => {
    const login = vi.spyOn(api, "login");
    render(<SignIn onSignedIn={() => undefined} />);
    fireEvent.submit(screen.getByTestId("signin-form"));
    expect((await screen.findByTestId("signin-error")).textContent).toMatch(/username and password/);
    expect(login).not.toHaveBeenCalled();
  });
});

describe("app shell", () => {
  it("goes from sign-in to the fleet and back out on sign-out", async () => {
    vi.spyOn(api, "me").mockRejectedValue(new ApiError(401, "unauthorized", "Sign in."));
    vi.spyOn(api, "login").mockResolvedValue({ user: { id: "u1", username: "admin" }, csrf_token: "c" });
    vi.spyOn(api, "logout").mockResolvedValue(undefined);
    vi.spyOn(api, "projects").mockResolvedValue([]);
    vi.spyOn(api, "listAgents").mockResolvedValue({ total: 1, offset: 0, items: [makeAgent()] });
    const OrigWS = globalThis.WebSocket;
    globalThis.WebSocket = class {
      readyState = 0;
      onopen = null;
      onclose = null;
      onerror = null;
      onmessage = null;
      send() {}
      close() {}
    } as unknown as typeof WebSocket;
    try {
      render(<App />);
      const user = userEvent.setup();
      await user.type(await screen.findByTestId("signin-username"), "admin");
      await user.type(screen.getByTestId("signin-password"), "pw");
      await user.click(screen.getByTestId("signin-submit"));
      expect(await screen.findByTestId("agent-row")).toBeTruthy();
      expect(screen.getByTestId("current-user").textContent).toBe("admin");
      expect(screen.getByTestId("ws-status").dataset.state).toBe("connecting");
      await user.click(screen.getByTestId("logout"));
      expect((await screen.findByTestId("signin-notice")).textContent).toMatch(/signed out/);
    } finally {
      globalThis.WebSocket = OrigWS;
    }
  });

  it("shows a banner while the control plane is unreachable", async () => {
    vi.spyOn(api, "me").mockImplementation(async () => {
      api.hooks.onUnreachable?.(new ApiError(0, "unreachable", "Cannot reach the control plane."));
      throw new ApiError(0, "unreachable", "Cannot reach the control plane.");
    });
    render(<App />);
    const banner = await screen.findByTestId("connection-banner");
    expect(banner.textContent).toMatch(/Control plane unreachable/);
    expect(banner.textContent).toMatch(/Retrying in \d+ s/);
    expect(reachability.get().down).toBe(true);
    expect(screen.getByRole("button", { name: "Retry now" })).toBeTruthy();
  });

  it("theme toggle flips and remembers the theme", async () => {
    vi.spyOn(api, "me").mockResolvedValue({ user: { id: "u1", username: "admin" }, csrf_token: "c" });
    vi.spyOn(api, "projects").mockResolvedValue([]);
    vi.spyOn(api, "listAgents").mockResolvedValue({ total: 0, offset: 0, items: [] });
    const OrigWS = globalThis.WebSocket;
    globalThis.WebSocket = class {
      readyState = 0;
      send() {}
      close() {}
    } as unknown as typeof WebSocket;
    try {
      render(<App />);
      const toggle = await screen.findByTestId("theme-toggle");
      expect(toggle.getAttribute("aria-label")).toBe("Switch to dark theme");
      fireEvent.click(toggle);
      expect(document.documentElement.dataset.theme).toBe("dark");
      expect(window.localStorage.getItem("sovereign.theme")).toBe("dark");
      expect(screen.getByTestId("theme-toggle").getAttribute("aria-label")).toBe("Switch to light theme");
      expect(await screen.findByText(/No agents yet/)).toBeTruthy();
    } finally {
      globalThis.WebSocket = OrigWS;
    }
  });
});

describe("fleet page", () => {
  it("subscribes to visible rows and applies pushed summaries and status changes", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([]);
    const a = makeAgent({ id: "a-1", hostname: "alpha" });
    const b = makeAgent({ id: "a-2", hostname: "beta" });
    const list = vi.spyOn(api, "listAgents").mockResolvedValue({ total: 2, offset: 0, items: [a, b] });
    const { live, sent, push } = fakeLive();
    renderWithLive(<Fleet />, live);
    await screen.findAllByTestId("agent-row");
    expect(list.mock.calls[0]?.[0].toString()).toBe("limit=100&offset=0");
    await waitFor(() => expect(sent).toContainEqual({ type: "subscribe", ids: ["a-1", "a-2"] }));

    act(() => push({ type: "summary", id: "a-1", ts: Date.now(), cpu: 97, mem: 20, disk: 30 }));
    const rowA = () => screen.getAllByTestId("agent-row").find((r) => r.dataset.agentId === "a-1")!;
    await waitFor(() => expect(within(rowA()).getByTestId("spark-cpu").getAttribute("aria-label")).toBe("CPU 97%"));

    act(() => push({ type: "agent", agent: { ...a, status: "offline", last_seen: Date.now() - 120_000 } }));
    await waitFor(() => expect(rowA().dataset.status).toBe("offline"));
    expect(within(rowA()).getByTestId("status-badge").textContent).toBe("Offline");

    act(() => push({ type: "counts", online: 1, offline: 1, revoked: 0 }));
    await waitFor(() => expect(screen.getByTestId("status-filter-offline").textContent).toBe("Offline1"));
  });

  it("sends filters to the server and keeps them in the address bar", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([{ id: "prod", created_at: 1 }]);
    const list = vi.spyOn(api, "listAgents").mockResolvedValue({ total: 0, offset: 0, items: [] });
    const { live } = fakeLive();
    renderWithLive(<Fleet />, live);
    await waitFor(() => expect(list).toHaveBeenCalledTimes(1));
    fireEvent.click(screen.getByTestId("status-filter-online"));
    await waitFor(() => expect(list).toHaveBeenCalledTimes(2));
    expect(window.location.search).toBe("?status=online");
    expect(list.mock.calls[1]?.[0].get("status")).toBe("online");
    const user = userEvent.setup();
    await user.type(screen.getByTestId("fleet-search"), "db");
    await waitFor(() => expect(window.location.search).toBe("?q=db&status=online"));
    await waitFor(() => expect(list.mock.calls.at(-1)?.[0].get("q")).toBe("db"));
    expect(await screen.findByText(/No agents match/)).toBeTruthy();
  });

  it("shows a load error with a retry", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([]);
    const list = vi
      .spyOn(api, "listAgents")
      .mockRejectedValueOnce(new ApiError(500, "internal", "internal error"))
      .mockResolvedValue({ total: 1, offset: 0, items: [makeAgent()] });
    const { live } = fakeLive();
    renderWithLive(<Fleet />, live);
    const err = await screen.findByTestId("error");
    expect(err.textContent).toMatch(/internal error/);
    fireEvent.click(within(err).getByRole("button", { name: "Retry" }));
    expect(await screen.findByTestId("agent-row")).toBeTruthy();
    expect(list).toHaveBeenCalledTimes(2);
  });
});

describe("confirm dialog", () => {
  it("focuses Cancel, cancels on Escape, confirms on click", () => {
    const onCancel = vi.fn();
    const onConfirm = vi.fn();
    render(
      <ConfirmDialog title="Revoke web-01?" confirmLabel="Revoke agent" onCancel={onCancel} onConfirm={onConfirm}>
        <p>Sure?</p>
      </ConfirmDialog>,
    );
    const dialog = screen.getByRole("dialog", { name: "Revoke web-01?" });
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(document.activeElement).toBe(screen.getByTestId("confirm-cancel"));
    fireEvent.keyDown(dialog, { key: "Escape" });
    expect(onCancel).toHaveBeenCalledTimes(1);
    fireEvent.click(screen.getByRole("button", { name: "Revoke agent" }));
    expect(onConfirm).toHaveBeenCalledTimes(1);
  });
});

describe("status badge", () => {
  it("says the status in words as well as colour", () => {
    render(<StatusBadge status="revoked" />);
    expect(screen.getByTestId("status-badge").textContent).toBe("Revoked");
  });
});

describe("enroll page", () => {
  it("creates a token and copies its command", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([
      { id: "default", created_at: 1 },
      { id: "prod", created_at: 2 },
    ]);
    vi.spyOn(api, "tokens").mockResolvedValue([]);
    const create = vi.spyOn(api, "createToken").mockResolvedValue({
      id: "tok-1",
      project: "prod",
      state: "active",
      labels: { env: "prod" },
      description: "",
      uses_total: 3,
      uses_left: 3,
      created_at: Date.now(),
      expires_at: Date.now() + 3_600_000,
      revoked_at: null,
      secret: "s3cr3t",
      ca_sha256: "ab".repeat(32),
      server: "https://cp:8443",
      command: "sovereign-agent enroll --server https://cp:8443 --token s3cr3t --ca-sha256 abab && sovereign-agent run",
    });
    render(<Enroll />);
    const user = userEvent.setup();
    // After setup(): user-event installs its own clipboard stub.
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { configurable: true, value: { writeText } });
    Object.defineProperty(window, "isSecureContext", { configurable: true, value: true });
    await waitFor(() => expect(screen.getByRole("option", { name: "prod" })).toBeTruthy());
    await user.selectOptions(screen.getByLabelText("Project"), "prod");
    await user.selectOptions(screen.getByLabelText("Lifetime"), "24h");
    await user.clear(screen.getByLabelText("Uses"));
    await user.type(screen.getByLabelText("Uses"), "3");
    await user.type(screen.getByLabelText("Labels"), "env=prod");
    await user.click(screen.getByTestId("token-create"));

    expect(create).toHaveBeenCalledWith({ project: "prod", ttl: "24h", uses: 3, labels: { env: "prod" }, description: "" });
    const cmd = await screen.findByTestId("enroll-command");
    expect(cmd.textContent).toContain("--token s3cr3t");
    await user.click(screen.getByRole("button", { name: "Copy command" }));
    expect(writeText).toHaveBeenCalledWith(cmd.textContent);
    expect(screen.getByTestId("copy-command").textContent).toBe("Copied");
  });

  it("falls back to execCommand without the async clipboard", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([]);
    vi.spyOn(api, "tokens").mockResolvedValue([]);
    Object.defineProperty(navigator, "clipboard", { configurable: true, value: undefined });
    const exec = vi.fn().mockReturnValue(true);
    (document as unknown as { execCommand: unknown }).execCommand = exec;
    const { copyText } = await import("../lib/clipboard");
    expect(await copyText("hello")).toBe(true);
    expect(exec).toHaveBeenCalledWith("copy");
  });

  it("lists tokens and revokes one after confirmation", async () => {
    vi.spyOn(api, "projects").mockResolvedValue([]);
    const tokens = vi.spyOn(api, "tokens").mockResolvedValue([
      {
        id: "tok-abcdef12",
        project: "default",
        state: "active",
        labels: {},
        description: "rack 4",
        uses_total: 1,
        uses_left: 1,
        created_at: Date.now(),
        expires_at: Date.now() + 1000,
        revoked_at: null,
      },
    ]);
    const revoke = vi.spyOn(api, "revokeToken").mockResolvedValue(undefined);
    render(<Enroll />);
    fireEvent.click(await screen.findByTestId("revoke-token"));
    expect(screen.getByTestId("confirm-dialog")).toBeTruthy();
    fireEvent.click(screen.getByTestId("confirm-ok"));
    await waitFor(() => expect(revoke).toHaveBeenCalledWith("tok-abcdef12"));
    await waitFor(() => expect(screen.queryByTestId("confirm-dialog")).toBeNull());
    await waitFor(() => expect(tokens).toHaveBeenCalledTimes(2));
  });
});
