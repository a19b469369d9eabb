/** A simulator on a manual clock for tests: time passes only when the test says so. */
import { createManualClock, type ManualClock } from '../../sim/manual-clock.js';
import { createSimServer, type SimOptions, type SimServer } from '../../sim/server.js';

/** The model name virtual simulators serve. */
export const VIRTUAL_SIM_MODEL = 'llama-3-8b-chat';

/** A running simulator and its clock. */
export interface VirtualSim {
  sim: SimServer;
  url: string;
  clock: ManualClock;
}

/** Starts a simulator on port 0 driven by a manual clock. */
export async function startVirtualSim(options: Partial<SimOptions> = {}): Promise<VirtualSim> {
  const clock = createManualClock(1_767_225_600_000);
  const sim = createSimServer({ servedModelName: VIRTUAL_SIM_MODEL, clock, ...options });
  const { url } = await sim.listen(0);
  return { sim, url, clock };
}
