import { GradDot } from '../src/attribution/gradDot';
import { GradientSet, GradientSource } from '../src/attribution/types';
import { Rng } from '../src/model/random';
import { initBackend } from '../src/runtime/backend';
function randomSet(n: number, dim: number, seed: number): GradientSet {
  const rng = new Rng(seed);
  const data = new Float32Array(n * dim);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() - 0.5;
  return { n, blocks: [{ name: 'g', shape: [dim], dim, data }] };
}
async function main() {
  await initBackend('wasm');
  const dim = 100000, n = 2000, chunk = 500;
  const test = randomSet(100, dim, 7);
  const chunks = Array.from({ length: n / chunk }, (_, k) => randomSet(chunk, dim, 1000 + k));
  const src: GradientSource = { n, blocks: [{ name: 'g', shape: [dim], dim }], chunks: function* () { for (let k = 0; k < chunks.length; k++) yield { start: k * chunk, set: chunks[k] }; } };
  for (const w of [0, 2, 0, 2]) {
    const m = new GradDot({ workers: w });
    const t0 = performance.now();
    m.cache(src);
    m.attribute(test);
    const s = (performance.now() - t0) / 1000;
    console.log(`workers ${w}: ${s.toFixed(2)} s, ${((n * 100) / s).toFixed(0)} pairs/s`);
  }
}
main();
