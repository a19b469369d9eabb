/**
 * Prometheus text exposition, formatted byte for byte the way the Python
 * `prometheus_client` (which vLLM uses) formats it: float values as Python
 * `repr`, switched to Go-style exponents from one million up, label names in
 * sorted order, and a `_created` gauge family after each counter and histogram.
 */

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** The content type `prometheus_client` serves. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Formats `value` as Python's `repr(float(value))`. */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Number.POSITIVE_INFINITY) return 'inf';
  if (value === Number.NEGATIVE_INFINITY) return '-inf';
  if (Object.is(value, -0)) return '-0.0';
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`;
  const exponential = value.toExponential();
  const [mantissa = '', exponentText = '0'] = exponential.split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return String(value);
}

/** Formats a sample value or `le` bound as `prometheus_client.utils.floatToGoString` does. */
export function formatPromValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  const s = pythonFloatRepr(value);
  const dot = s.indexOf('.');
  // Go switches to exponents sooner than Python.
  if (value > 0 && dot > 6) {
    const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/[0.]+$/, '');
    return `${mantissa}e+0${dot - 1}`;
  }
  return s;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** `{a="1",b="2"}` with names sorted; empty string for no labels. */
export function formatLabels(labels: Labels): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return '';
  return `{${names.map((n) => `${n}="${escapeLabelValue(labels[n]!)}"`).join(',')}}`;
}

/** Cumulative histogram state with fixed upper bounds (`+Inf` is implicit). */
export interface Histogram {
  readonly bounds: readonly number[];
  observe(value: number): void;
  /** Cumulative counts per bound, then the `+Inf` count. */
  cumulativeCounts(): number[];
  readonly count: number;
  readonly sum: number;
}

/** Creates an empty histogram with the given upper bounds (ascending). */
export function createHistogram(bounds: readonly number[]): Histogram {
  const counts = new Array<number>(bounds.length + 1).fill(0);
  let count = 0;
  let sum = 0;
  return {
    bounds,
    observe(value) {
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      counts[i]!++;
      count++;
      sum += value;
    },
    cumulativeCounts() {
      let running = 0;
      return counts.map((c) => {
        running += c;
        return running;
      });
    },
    get count() {
      return count;
    },
    get sum() {
      return sum;
    },
  };
}

/** 1, 2, 5, 10, 20, 50, ... up to `max` inclusive (vLLM's `build_1_2_5_buckets`). */
export function buildOneTwoFiveBuckets(max: number): number[] {
  const out: number[] = [];
  for (let exponent = 0; ; exponent++) {
    for (const m of [1, 2, 5]) {
      const value = m * 10 ** exponent;
      if (value > max) return out;
      out.push(value);
    }
  }
}

/** Builds an exposition text family by family. */
export interface ExpositionWriter {
  /** `# HELP` and `# TYPE` lines of a family. */
  family(name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string): void;
  /** One sample line. */
  sample(name: string, labels: Labels, value: number): void;
  /** The `_bucket`, `_count` and `_sum` lines of a histogram. */
  histogram(name: string, labels: Labels, histogram: Histogram): void;
  /** The text so far. */
  text(): string;
}

/** Creates an empty writer. */
export function createExpositionWriter(): ExpositionWriter {
  const lines: string[] = [];
  const sample = (name: string, labels: Labels, value: number) => {
    lines.push(`${name}${formatLabels(labels)} ${formatPromValue(value)}`);
  };
  return {
    family(name, type, help) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    },
    sample,
    histogram(name, labels, histogram) {
      const cumulative = histogram.cumulativeCounts();
      histogram.bounds.forEach((bound, i) => {
        sample(`${name}_bucket`, { ...labels, le: formatPromValue(bound) }, cumulative[i]!);
      });
      sample(`${name}_bucket`, { ...labels, le: '+Inf' }, cumulative[cumulative.length - 1]!);
      sample(`${name}_count`, labels, histogram.count);
      sample(`${name}_sum`, labels, histogram.sum);
    },
    text: () => (lines.length === 0 ? '' : `${lines.join('\n')}\n`),
  };
}
