import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRandom } from '../../common/random.js';
import { buildSnapshot, createSnapshotKeeper, type Snapshot } from './snapshot.js';

/** A stand-in for an endpoint: what reports and tracked streams change. */
interface Ep {
  address: string;
  model: string;
  version: string;
  ready: boolean;
  inFlight: number;
  /** Its current view (replaced on every change, as the endpoint set does). */
  view: View;
}
type View = Readonly<Omit<Ep, 'view'>>;

const viewOf = (e: Ep): View => ({
  address: e.address,
  model: e.model,
  version: e.version,
  ready: e.ready,
  inFlight: e.inFlight,
});

/** The snapshot's content: every view, and each pool's views, by identity. */
function layout(s: Snapshot<View>, pools: ReadonlyArray<readonly [string, string]>) {
  return {
    endpoints: [...s.endpoints],
    pools: pools.map(([m, v]) => [...s.pool(m, v)]),
  };
}

describe('snapshot keeper', () => {
  it('keeps the snapshot a fresh rebuild would give, after a random sequence of reports, tracks, additions and removals', () => {
    const models = ['', 'a', 'b'];
    const versions = ['v1', 'v2'];
    const pools = models.flatMap((m) => versions.map((v) => [m, v] as const));
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = createRandom(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)] as T;
      const keeper = createSnapshotKeeper<Ep, View>();
      const live: Ep[] = [];
      let next = 0;
      const add = () => {
        const e: Ep = {
          address: `10.0.0.${next++}:7001`,
          model: '',
          version: '',
          ready: false,
          inFlight: 0,
        } as Ep;
        e.view = viewOf(e);
        live.push(e);
        keeper.add(e);
      };
      for (let i = 0; i < 30; i++) add();
      let held: Snapshot<View> | undefined;
      let heldLayout: ReturnType<typeof layout> | undefined;
      for (let step = 0; step < 2_000; step++) {
        const op = random();
        if (op < 0.45 && live.length > 0) {
          // A report: load changes, sometimes the model or version (first report, redeploy).
          const e = pick(live);
          if (random() < 0.1) e.model = pick(models);
          if (random() < 0.1) e.version = pick(versions);
          e.ready = random() < 0.8;
          e.view = viewOf(e);
          keeper.changed(e);
        } else if (op < 0.85 && live.length > 0) {
          // A stream opened or closed.
          const e = pick(live);
          e.inFlight = Math.max(0, e.inFlight + (random() < 0.6 ? 1 : -1));
          e.view = viewOf(e);
          keeper.changed(e);
        } else if (op < 0.93 && live.length > 0) {
          const i = Math.floor(random() * live.length);
          keeper.delete(live[i] as Ep);
          live.splice(i, 1);
        } else if (op < 0.99) {
          add();
        } else {
          keeper.changedAll();
        }
        // Snapshots are taken at random moments, several changes apart.
        if (random() < 0.3) {
          const s = keeper.snapshot((e) => e.view);
          assert.equal(keeper.stale, false);
          assert.equal(
            keeper.snapshot((e) => e.view),
            s,
            'no change, same snapshot',
          );
          assert.deepStrictEqual(
            layout(s, pools),
            layout(
              buildSnapshot(live, (e) => e.view),
              pools,
            ),
            `seed ${seed}, step ${step}`,
          );
          const fresh = layout(s, pools);
          for (const [i, v] of fresh.endpoints.entries())
            assert.equal(v, live[i]?.view, 'the very view objects, in order');
          // A snapshot handed out earlier never changes.
          if (held && heldLayout) assert.deepStrictEqual(layout(held, pools), heldLayout);
          if (random() < 0.2) {
            held = s;
            heldLayout = fresh;
          }
        }
      }
    }
  });

  it('asks only for the views of changed keys', () => {
    const keeper = createSnapshotKeeper<number, { model: string; version: string; n: number }>();
    for (let k = 0; k < 100; k++) keeper.add(k);
    let asked = 0;
    const view = (k: number) => {
      asked++;
      return { model: 'm', version: 'v1', n: k };
    };
    keeper.snapshot(view);
    assert.equal(asked, 100);
    asked = 0;
    keeper.changed(7);
    keeper.changed(42);
    const s = keeper.snapshot(view);
    assert.equal(asked, 2);
    assert.equal(s.pool('m', 'v1').length, 100);
    assert.deepEqual(s.pool('x', 'v1'), []);
  });
});
