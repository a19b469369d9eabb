/** A one-line progress bar for terminals; silent when the stream is not a TTY. */
import type { LoadProgress } from './load-generator.js';

/** A progress display. */
export interface ProgressBar {
  update(label: string, p: LoadProgress): void;
  /** Clears the line. */
  done(): void;
}

/** Formats one progress line (exported for tests). */
export function progressLine(label: string, p: LoadProgress, width = 24): string {
  const f = p.fraction ?? 0;
  const filled = Math.max(0, Math.min(width, Math.round(f * width)));
  const bar =
    p.fraction === undefined ? '?'.repeat(width) : `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  return `${label} [${bar}] ${p.fraction === undefined ? '' : `${Math.round(f * 100)}% `}${p.done}/${p.sent} done, ${p.inFlight} in flight, ${p.errors} errors, ${(p.elapsedMs / 1000).toFixed(1)} s${p.warmingUp ? ' (warm-up)' : ''}`;
}

/**
 * Creates a progress bar on `stream` (a no-op unless it is a TTY). A terminal
 * that reports 0 columns (some CI pseudo-terminals, a detached tmux pane) is
 * taken as 100 wide.
 */
export function createProgressBar(stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!stream.isTTY) return { update() {}, done() {} };
  let shown = false;
  const columns = () => (stream.columns && stream.columns > 1 ? stream.columns : 100);
  return {
    update(label, p) {
      const cols = columns();
      stream.write(
        `\r${progressLine(label, p)
          .slice(0, cols - 1)
          .padEnd(cols - 1)}`,
      );
      shown = true;
    },
    done() {
      if (shown) stream.write(`\r${' '.repeat(columns() - 1)}\r`);
      shown = false;
    },
  };
}
