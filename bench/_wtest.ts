import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initAdapter, parseLoraConfig } from '../src/model/adapter';
import { computeLoraGradients } from '../src/model/gradients';
import { LlamaModel } from '../src/model/llama';
import { Rng } from '../src/model/random';
import { llamaConfig, writeRandomCheckpoint } from '../src/model/synthetic';
import { initBackend } from '../src/runtime/backend';
async function main() {
  await initBackend('wasm');
  const cfg = llamaConfig({ hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, vocabSize: 4000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-w-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'x');
  const adapter = initAdapter(model.config, lora, 1);
  const rng = new Rng(2);
  for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01));
  const ex = Array.from({ length: 64 }, () => ({ inputIds: Array.from({ length: 64 }, () => rng.int(4000)), promptLength: 16 }));
  let t0 = performance.now();
  const a = await computeLoraGradients(model, adapter, ex, { workers: 0 });
  console.log('in-process', ((64 * 1000) / (performance.now() - t0)).toFixed(2), 'ex/s');
  t0 = performance.now();
  const b = await computeLoraGradients(model, adapter, ex, { workers: 2 });
  console.log('2 workers (incl. startup)', ((64 * 1000) / (performance.now() - t0)).toFixed(2), 'ex/s');
  let same = true;
  for (const [k, v] of a.tensors) { const w = b.tensors.get(k)!; for (let i = 0; i < v.data.length; i++) if (!Object.is(v.data[i], w.data[i])) { same = false; break; } }
  a.losses.forEach((v, i) => { if (!Object.is(v, b.losses[i])) same = false; });
  console.log('identical', same);
  fs.rmSync(dir, { recursive: true });
}

import { WorkerPool } from '../src/runtime/workers';
import { modelPayload, adapterPayload } from '../src/runtime/modelTransfer';
async function startup() {
  await initBackend('wasm');
  const cfg = llamaConfig({ hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, vocabSize: 4000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-w-'));
  writeRandomCheckpoint(dir, cfg, 0);
  const model = LlamaModel.load(dir);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'x');
  const adapter = initAdapter(model.config, lora, 1);
  const t0 = performance.now();
  const pool = await WorkerPool.start('gradientWorker', 2, { backend: 'wasm', model: modelPayload(model), adapter: adapterPayload(adapter) });
  console.log('startup ms', performance.now() - t0);
  const rng = new Rng(2);
  const seqs = Array.from({ length: 8 }, () => ({ inputIds: Array.from({ length: 64 }, () => rng.int(4000)), promptLength: 16 }));
  for (let r = 0; r < 3; r++) {
    const t1 = performance.now();
    await Promise.all(Array.from({ length: 4 }, () => pool.run({ sequences: seqs, mask: 'response', padId: 0 })));
    console.log('4 batches on 2 workers', ((32 * 1000) / (performance.now() - t1)).toFixed(2), 'ex/s');
  }
  await pool.close();
}
startup();
