/**
 * "Address in use" for people: which flag (and environment variable) moves
 * the server that could not listen. Components report the address and, for
 * admin servers, `(admin)`; only the CLI knows the flags.
 */

/** The flag to change per command and server (`main` or `admin`). */
const FLAGS: Record<string, { main: string; admin?: string }> = {
  router: {
    main: '--listen HOST:PORT (env LLMMESH_LISTEN, or `listen:` in the config file)',
    admin: '--admin HOST:PORT (env LLMMESH_ADMIN, or `admin:` in the config file)',
  },
  sidecar: {
    main: '--listen HOST:PORT (env LLMMESH_LISTEN)',
    admin: '--admin HOST:PORT (env LLMMESH_ADMIN)',
  },
  sim: { main: '--port PORT (env LLMMESH_SIM_PORT)' },
};

function inUse(err: unknown): Error | undefined {
  for (let e = err as (Error & { code?: string; cause?: unknown }) | undefined, i = 0; e && i < 5; i++) {
    if (e.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/.test(e.message ?? ''))
      return err as Error;
    e = e.cause as typeof e;
  }
  return undefined;
}

/** A hint naming the flag to change when `err` is an "address in use" error of `command`; else undefined. */
export function addressInUseHint(command: string, err: unknown): string | undefined {
  const flags = FLAGS[command];
  const e = inUse(err);
  if (!flags || !e) return undefined;
  const admin = /\(admin\b/.test(e.message);
  const flag = admin && flags.admin ? flags.admin : flags.main;
  return `Another process holds that address (another ${command}?). Stop it, or move this ${command}${admin ? "'s admin server" : ''} with ${flag}; port 0 picks a free port.`;
}
