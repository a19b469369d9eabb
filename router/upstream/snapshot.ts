/**
 * An immutable snapshot of a set of views (one per key, in the order the keys
 * were added, grouped into pools by model and version), kept current
 * incrementally: a change to one key's view replaces that view in a copy of
 * the arrays it sits in, instead of rebuilding every view and regrouping the
 * pools. A router with a thousand endpoints gets a load report from each
 * every 250 ms and changes a view on every stream it opens or closes.
 *
 * Only a key added or removed, or a view that moved to another pool (its
 * first report names the model), makes the next snapshot a full rebuild.
 */

/** What a view must say for pooling. */
export interface PooledView {
  readonly model: string;
  readonly version: string;
}

/** An immutable snapshot of views. */
export interface Snapshot<V extends PooledView> {
  /** Every view, in the order the keys were added. */
  readonly endpoints: readonly V[];
  /** The views of one (model, version) pool, in the same order. */
  pool(model: string, version: string): readonly V[];
}

/** Keeps a {@link Snapshot} current. */
export interface SnapshotKeeper<K, V extends PooledView> {
  /** Adds a key at the end (no-op when present). */
  add(key: K): void;
  /** Removes a key (no-op when absent). */
  delete(key: K): void;
  /** Marks the view of `key` changed: the next snapshot asks for it again. */
  changed(key: K): void;
  /** Marks every view changed. */
  changedAll(): void;
  /** True when the next {@link snapshot} will differ from the last one. */
  readonly stale: boolean;
  /**
   * The current snapshot. `view` is asked for the views of changed keys only
   * (all of them on a full rebuild), and must not change the keeper.
   */
  snapshot(view: (key: K) => V): Snapshot<V>;
}

const EMPTY: readonly never[] = Object.freeze([]);

const poolKey = (v: PooledView) => `${v.model}\u0000${v.version}`;

/** Where one key's view sits in the current snapshot. */
interface Slot {
  /** Index in `endpoints`. */
  pos: number;
  /** Its pool's key and its index there. */
  pool: string;
  poolPos: number;
}

function makeSnapshot<V extends PooledView>(endpoints: readonly V[], pools: Map<string, V[]>): Snapshot<V> {
  return {
    endpoints,
    pool: (model, version) => pools.get(`${model}\u0000${version}`) ?? EMPTY,
  };
}

/**
 * The snapshot of `keys` built from scratch: what {@link SnapshotKeeper}
 * maintains incrementally (and what its spec compares it with).
 */
export function buildSnapshot<K, V extends PooledView>(keys: Iterable<K>, view: (key: K) => V): Snapshot<V> {
  const endpoints: V[] = [];
  const pools = new Map<string, V[]>();
  for (const k of keys) {
    const v = view(k);
    endpoints.push(v);
    const p = poolKey(v);
    const list = pools.get(p);
    if (list) list.push(v);
    else pools.set(p, [v]);
  }
  return makeSnapshot(endpoints, pools);
}

/** Creates an empty keeper. */
export function createSnapshotKeeper<K, V extends PooledView>(): SnapshotKeeper<K, V> {
  const slots = new Map<K, Slot>();
  const changed = new Set<K>();
  /** Keys added or removed (or every view changed) since the last snapshot: rebuild it all. */
  let structural = true;
  let current: Snapshot<V> | undefined;
  let endpoints: V[] = [];
  let pools = new Map<string, V[]>();

  const rebuild = (view: (key: K) => V): Snapshot<V> => {
    endpoints = [];
    pools = new Map();
    for (const [k, slot] of slots) {
      const v = view(k);
      slot.pos = endpoints.length;
      endpoints.push(v);
      const p = poolKey(v);
      let list = pools.get(p);
      if (!list) {
        list = [];
        pools.set(p, list);
      }
      slot.pool = p;
      slot.poolPos = list.length;
      list.push(v);
    }
    structural = false;
    changed.clear();
    current = makeSnapshot(endpoints, pools);
    return current;
  };

  return {
    add(key) {
      if (slots.has(key)) return;
      slots.set(key, { pos: -1, pool: '', poolPos: -1 });
      structural = true;
    },
    delete(key) {
      if (!slots.delete(key)) return;
      changed.delete(key);
      structural = true;
    },
    changed(key) {
      if (slots.has(key)) changed.add(key);
    },
    changedAll() {
      structural = true;
    },
    get stale() {
      return current === undefined || structural || changed.size > 0;
    },
    snapshot(view) {
      if (current && !structural && changed.size === 0) return current;
      if (!current || structural) return rebuild(view);
      // Copy on write: the last snapshot stays as it was for whoever holds it.
      const nextEndpoints = endpoints.slice();
      const copied = new Map<string, V[]>();
      for (const k of changed) {
        const slot = slots.get(k) as Slot;
        const v = view(k);
        if (poolKey(v) !== slot.pool) return rebuild(view);
        nextEndpoints[slot.pos] = v;
        let list = copied.get(slot.pool);
        if (!list) {
          list = (pools.get(slot.pool) as V[]).slice();
          copied.set(slot.pool, list);
        }
        list[slot.poolPos] = v;
      }
      changed.clear();
      const nextPools = new Map(pools);
      for (const [p, list] of copied) nextPools.set(p, list);
      endpoints = nextEndpoints;
      pools = nextPools;
      current = makeSnapshot(endpoints, pools);
      return current;
    },
  };
}
