/**
 * A small structured logger: one JSON object per line on stderr, so container
 * log pipelines can parse it. Created per component and passed down.
 */

/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
}

/** Creates a logger for `component`; the level defaults to `LLMMESH_LOG_LEVEL` or `info`. */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const envLevel = process.env.LLMMESH_LOG_LEVEL as LogLevel | undefined;
  const level = options.level ?? (envLevel && envLevel in ORDER ? envLevel : 'info');
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const make = (base: Record<string, unknown>): Logger => {
    const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
      if (ORDER[lvl] < ORDER[level]) return;
      const record: Record<string, unknown> = {
        ts: new Date().toISOString(),
        level: lvl,
        component,
        msg,
        ...base,
      };
      if (fields) {
        for (const [k, v] of Object.entries(fields)) record[k] = v instanceof Error ? v.message : v;
      }
      write(`${JSON.stringify(record)}\n`);
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('silent', { level: 'silent' });
