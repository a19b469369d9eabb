import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../../common/log.js';
import { createEndpointSet } from '../../../../router/upstream/endpoints.js';
import { startEngineStub } from '../../../helpers/engine-stub.js';
import { waitUntil } from '../../../helpers/wait.js';

describe('endpoint set', () => {
  it('keeps a copy of each prefix index from report deltas, and rebuilds it from scratch after a reconnect', async () => {
    const first = await startEngineStub({ model: 'm', version: 'v1' });
    let health = { failureRatio: 0, consecutiveFailures: 0 };
    const port = Number(first.address.split(':')[1]);
    const set = createEndpointSet([first.address], {
      logger: silentLogger,
      watcherId: 'spec',
      reconnectBaseMs: 10,
      breakerState: () => 'half-open',
      health: () => health,
    });
    const view = () => set.snapshot().endpoints[0];
    const until = (what: string, predicate: () => boolean) =>
      waitUntil(set.events, 'change', predicate, what);
    let second: Awaited<ReturnType<typeof startEngineStub>> | undefined;
    try {
      await until('connected', () => view()?.ready === true);
      assert.equal(view()?.breaker, 'half-open', 'breaker state is part of the view');
      assert.equal(view()?.failureRatio, 0);
      health = { failureRatio: 0.25, consecutiveFailures: 2 };
      const before = set.snapshot();
      set.invalidate(first.address);
      assert.notEqual(set.snapshot(), before);
      assert.deepEqual([view()?.failureRatio, view()?.consecutiveFailures], [0.25, 2]);
      first.prefix({ reset: true, added: [1, 2, 3] });
      await until('index copied', () => view()?.prefixIndex.size === 3);
      first.prefix({ added: [4], removed: [1] });
      await until('delta applied', () => view()?.prefixIndex.has(4) === true);
      assert.deepEqual(
        [1, 2, 3, 4].map((h) => view()?.prefixIndex.has(h)),
        [false, true, true, true],
      );

      const tracked = set.track(first.address);
      assert.equal(view()?.routerInFlight, 1, 'in-flight counts show in the next snapshot');
      tracked();
      assert.equal(view()?.routerInFlight, 0);

      await first.close();
      await until('not ready once the stream is lost', () => view()?.ready === false);
      second = await startEngineStub({ model: 'm', version: 'v1', port });
      second.prefix({ reset: true, added: [9] });
      await until('reconnected', () => view()?.ready === true && view()?.prefixIndex.has(9) === true);
      assert.equal(view()?.prefixIndex.size, 1, 'nothing of the old stream survives');
    } finally {
      set.close();
      await second?.close();
    }
  });
});
