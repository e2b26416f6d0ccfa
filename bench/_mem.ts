import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../src/data/batch';
import { initAdapter, parseLoraConfig } from '../src/model/adapter';
import { batchLoraGradients } from '../src/model/gradients';
import { LlamaModel } from '../src/model/llama';
import { loraStateFromAdapter } from '../src/model/loraState';
import { Rng } from '../src/model/random';
import { llamaConfig, writeRandomCheckpoint } from '../src/model/synthetic';
import { initBackend } from '../src/runtime/backend';
async function main() {
  await initBackend('wasm');
  const B = Number(process.argv[2] ?? 8), T = Number(process.argv[3] ?? 256);
  const cfg = llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, vocabSize: 24000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-mem-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  fs.rmSync(dir, { recursive: true });
  const heap = () => ((tf.backend() as any).wasm.HEAPU8.length / 2 ** 20).toFixed(0);
  console.log('after load: tensors MB', (tf.memory().numBytes / 2 ** 20).toFixed(0), 'heap MB', heap());
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'x');
  const adapter = initAdapter(model.config, lora, 1);
  const state = loraStateFromAdapter(adapter);
  const rng = new Rng(1);
  const batch = makeBatch(Array.from({ length: B }, () => ({ inputIds: Array.from({ length: T }, () => rng.int(24000)), promptLength: T / 4 })));
  let peak = 0;
  const origMul = tf.engine().backend;
  void origMul;
  const t0 = performance.now();
  batchLoraGradients(model, state, batch);
  console.log('batch done', ((performance.now() - t0) / 1000).toFixed(1), 's; heap MB', heap(), 'peak tensors (engine) MB', (tf.memory() as any).peakBytes ?? '?');
  void peak;
}
if (!["prof","split"].includes(process.argv[2])) main();
async function prof() {
  await initBackend('wasm');
  const B = 4, T = 256;
  const cfg = llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, vocabSize: 24000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-mem-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  fs.rmSync(dir, { recursive: true });
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'x');
  const state = loraStateFromAdapter(initAdapter(model.config, lora, 1));
  const rng = new Rng(1);
  const batch = makeBatch(Array.from({ length: B }, () => ({ inputIds: Array.from({ length: T }, () => rng.int(24000)), promptLength: T / 4 })));
  const base = tf.memory().numBytes;
  const p = await tf.profile(() => { batchLoraGradients(model, state, batch); });
  console.log('peakBytes MB above base', ((p.peakBytes - base) / 2 ** 20).toFixed(0));
  let maxSnap = 0, at = '';
  const byName = new Map<string, number>();
  for (const k of p.kernels) {
    if (k.totalBytesSnapshot > maxSnap) { maxSnap = k.totalBytesSnapshot; at = k.name + ' ' + JSON.stringify(k.outputShapes); }
    byName.set(k.name, (byName.get(k.name) ?? 0) + k.bytesAdded);
  }
  console.log('max snapshot MB', ((maxSnap - base) / 2 ** 20).toFixed(0), 'at', at);
  console.log([...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(0)}MB`).join('\n'));
}
if (process.argv[2] === 'prof') prof();
import { replicatePerExample } from '../src/model/loraState';
import { crossEntropyRows, gatherRows } from '../src/runtime/ops';
async function split() {
  await initBackend('wasm');
  const B = Number(process.argv[3] ?? 4), T = 256;
  const cfg = llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, vocabSize: 24000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-mem-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  fs.rmSync(dir, { recursive: true });
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'x');
  const shared = loraStateFromAdapter(initAdapter(model.config, lora, 1));
  const rng = new Rng(1);
  const batch = makeBatch(Array.from({ length: B }, () => ({ inputIds: Array.from({ length: T }, () => rng.int(24000)), promptLength: T / 4 })));
  const c = model.batchConstants(batch);
  const per = replicatePerExample(shared, B);
  const paths = [...per.factors.keys()];
  const params = paths.flatMap((p) => [per.factors.get(p)!.aT, per.factors.get(p)!.bT]);
  const base = tf.memory().numBytes;
  const MB = (x: number) => ((x - base) / 2 ** 20).toFixed(0);
  const rows = tf.tensor1d(batch.lossRows, 'int32');
  const { value, grads } = tf.valueAndGrads((...ps: tf.Tensor[]) => {
    const factors = new Map(paths.map((p, i) => [p, { aT: ps[2 * i], bT: ps[2 * i + 1] }]));
    const h = model.hidden(c, { scaling: 2, perExample: true, factors });
    console.log('after hidden (incl. intermediates)', MB(tf.memory().numBytes));
    const logits = model.logits(gatherRows(h, rows));
    const l = tf.sum(crossEntropyRows(logits, batch.lossLabels)) as tf.Scalar;
    console.log('after loss', MB(tf.memory().numBytes), 'heap', ((tf.backend() as any).wasm.HEAPU8.length / 2 ** 20).toFixed(0));
    return l;
  })(params);
  console.log('after backward (grads held)', MB(tf.memory().numBytes));
  value.dispose(); grads.forEach((g) => g.dispose());
}
if (process.argv[2] === 'split') split();
