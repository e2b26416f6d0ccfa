/**
 * Child process for the resume-after-kill test: computes a gradient store, pausing after
 * each recorded shard so the parent can SIGKILL it between shards or mid-shard.
 *
 * Run: node --require tsx/cjs test/attribution/storeWorker.ts '<json job>'
 */
import * as fs from 'node:fs';
import { GradientStore } from '../../src/gradients/store';
import { StoreSettings } from '../../src/gradients/store/manifest';
import { TokenSequence } from '../../src/data/batch';
import { loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { initBackend } from '../../src/runtime/backend';

export interface WorkerJob {
  storeDir: string;
  modelDir: string;
  adapterDir: string;
  examplesFile: string;
  settings: StoreSettings;
  batchSize: number;
  /** Sleep this long after each shard is recorded (keeps the kill window wide). */
  pauseMs: number;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as WorkerJob;
  await initBackend(process.env.TDA_BACKEND === 'cpu' ? 'cpu' : 'wasm');
  const model = LlamaModel.load(job.modelDir);
  const adapter = loadAdapter(job.adapterDir, model.config);
  const examples = JSON.parse(fs.readFileSync(job.examplesFile, 'utf8')) as TokenSequence[];
  const store = GradientStore.open(job.storeDir, job.settings);
  await store.compute(model, adapter, examples, { batchSize: job.batchSize, onShard: () => sleepSync(job.pauseMs) });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
