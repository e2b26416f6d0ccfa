/**
 * Regenerates the embedded base model in data/base-model/ from its seed:
 *   npm run train-base                   (full spec, ~15-30 minutes on one core)
 *   npm run train-base -- --out DIR --steps N
 */
import { DEFAULT_BASE_SPEC, EMBEDDED_DIR, trainBaseModel } from '../src/experiments/embedded';
import { progressBar } from '../src/cli/progress';
import { initBackend } from '../src/runtime/backend';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  // On the wasm backend's own kernels, where the shipped model was trained: native BLAS
  // rounds differently, and the point of this script is the same bytes from the same seed.
  await initBackend('wasm', { native: 'off' });
  const out = arg('out') ?? EMBEDDED_DIR;
  const spec = { ...DEFAULT_BASE_SPEC, ...(arg('steps') ? { steps: Number(arg('steps')) } : {}) };
  const bar = progressBar('pretraining');
  let last = 0;
  const r = trainBaseModel(out, spec, (step, loss) => {
    bar.update(step, spec.steps);
    last = loss;
    if (!process.stderr.isTTY && step % 50 === 0) process.stderr.write(`step ${step} loss ${loss.toFixed(4)}\n`);
  });
  bar.stop();
  console.log(`wrote ${out}: final loss ${r.finalLoss.toFixed(4)} (last ${last.toFixed(4)}), fact recall ${JSON.stringify(r.recall)}, ${r.seconds.toFixed(0)} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
