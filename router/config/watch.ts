/**
 * Hot reload of the router config: watches the file and its directory (so a
 * Kubernetes ConfigMap's atomic symlink swap is seen), debounces bursts of
 * events, and re-reads only when the content changed. An invalid file is
 * reported and the last good config keeps serving.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Options of {@link watchConfigFile}. */
export interface ConfigWatchOptions<T> {
  path: string;
  /** Reads and validates the file; throws on an invalid file. */
  load: () => T;
  /** Called with each new valid config. */
  onReload: (config: T) => void;
  /** Called when a changed file is invalid (the previous config stays). */
  onError: (err: unknown) => void;
  /** Called when a forced re-read (SIGHUP) finds the file as it was last loaded. */
  onUnchanged?: () => void;
  debounceMs?: number;
}

/** A running watch; `reload()` forces a re-read (SIGHUP). */
export interface ConfigWatch {
  reload(): void;
  close(): void;
}

/** Starts watching. The current file content counts as already loaded. */
export function watchConfigFile<T>(options: ConfigWatchOptions<T>): ConfigWatch {
  const debounceMs = options.debounceMs ?? 100;
  const digest = () => {
    try {
      return createHash('sha256').update(readFileSync(options.path)).digest('hex');
    } catch {
      return '';
    }
  };
  let lastDigest = digest();
  let timer: NodeJS.Timeout | undefined;

  const check = (force: boolean) => {
    const d = digest();
    if (d === lastDigest) {
      if (force) options.onUnchanged?.();
      return;
    }
    // Remember the digest even when invalid: the same bad file is reported once.
    lastDigest = d;
    let next: T;
    try {
      next = options.load();
    } catch (err) {
      options.onError(err);
      return;
    }
    options.onReload(next);
  };
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      check(false);
    }, debounceMs);
  };

  const watchers: FSWatcher[] = [];
  const file = basename(options.path);
  try {
    // Directory events cover editors that replace the file and ConfigMap
    // symlink swaps (..data → new timestamped dir), which file watches miss.
    watchers.push(
      watch(dirname(options.path), (_event, name) => {
        if (!name || name === file || name.startsWith('..')) schedule();
      }),
    );
  } catch (err) {
    options.onError(err);
  }
  try {
    watchers.push(watch(options.path, schedule));
  } catch {
    // The directory watch still works.
  }

  return {
    reload: () => check(true),
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
