import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initAdapter, parseLoraConfig, saveAdapter } from '../../src/model/adapter';
import { Rng } from '../../src/random';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { tempDirs } from '../helpers/errors';
import { MemoryJob, MemoryReport } from './storeMemoryChild';

const CHILD = path.join(__dirname, 'storeMemoryChild.ts');

describe('attribution/store: memory stays flat while gradients stream through', function () {
  this.timeout(300_000);
  const tmp = tempDirs('tda-store-mem-');
  after(() => tmp.cleanup());

  it('10x more examples: ~10x the bytes written, the same peak resident memory', () => {
    const root = tmp.make();
    const cfg = llamaConfig({ hiddenSize: 128, intermediateSize: 344, numLayers: 4, numHeads: 4, numKvHeads: 4, vocabSize: 500 });
    const modelDir = path.join(root, 'model');
    writeRandomCheckpoint(modelDir, cfg, 3);
    // LoRA on every linear layer: ~0.6 MB of gradients per example.
    const lora = parseLoraConfig({ peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: 'all-linear' }, 'test');
    const adapter = initAdapter(cfg, lora, 4);
    const rng = new Rng(5);
    for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.02));
    const adapterDir = path.join(root, 'adapter');
    saveAdapter(adapterDir, adapter);

    const run = (n: number): MemoryReport => {
      const examplesFile = path.join(root, `examples-${n}.json`);
      const examples = Array.from({ length: n }, () => ({ inputIds: Array.from({ length: 16 }, () => rng.int(cfg.vocabSize)), promptLength: 4 }));
      fs.writeFileSync(examplesFile, JSON.stringify(examples));
      const job: MemoryJob = { storeDir: path.join(root, `store-${n}`), modelDir, adapterDir, examplesFile, shardSize: 16, batchSize: 8 };
      const out = execFileSync(process.execPath, ['--require', 'tsx/cjs', CHILD, JSON.stringify(job)], { encoding: 'utf8', cwd: path.resolve(__dirname, '..', '..') });
      return JSON.parse(out.trim().split('\n').pop()!) as MemoryReport;
    };
    // The smaller run must be long enough for the heap to reach its steady state: measured on
    // the native path, peaks of 247, 266, 296 and 288 MB at 64, 128, 640 and 1,280 examples.
    const small = run(128);
    const large = run(1280);
    const grownMb = large.peakRssMb - small.peakRssMb;
    const extraDataMb = (large.storeBytes - small.storeBytes) / 2 ** 20;
    assert.ok(extraDataMb > 600, `the larger run writes ${extraDataMb.toFixed(0)} MB more`);
    // Holding the gradients would add extraDataMb; streaming holds one shard (~10 MB) at a time.
    assert.ok(grownMb < 0.1 * extraDataMb, `peak RSS grew ${grownMb.toFixed(0)} MB (${small.peakRssMb.toFixed(0)} -> ${large.peakRssMb.toFixed(0)}) while ${extraDataMb.toFixed(0)} MB more streamed through`);
  });
});
