// Plays a recorded terminal session (/recordings/:sessionId): the asciicast
// v2 text from GET /api/v1/recordings/{id}, in a read-only xterm at the
// recorded size, with play/pause, speed and a seek bar. Parsing and timing
// live in lib/asciicast.ts. Loaded lazily, like the terminal.

import { WebLinksAddon } from "@xterm/addon-web-links";
import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { api } from "../../api/client";
import { useResource } from "../../app/useResource";
import { ErrorBox, Loading } from "../../components/Notice";
import { CastError, CastPlayer, parseAsciicast, SPEEDS, type Cast } from "../../lib/asciicast";
import { formatClock, formatDateTime } from "../../lib/format";
import { Link, useLocation } from "../../lib/router";
import { effectiveTheme, useTheme } from "../../lib/theme";
import { createTerminal, openLink, xtermTheme, type Terminal } from "./xterm";

export function RecordingPage({ sessionId }: { sessionId: string }) {
  const loc = useLocation();
  const agentId = new URLSearchParams(loc.search).get("agent");
  const res = useResource((signal) => api.recording(sessionId, signal), [sessionId]);
  const parsed = useMemo((): { cast: Cast } | { error: string } | null => {
    if (res.data === undefined) return null;
    try {
      return { cast: parseAsciicast(res.data) };
    } catch (e) {
      return { error: e instanceof CastError ? e.message : "The recording could not be read." };
    }
  }, [res.data]);

  useEffect(() => {
    document.title = "Recording · Sovereign";
  }, []);

  return (
    <section className="page page-recording" aria-labelledby="recording-title" data-testid="recording-page">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/fleet">Fleet</Link> <span aria-hidden="true">/</span>{" "}
        {agentId && (
          <>
            <Link to={`/agents/${encodeURIComponent(agentId)}`}>Agent</Link> <span aria-hidden="true">/</span>{" "}
          </>
        )}
        <span>Recording</span>
      </nav>
      <div className="page-head">
        <h1 id="recording-title">Recording</h1>
        <code className="muted small break">{sessionId}</code>
      </div>
      {res.error && <ErrorBox title="Could not load the recording" message={res.error} onRetry={res.reload} />}
      {!res.error && !parsed && <Loading label="Loading recording…" />}
      {parsed && "error" in parsed && <ErrorBox title="Could not play the recording" message={parsed.error} />}
      {parsed && "cast" in parsed && <Player cast={parsed.cast} />}
    </section>
  );
}

function Player({ cast }: { cast: Cast }) {
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const [player, setPlayer] = useState<CastPlayer | null>(null);
  const [, setTick] = useState(0);
  const theme = useTheme();

  useEffect(() => {
    const el = hostRef.current;
    if (!el) return;
    const term = createTerminal(effectiveTheme(), {
      cols: cast.header.width,
      rows: cast.header.height,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 2000,
    });
    term.loadAddon(new WebLinksAddon(openLink));
    term.open(el);
    termRef.current = term;
    const p = new CastPlayer(
      cast,
      {
        write: (d) => term.write(d),
        resize: (c, r) => term.resize(c, r),
        reset: () => term.reset(),
      },
      { onChange: () => setTick((n) => n + 1) },
    );
    p.seek(0);
    setPlayer(p);
    return () => {
      p.dispose();
      termRef.current = null;
      term.dispose();
    };
  }, [cast]);

  useEffect(() => {
    if (termRef.current) termRef.current.options.theme = xtermTheme(theme);
  }, [theme]);

  const pos = player?.position ?? 0;
  const playing = player?.playing ?? false;
  const speed = player?.clock.speed ?? 1;
  const started = typeof cast.header.timestamp === "number" ? cast.header.timestamp * 1000 : null;

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (!player) return;
    // A focused button handles Space itself.
    if ((e.target as HTMLElement).tagName === "BUTTON" && (e.key === " " || e.key === "Enter")) return;
    if (e.key === " " || e.key === "k") {
      e.preventDefault();
      player.toggle();
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      player.seek(player.position + 5000);
    } else if (e.key === "ArrowLeft") {
      e.preventDefault();
      player.seek(player.position - 5000);
    }
  };

  return (
    <div className="panel player" onKeyDown={onKeyDown}>
      <p className="muted small">
        {started ? `Recorded ${formatDateTime(started)} · ` : ""}
        {cast.header.width}×{cast.header.height} · {formatClock(cast.duration)}
        {typeof cast.header.title === "string" && cast.header.title ? ` · ${cast.header.title}` : ""}
        {cast.skipped > 0 ? ` · ${cast.skipped} unreadable line${cast.skipped === 1 ? "" : "s"} skipped` : ""}
      </p>
      <div className="player-controls" role="group" aria-label="Playback">
        <button
          type="button"
          className="primary"
          onClick={() => player?.toggle()}
          disabled={!player}
          aria-label={playing ? "Pause" : "Play"}
          data-testid="player-play"
          data-playing={playing ? "true" : "false"}
        >
          {playing ? "❚❚ Pause" : "▶ Play"}
        </button>
        <input
          type="range"
          className="player-seek"
          min={0}
          max={Math.max(1, Math.round(cast.duration))}
          step="any"
          value={Math.round(pos)}
          onChange={(e) => player?.seek(Number(e.target.value))}
          aria-label="Position"
          aria-valuetext={`${formatClock(pos)} of ${formatClock(cast.duration)}`}
          disabled={!player}
          data-testid="player-seek"
        />
        <span className="player-time" data-testid="player-time">
          {formatClock(pos)} / {formatClock(cast.duration)}
        </span>
        <div className="segmented" role="group" aria-label="Speed">
          {SPEEDS.map((s) => (
            <button
              key={s}
              type="button"
              aria-pressed={speed === s}
              onClick={() => player?.setSpeed(s)}
              data-testid={`player-speed-${s}`}
            >
              {s}×
            </button>
          ))}
        </div>
      </div>
      <div className="player-screen" role="region" aria-label="Recorded terminal">
        <div ref={hostRef} className="player-term" data-testid="player-terminal" />
      </div>
    </div>
  );
}
