/**
 * Process lifecycle shared by the long-running commands: graceful stop on
 * SIGTERM / SIGINT (a second signal forces exit), and stop when the parent
 * launcher goes away (IPC disconnect), so no process is left orphaned.
 */

/** Runs `stop` once on the first termination signal or parent loss; resolves when it finished. */
export function untilStopped(name: string, stop: (reason: string) => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (reason: string) => {
      if (stopping) {
        process.stderr.write(`${name}: forced exit on second ${reason}\n`);
        process.exit(130);
      }
      stopping = true;
      stop(reason).then(
        () => resolve(),
        (err: unknown) => {
          process.stderr.write(`${name}: error while stopping: ${String(err)}\n`);
          resolve();
        },
      );
    };
    process.on('SIGTERM', () => handler('SIGTERM'));
    process.on('SIGINT', () => handler('SIGINT'));
    if (process.send) process.on('disconnect', () => handler('parent exit'));
  });
}
