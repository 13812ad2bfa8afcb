// Progress of long work on stderr: a bar redrawn in place on a terminal, a plain line every
// few seconds otherwise (CI logs, automation). Never on stdout, which carries data.

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Progress {
  update(done: number, detail?: string): void;
  /** Clears the bar (terminal) or prints the last line (log). */
  done(): void;
}

/** Renders `[#####-----]  50% 500/1000 detail`. Pure. */
export function renderBar(done: number, total: number, options: { width?: number; detail?: string } = {}): string {
  const width = options.width ?? 24;
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(ratio * width);
  const pct = String(Math.floor(ratio * 100)).padStart(3);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct}% ${done}/${total}${options.detail ? ` ${options.detail}` : ""}`;
}

/**
 * A progress display for `total` units of `label`. Quiet (no output) when `enabled` is false.
 * @example const p = createProgress({ stream: process.stderr, total: 100, label: "events" }); p.update(10); p.done();
 */
export function createProgress(options: {
  stream: ProgressStream;
  total: number;
  label: string;
  enabled?: boolean;
  /** Minimum time between two log lines when not on a terminal; default 5 s. */
  logEveryMs?: number;
  now?: () => number;
}): Progress {
  const now = options.now ?? Date.now;
  const tty = options.stream.isTTY === true;
  const enabled = options.enabled ?? true;
  let lastDraw = 0;
  let last = { done: 0, detail: undefined as string | undefined };
  const line = () => `${options.label} ${renderBar(last.done, options.total, { detail: last.detail })}`;
  return {
    update(done, detail) {
      last = { done, detail };
      if (!enabled) return;
      const t = now();
      if (tty) {
        if (t - lastDraw < 100 && done < options.total) return;
        lastDraw = t;
        options.stream.write(`\r${line().slice(0, Math.max(20, (options.stream.columns ?? 80) - 1))}\u001b[K`);
      } else if (t - lastDraw >= (options.logEveryMs ?? 5_000)) {
        lastDraw = t;
        options.stream.write(`${line()}\n`);
      }
    },
    done() {
      if (!enabled) return;
      if (tty) options.stream.write("\r\u001b[K");
      else options.stream.write(`${line()}\n`);
    },
  };
}
