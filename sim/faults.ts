/**
 * Fault injection: what a broken engine does, switched on by flags at start
 * or at run time through `/sim/faults`. Errors answer a share of generation
 * requests with an HTTP error; a stall stops a stream after some tokens and
 * leaves the connection open; a crash ends the process mid-stream; a slow
 * factor stretches every engine step; the health status overrides `/health`.
 * The router's breaker, retry and failover tests are built on these.
 */
import { badRequest } from './errors.js';

/** HTTP statuses an injected error may have. */
export const FAULT_ERROR_STATUSES = [429, 500, 503] as const;

/** An injected error's HTTP status. */
export type FaultErrorStatus = (typeof FAULT_ERROR_STATUSES)[number];

/** The faults in force. */
export interface SimFaults {
  /** Share of generation requests answered with `errorStatus` instead of being served, 0..1. */
  errorRate: number;
  errorStatus: FaultErrorStatus;
  /** A request that reached this many output tokens stops emitting; its connection stays open. Null: off. */
  stallAfterTokens: number | null;
  /** When a request has emitted this many tokens and is not finished, the process exits. Null: off. */
  crashAfterTokens: number | null;
  /** Multiplies the duration of every engine step (1: as modelled). */
  slowFactor: number;
  /** Status `/health` answers with, whatever the model load; null: 503 while loading, then 200. */
  healthStatus: 200 | 503 | null;
}

/** No faults: what DELETE `/sim/faults` restores. */
export const NO_FAULTS: Readonly<SimFaults> = Object.freeze({
  errorRate: 0,
  errorStatus: 500,
  stallAfterTokens: null,
  crashAfterTokens: null,
  slowFactor: 1,
  healthStatus: null,
});

/** The JSON form of {@link SimFaults} (`/sim/faults`). */
export interface SimFaultsJson {
  error_rate: number;
  error_status: FaultErrorStatus;
  stall_after_tokens: number | null;
  crash_after_tokens: number | null;
  slow_factor: number;
  health_status: 200 | 503 | null;
}

/** The JSON form of `faults`. */
export function faultsToJson(faults: Readonly<SimFaults>): SimFaultsJson {
  return {
    error_rate: faults.errorRate,
    error_status: faults.errorStatus,
    stall_after_tokens: faults.stallAfterTokens,
    crash_after_tokens: faults.crashAfterTokens,
    slow_factor: faults.slowFactor,
    health_status: faults.healthStatus,
  };
}

const FIELDS: Record<keyof SimFaultsJson, keyof SimFaults> = {
  error_rate: 'errorRate',
  error_status: 'errorStatus',
  stall_after_tokens: 'stallAfterTokens',
  crash_after_tokens: 'crashAfterTokens',
  slow_factor: 'slowFactor',
  health_status: 'healthStatus',
};

/**
 * Checks a set of faults given in code (flags, options); throws a RangeError
 * naming the first bad field.
 */
export function validateFaults(faults: Partial<SimFaults>): Partial<SimFaults> {
  for (const [key, value] of Object.entries(faults) as Array<[keyof SimFaults, unknown]>) {
    const problem = checkField(key, value);
    if (problem) throw new RangeError(`${key} ${problem}`);
  }
  return faults;
}

/**
 * Parses a POST `/sim/faults` body: a JSON object with any of the
 * {@link SimFaultsJson} fields (null turns a fault off). Unknown fields and bad
 * values are a 400 naming the field.
 */
export function parseFaultsPatch(body: unknown): Partial<SimFaults> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('faults: expected a JSON object');
  }
  const patch: Partial<Record<keyof SimFaults, unknown>> = {};
  for (const [name, raw] of Object.entries(body)) {
    const key = FIELDS[name as keyof SimFaultsJson];
    if (!key) throw badRequest(`${name}: unknown fault; known: ${Object.keys(FIELDS).join(', ')}`, name);
    // null switches a fault off: back to its no-fault value.
    const value = raw === null ? NO_FAULTS[key] : raw;
    const problem = checkField(key, value);
    if (problem) throw badRequest(`${name} ${problem}`, name);
    patch[key] = value;
  }
  return patch as Partial<SimFaults>;
}

function checkField(key: keyof SimFaults, value: unknown): string | undefined {
  const isCount = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  switch (key) {
    case 'errorRate':
      return typeof value === 'number' && value >= 0 && value <= 1 ? undefined : 'must be a number in [0, 1]';
    case 'errorStatus':
      return (FAULT_ERROR_STATUSES as readonly unknown[]).includes(value)
        ? undefined
        : `must be one of ${FAULT_ERROR_STATUSES.join(', ')}`;
    case 'stallAfterTokens':
    case 'crashAfterTokens':
      return value === null || isCount(value) ? undefined : 'must be a non-negative integer or null';
    case 'slowFactor':
      return typeof value === 'number' && Number.isFinite(value) && value > 0
        ? undefined
        : 'must be a number > 0';
    case 'healthStatus':
      return value === null || value === 200 || value === 503 ? undefined : 'must be 200, 503 or null';
    default:
      return 'is not a fault';
  }
}

/** The faults of one simulator, changed at run time. */
export interface FaultState {
  /** The faults in force now. */
  get(): Readonly<SimFaults>;
  /** Applies `patch` over the current faults; returns the result. */
  merge(patch: Partial<SimFaults>): Readonly<SimFaults>;
  /** Back to no faults; returns the result. */
  reset(): Readonly<SimFaults>;
}

/** Creates the fault state, starting from `initial` over no faults. */
export function createFaultState(initial: Partial<SimFaults> = {}): FaultState {
  const given = Object.fromEntries(Object.entries(initial).filter(([, v]) => v !== undefined));
  let current: Readonly<SimFaults> = Object.freeze({ ...NO_FAULTS, ...validateFaults(given) });
  return {
    get: () => current,
    merge(patch) {
      current = Object.freeze({ ...current, ...patch });
      return current;
    },
    reset() {
      current = NO_FAULTS;
      return current;
    },
  };
}
