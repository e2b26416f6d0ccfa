/** Terminal progress bars on stderr, so stdout stays clean for results. */
import * as cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/** A progress bar when stderr is a terminal; a few plain lines otherwise (logs, CI). */
export function progressBar(label: string, enabled = true): Progress {
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  if (!process.stderr.isTTY) {
    let lastPct = -1;
    return {
      update(done, total) {
        const pct = Math.floor((100 * done) / total / 25) * 25;
        if (pct !== lastPct) {
          process.stderr.write(`${label}: ${done}/${total}\n`);
          lastPct = pct;
        }
      },
      stop: () => undefined,
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} | {eta_formatted} left | {duration_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop: () => started && bar.stop(),
  };
}
