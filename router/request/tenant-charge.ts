/**
 * Charges a tenant's output tokens while its stream runs: in batches of
 * {@link CHARGE_BATCH_TOKENS} chunks, then reconciled with the engine's count
 * on the last chunk (awaited, so the budget is settled before the client
 * sees the end of the stream). Works across migrations: the last chunk's
 * usage covers the whole generation.
 */
import type { RelayChunk } from '../../common/chunk-relay.js';
import type { Admitted } from '../auth/gate.js';

/** Output tokens charged to a tenant's budget at a time while a stream runs. */
export const CHARGE_BATCH_TOKENS = 16;

/** Charges chunks as they pass; `onCharged` counts tokens for metrics. */
export type TenantCharge = (chunk: RelayChunk) => Promise<void> | undefined;

/** Creates the charge of one admitted request. */
export function createTenantCharge(admitted: Admitted, onCharged: (tokens: number) => void): TenantCharge {
  let charged = 0;
  let pending = 0;
  return (chunk) => {
    if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED' && chunk.usage) {
      const n = Math.max(0, chunk.usage.completionTokens - charged);
      charged += n;
      pending = 0;
      onCharged(n);
      return admitted.charge(n);
    }
    if (chunk.textBytes === 0) return undefined;
    pending++;
    if (pending < CHARGE_BATCH_TOKENS) return undefined;
    const n = pending;
    pending = 0;
    charged += n;
    onCharged(n);
    void admitted.charge(n);
    return undefined;
  };
}
