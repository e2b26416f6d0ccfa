/**
 * Child process for the reproduce interruption test: `reproduce dda --quick` reduced to one
 * canary pair, one epoch and one gradient method (a few seconds instead of minutes), through
 * the same runReproduce as the command. Prints the run folder when done.
 */
import { runReproduce } from '../../src/cli/reproduce';
import { initBackend } from '../../src/runtime/backend';

const [out] = process.argv.slice(2);
(async () => {
  await initBackend('wasm');
  const r = await runReproduce({
    experiment: 'dda',
    quick: true,
    out,
    progress: false,
    log: (line) => process.stderr.write(`${line}\n`),
    dda: { pairs: [0], nTrain: 200, gradientMethods: ['gradDot'] },
  });
  process.stdout.write(`${r.dir}\n`);
})().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
