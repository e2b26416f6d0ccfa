/**
 * Child process for the flat-memory test: streams the gradients of a dataset into a fresh
 * gradient store and prints its peak resident memory and the bytes it wrote.
 *
 * Run: node --require tsx/cjs test/attribution/storeMemoryChild.ts '<json job>'
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientStore, storeSettings } from '../../src/gradients/store';
import { TokenSequence } from '../../src/data/batch';
import { loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { initBackend } from '../../src/runtime/backend';

export interface MemoryJob {
  storeDir: string;
  modelDir: string;
  adapterDir: string;
  examplesFile: string;
  shardSize: number;
  batchSize: number;
}

export interface MemoryReport {
  peakRssMb: number;
  storeBytes: number;
}

/** Peak resident set size of this process so far, in MB (getrusage ru_maxrss). */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as MemoryJob;
  await initBackend('wasm');
  const model = LlamaModel.load(job.modelDir);
  const adapter = loadAdapter(job.adapterDir, model.config);
  const examples = JSON.parse(fs.readFileSync(job.examplesFile, 'utf8')) as TokenSequence[];
  const settings = storeSettings({ modelDir: job.modelDir, adapterDir: job.adapterDir, examples, shardSize: job.shardSize });
  const store = GradientStore.open(job.storeDir, settings);
  await store.compute(model, adapter, examples, { batchSize: job.batchSize });
  const storeBytes = fs.readdirSync(job.storeDir).reduce((a, f) => a + fs.statSync(path.join(job.storeDir, f)).size, 0);
  const report: MemoryReport = { peakRssMb: peakRssMb(), storeBytes };
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
