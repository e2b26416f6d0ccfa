/**
 * Determinism across worker threads: the same inputs give the same bits with 1 or 2 worker
 * threads for per-example gradients (also through a gradient store) and for `score
 * --workers` with gradDot, gradCos and DataInf (whose per-chunk updates are summed in chunk
 * order whichever worker finishes first), full matrix and top-k.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runScore } from '../../src/cli/score';
import { readExamplesJsonl } from '../../src/data/examples';
import { computeLoraGradients } from '../../src/gradients/compute';
import { GradientStore, storeSettings } from '../../src/gradients/store';
import { writeGradientFile } from '../../src/gradients/file';
import { SafetensorsFile } from '../../src/io/safetensors';
import { loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { tmpDir } from '../helpers/fixtures';
import { ADAPTER, MODEL, writeExamples } from './workload';

function tensors(file: string): Map<string, Float32Array | Int32Array> {
  const st = SafetensorsFile.open(file);
  try {
    return new Map(st.names().map((n) => [n, st.info(n).dtype === 'I32' ? st.readInt32(n) : st.readFloat32(n)]));
  } finally {
    st.close();
  }
}

function assertSameBits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: value ${i} is ${a[i]} with one setting and ${b[i]} with the other`);
}

describe('reliability: the same bits with 1 or 2 worker threads', function () {
  this.timeout(300000);
  let work: string;
  let model: LlamaModel;
  let store: string;
  let testFile: string;
  before(async () => {
    work = tmpDir('tda-determinism-');
    model = LlamaModel.load(MODEL);
    const adapter = loadAdapter(ADAPTER, model.config);
    const trainData = path.join(work, 'train.jsonl');
    writeExamples(trainData, 96, 21);
    const testData = path.join(work, 'test.jsonl');
    writeExamples(testData, 10, 22);
    const train = readExamplesJsonl(trainData);
    store = path.join(work, 'store');
    const s = GradientStore.open(store, storeSettings({ modelDir: MODEL, adapterDir: ADAPTER, examples: train, shardSize: 16 }));
    await s.compute(model, adapter, train, { batchSize: 4 });
    testFile = path.join(work, 'test.safetensors');
    const test = await computeLoraGradients(model, adapter, readExamplesJsonl(testData), { batchSize: 4, workers: 0 });
    writeGradientFile(testFile, test, { mask: 'response', adapter: path.resolve(ADAPTER) });
  });
  after(() => {
    model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('per-example gradients: 1 worker, 2 workers and the stored shards are the same bits', async () => {
    const adapter = loadAdapter(ADAPTER, model.config);
    const examples = readExamplesJsonl(path.join(work, 'train.jsonl')).slice(0, 32);
    const one = await computeLoraGradients(model, adapter, examples, { batchSize: 4, workers: 1 });
    const two = await computeLoraGradients(model, adapter, examples, { batchSize: 4, workers: 2 });
    assertSameBits(one.losses, two.losses, 'losses');
    one.blocks.forEach((b, i) => assertSameBits(b.data, two.blocks[i].data, b.name));
    const stored = GradientStore.openExisting(store).readAll();
    one.blocks.forEach((b, i) => assertSameBits(b.data, stored.blocks[i].data.subarray(0, 32 * b.dim), `stored ${b.name}`));
  });

  for (const method of ['gradDot', 'gradCos']) {
    for (const topK of [undefined, 7]) {
      it(`score --method ${method}${topK ? ' --top-k 7' : ''} --workers 1 and 2 give the same bits`, () => {
        const out = (w: number) => path.join(work, `${method}-${topK ?? 'full'}-w${w}.safetensors`);
        for (const w of [1, 2]) {
          const r = runScore({ method, train: store, test: testFile, out: out(w), topK, options: { workers: w } });
          assert.equal(r.settings.workers, w);
        }
        const [a, b] = [tensors(out(1)), tensors(out(2))];
        assert.deepEqual([...a.keys()], topK ? ['indices', 'scores'] : ['scores']);
        for (const [name, data] of a) assertSameBits(data, b.get(name)!, `${method} ${name}`);
      });
    }
  }

  for (const topK of [undefined, 7]) {
    it(`score --method dataInf${topK ? ' --top-k 7' : ''} with 0, 1 and 2 workers gives the same bits`, () => {
      const out = (w: number) => path.join(work, `dataInf-${topK ?? 'full'}-w${w}.safetensors`);
      for (const w of [0, 1, 2]) runScore({ method: 'dataInf', train: store, test: testFile, out: out(w), topK, options: { workers: w } });
      const [a, b, c] = [tensors(out(0)), tensors(out(1)), tensors(out(2))];
      for (const [name, data] of a) {
        assertSameBits(data, b.get(name)!, `dataInf ${name}, 0 vs 1 worker`);
        assertSameBits(data, c.get(name)!, `dataInf ${name}, 0 vs 2 workers`);
      }
    });
  }
});
