/**
 * Profiles one per-example LoRA gradient batch kernel by kernel (tf.profile), with a summary
 * by kind of work: matrix products, elementwise kernels, layout copies (transposes,
 * concatenations, clones), and the rest of the wall time (JavaScript, tape, allocation).
 * Run: npx tsx bench/profile-grads.ts [--seq-len 64] [--batch-size 8] [--size 5m|50m]
 * (TDA_LAB_NATIVE=0 for the wasm backend's own kernels).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../src/data/batch';
import { initAdapter, parseLoraConfig } from '../src/model/adapter';
import { batchLoraGradients } from '../src/gradients/compute';
import { LlamaModel } from '../src/model/llama';
import { loraStateFromAdapter } from '../src/model/loraState';
import { Rng } from '../src/random';
import { llamaConfig, writeRandomCheckpoint } from '../src/model/synthetic';
import { initBackend, nativeActive } from '../src/runtime/backend';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main() {
  const seqLen = Number(arg('seq-len', '64'));
  const B = Number(arg('batch-size', '8'));
  const size = arg('size', '5m');
  await initBackend('wasm');
  const cfg =
    size === '5m'
      ? llamaConfig({ hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, vocabSize: 4000 })
      : llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, vocabSize: 24000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-prof-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'bench');
  const adapter = initAdapter(model.config, lora, 1);
  const rng = new Rng(2);
  for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01));
  const state = loraStateFromAdapter(adapter);
  const seqs = Array.from({ length: B }, () => ({
    inputIds: Array.from({ length: seqLen }, () => rng.int(model.config.vocabSize)),
    promptLength: seqLen / 4,
  }));
  const batch = makeBatch(seqs);
  batchLoraGradients(model, state, batch);
  const times: number[] = [];
  for (let i = 0; i < Number(arg('reps', '5')); i++) {
    const t0 = performance.now();
    batchLoraGradients(model, state, batch);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[0];
  console.log(`batch ${B} x ${seqLen}: min ${ms.toFixed(1)} ms/batch, median ${times[times.length >> 1].toFixed(1)}; ${((B * 1000) / ms).toFixed(2)} examples/s at the min`);
  const best = new Map<string, { ms: number; n: number }>();
  for (let rep = 0; rep < 3; rep++) {
    const prof = await tf.profile(() => {
      batchLoraGradients(model, state, batch);
    });
    const byKernel = new Map<string, { ms: number; n: number }>();
    for (const k of prof.kernels) {
      if (k.name === 'forward' || k.name === 'unnamed scope') continue; // customGrad wrappers and tidy scopes: their kernels are listed themselves
      const t = (await k.kernelTimeMs) as number;
      const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('x').slice(0, 60)}`;
      const e = byKernel.get(key) ?? { ms: 0, n: 0 };
      e.ms += t;
      e.n += 1;
      byKernel.set(key, e);
    }
    for (const [k, v] of byKernel) {
      const b = best.get(k);
      if (!b || v.ms < b.ms) best.set(k, v);
    }
  }
  const total = [...best.values()].reduce((a, v) => a + v.ms, 0);
  const kind = (name: string) =>
    /MatMul/.test(name) ? 'matrix products' : /^(Transpose|Concat|Slice|Identity|Reshape|Pad|Tile|Gather)/.test(name) ? 'layout copies' : 'elementwise';
  const byKind = new Map<string, number>();
  for (const [k, v] of best) byKind.set(kind(k), (byKind.get(kind(k)) ?? 0) + v.ms);
  byKind.set('JavaScript, tape, allocation (wall minus kernels)', Math.max(0, ms - total));
  console.log(`${nativeActive() ? 'native BLAS' : 'XNNPACK'}: per stage, ms of the ${ms.toFixed(0)} ms batch`);
  for (const [k, v] of byKind) console.log(`${v.toFixed(1).padStart(8)} ms ${((100 * v) / ms).toFixed(0).padStart(3)}%  ${k}`);
  const rows = [...best.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(arg('top', '40')));
  console.log(`kernel total (min of 3 per kernel) ${total.toFixed(1)} ms`);
  for (const [k, v] of rows) console.log(`${v.ms.toFixed(1).padStart(8)} ms ${String(v.n).padStart(4)}x  ${k}`);
  fs.rmSync(dir, { recursive: true, force: true });
}
main();
