/**
 * The routing benchmark's scenarios as token-level request lists for the
 * virtual mesh (bench/routing-mesh.ts). A scenario is a pure function of its
 * settings, a seed and a rate: the arrival times are one unit-rate Poisson
 * sequence from the seed, divided by the rate, and request i's content
 * depends on the seed and i alone. So every profile at a given rate gets the
 * very same requests at the very same times.
 */
import { createRandom, deriveSeed } from '../common/random.js';
import type { MeshRequest } from './routing-mesh.js';

/** Scenario kinds. */
export type RoutingScenarioKind = 'shared-prefix' | 'skewed' | 'multi-turn' | 'unique';

/** Settings of one scenario (see `routing.yaml`). */
export interface RoutingScenario {
  name: string;
  kind: RoutingScenarioKind;
  /** What the scenario shows, for the report. */
  description: string;
  pods: number;
  /** KV blocks per pod (16 tokens each); absent: the preset's full cache. */
  num_gpu_blocks?: number;
  /** Tenants (shared-prefix, skewed) or conversations alive at once (multi-turn). */
  groups: number;
  /** System prompt tokens (per tenant, or per conversation). */
  system_prompt_len: number;
  /** New user tokens per request (per turn for multi-turn). */
  question_len: number;
  output_len: number;
  /** skewed: share of requests going to tenant 0 (the rest spread evenly). */
  hot_share?: number;
  /** multi-turn: turns per conversation. */
  turns?: number;
  /** Offered rates (req/s) the sweep starts from and steps by. */
  start_rate: number;
  rate_step: number;
  /** Simulated seconds before measuring (caches warm up), then measured. */
  warmup_s: number;
  measure_s: number;
}

/** Token ids of a scenario's pieces never collide: each kind of piece has its own range. */
const SYSTEM_BASE = 1_000;
const QUESTION_BASE = 600_000_000;

/** Unit-rate Poisson arrival times (s) for `count` requests from `seed`. */
export function unitArrivals(seed: number, count: number): number[] {
  const random = createRandom(deriveSeed(seed, 1));
  const out = new Array<number>(count);
  let t = 0;
  for (let i = 0; i < count; i++) {
    out[i] = t;
    t += -Math.log(1 - random());
  }
  return out;
}

/**
 * The requests of `scenario` at `rate` req/s for warm-up + measurement, from
 * `seed`. Request i is the same for every rate and profile; only its arrival
 * time scales with the rate.
 */
export function scenarioRequests(s: RoutingScenario, seed: number, rate: number): MeshRequest[] {
  const count = Math.ceil(rate * (s.warmup_s + s.measure_s));
  const times = unitArrivals(seed, count);
  const random = createRandom(deriveSeed(seed, 2));
  const systems = new Map<number, number[]>();
  const system = (key: number) => {
    let ids = systems.get(key);
    if (!ids) {
      ids = new Array<number>(s.system_prompt_len);
      for (let k = 0; k < ids.length; k++) ids[k] = SYSTEM_BASE + ((key * 7919 + k) % 500_000_000);
      systems.set(key, ids);
    }
    return ids;
  };
  const question = (i: number, len: number) => {
    const ids = new Array<number>(len);
    for (let k = 0; k < len; k++) ids[k] = QUESTION_BASE + i * 4096 + k;
    return ids;
  };
  const out: MeshRequest[] = [];
  if (s.kind === 'multi-turn') {
    // `groups` conversations are alive; each request continues one of them at
    // random; a conversation ends after `turns` turns and a new one takes its
    // slot. Turn k's prompt is the conversation so far: system prompt, every
    // earlier question and answer, and the new question.
    const turns = s.turns ?? 4;
    type Conv = { id: number; turn: number; history: number[][] };
    let nextId = 0;
    const slots: Conv[] = [];
    for (let c = 0; c < s.groups; c++)
      slots.push({ id: nextId++, turn: 0, history: [system(1_000_000 + c)] });
    for (let i = 0; i < count; i++) {
      const slot = Math.floor(random() * slots.length);
      let conv = slots[slot] as Conv;
      if (conv.turn >= turns) {
        const id = nextId++;
        conv = { id, turn: 0, history: [system(1_000_000 + id)] };
        slots[slot] = conv;
      }
      const q = question(i, s.question_len);
      const answerBase = QUESTION_BASE + i * 4096 + 2048;
      const answer = new Array<number>(s.output_len);
      for (let k = 0; k < answer.length; k++) answer[k] = answerBase + k;
      out.push({
        arrivalMs: ((times[i] as number) / rate) * 1000,
        segments: [...conv.history, q],
        outputTokens: s.output_len,
        sessionKey: `conv-${conv.id}`,
        outputTokenIds: (k) => answerBase + k,
      });
      conv.history = [...conv.history, q, answer];
      conv.turn++;
    }
    return out;
  }
  for (let i = 0; i < count; i++) {
    const arrivalMs = ((times[i] as number) / rate) * 1000;
    if (s.kind === 'unique') {
      out.push({
        arrivalMs,
        segments: [question(i, s.system_prompt_len + s.question_len)],
        outputTokens: s.output_len,
        sessionKey: '',
      });
      continue;
    }
    let tenant: number;
    if (s.kind === 'skewed') {
      const hot = s.hot_share ?? 0.5;
      const u = random();
      tenant = u < hot ? 0 : 1 + Math.floor(((u - hot) / (1 - hot)) * (s.groups - 1));
      tenant = Math.min(tenant, s.groups - 1);
    } else {
      tenant = Math.floor(random() * s.groups);
    }
    out.push({
      arrivalMs,
      segments: [system(tenant), question(i, s.question_len)],
      outputTokens: s.output_len,
      sessionKey: '',
    });
  }
  return out;
}
