/**
 * Fuzzing the readers of the files tda-lab writes and reads back: gradient files, score
 * files (also as `metrics` reads them), top-k files, embedding files, and shard files as
 * `merge` reads them.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { readScoreFile, readTopKFile, writeScoreFile, writeTopKFile } from '../../src/attribution/scoreFile';
import { readGradientFile } from '../../src/gradients/file';
import { readScoreMatrix } from '../../src/cli/metrics';
import { readEmbeddingFile } from '../../src/cli/embed';
import { runMerge } from '../../src/cli/merge';
import { writeSafetensors } from '../../src/io/safetensors';
import { tempDirs } from '../helpers/errors';
import { assertMixed, bytePlanArb, expectErrorOrValid, fuzzRuns, jsonPlanArb, mutateBytes, mutateJson, newOutcome } from './mutate';
import { joinSafetensors, relayout, SAFETENSORS_VALUES, splitSafetensors } from './safetensorsFiles';

const RESULT_VALUES: unknown[] = [...SAFETENSORS_VALUES, 'tda-lab.topk', 'tda-lab.scores', 'tda-lab.grads', '0', '3', '-1', '1e12', '0/2', '1/2', '2/2', '0/100000000000', '1/0', 'NaN', 'response', 'full'];

/** Mutate either the bytes or (more often) the header of a valid file. */
const caseArb = fc.record({ header: jsonPlanArb, bytes: fc.option(bytePlanArb, { freq: 4 }), relayout: fc.boolean(), which: fc.nat() });

function mutateFile(bytes: Uint8Array, c: { header: Parameters<typeof mutateJson>[1]; bytes: Parameters<typeof mutateBytes>[1] | null; relayout: boolean }): Uint8Array {
  if (c.bytes) return mutateBytes(bytes, c.bytes, 8 + Number(Buffer.from(bytes).readBigUInt64LE(0)));
  const { header, data } = splitSafetensors(bytes);
  const text = mutateJson(header, c.header, RESULT_VALUES);
  const laidOut = c.relayout ? relayout(text, data) : null;
  return laidOut ? joinSafetensors(laidOut.headerText, laidOut.data) : joinSafetensors(text, data);
}

const finite = (a: ArrayLike<number>) => Array.prototype.every.call(a, (v: number) => Number.isFinite(v));

describe('fuzz: result file readers', function () {
  const tmp = tempDirs('tda-fuzz-results-');
  let dir: string;
  const files: Record<string, Uint8Array> = {};
  before(() => {
    dir = tmp.make();
    const grads = path.join(dir, 'grads.safetensors');
    writeSafetensors(
      grads,
      {
        loss: { shape: [3], data: Float32Array.from([1.5, 2, 0.25]) },
        'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [3, 2, 4], data: Float32Array.from({ length: 24 }, (_, i) => i / 10 - 1) },
        'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [3, 4, 2], data: Float32Array.from({ length: 24 }, (_, i) => (i % 5) - 2) },
      },
      { format: 'tda-lab.grads', mask: 'response' },
    );
    const scores = path.join(dir, 'scores.safetensors');
    writeScoreFile(scores, { nTest: 2, nTrain: 4, data: Float32Array.from([0.5, -1, 2, 0, 1, 1, -3, 4]) }, { method: 'gradDot', mask: 'response' });
    const topk = path.join(dir, 'topk.safetensors');
    writeTopKFile(topk, { nTest: 2, k: 3, nTrain: 5, indices: Int32Array.from([4, 0, 2, 1, 3, 0]), scores: Float32Array.from([3, 2, -1, 5, 5, 0]) }, { method: 'gradDot', mask: 'response' });
    const embeddings = path.join(dir, 'embeddings.safetensors');
    writeSafetensors(embeddings, { embeddings: { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)) } }, { format: 'tda-lab.embeddings', pool: 'last', mask: 'none' });
    for (const f of [grads, scores, topk, embeddings]) files[path.basename(f, '.safetensors')] = fs.readFileSync(f);
  });
  after(() => tmp.cleanup());

  function runCases<T>(label: string, base: string, numRuns: number, read: (file: string) => T, check: (r: T) => void): void {
    const file = path.join(dir, `case-${base}.safetensors`);
    const outcome = newOutcome();
    fc.assert(
      fc.property(caseArb, (c) => {
        fs.writeFileSync(file, mutateFile(files[base], c));
        expectErrorOrValid(outcome, file, () => read(file), check);
      }),
      fuzzRuns(numRuns),
    );
    assertMixed(outcome, label);
  }

  it('gradient files: a one-line TdaError or [n, ...] blocks of finite values with n losses', () => {
    runCases('grads', 'grads', 700, readGradientFile, ({ set }) => {
      assert.ok(Number.isSafeInteger(set.n) && set.n > 0);
      for (const b of set.blocks) {
        assert.equal(b.dim, b.shape.reduce((a, d) => a * d, 1));
        assert.equal(b.data.length, set.n * b.dim, b.name);
        assert.ok(finite(b.data));
      }
      if (set.losses) assert.equal(set.losses.length, set.n, 'one loss per example');
    });
  });

  it('score files: a one-line TdaError or a finite [nTest, nTrain] matrix (readScoreFile and metrics alike)', () => {
    runCases('scores', 'scores', 500, readScoreFile, ({ scores }) => {
      assert.equal(scores.data.length, scores.nTest * scores.nTrain);
      assert.ok(finite(scores.data));
    });
    runCases('metrics scores', 'scores', 300, readScoreMatrix, (scores) => {
      assert.ok(scores.nTest > 0 && scores.nTrain > 0);
      assert.equal(scores.data.length, scores.nTest * scores.nTrain);
      assert.ok(!Array.prototype.some.call(scores.data, (v: number) => Number.isNaN(v)));
    });
  });

  it('top-k files: a one-line TdaError or rows of in-range indices sorted by finite descending scores', () => {
    runCases('top-k', 'topk', 700, readTopKFile, ({ topK }) => {
      const { nTest, k, nTrain, indices, scores } = topK;
      assert.equal(indices.length, nTest * k);
      assert.equal(scores.length, nTest * k);
      for (let j = 0; j < indices.length; j++) {
        assert.ok(indices[j] >= 0 && indices[j] < nTrain);
        const row = Math.floor(j / k) * k;
        assert.equal(Array.prototype.indexOf.call(indices, indices[j], row), j, 'each training example once per row');
        assert.ok(Number.isFinite(scores[j]));
        if (j % k > 0) assert.ok(scores[j] <= scores[j - 1]);
      }
    });
  });

  it('embedding files: a one-line TdaError or a finite [n, dim] set', () => {
    runCases('embeddings', 'embeddings', 400, readEmbeddingFile, ({ set }) => {
      assert.ok(set.n >= 1 && set.dim >= 1);
      assert.equal(set.data.length, set.n * set.dim);
      assert.ok(finite(set.data));
    });
  });

  it('merge: mutated shard files end in a one-line TdaError naming a shard file, or a merged file', () => {
    const shardFiles = [0, 1].map((i) => path.join(dir, `shard-${i}.safetensors`));
    const meta = (i: number) => ({ format: 'tda-lab.scores', method: 'gradDot', settings: JSON.stringify({ method: 'gradDot', damping: { scale: 0.1 } }), shard: `${i}/2`, shard_total: '3', shard_start: String(i * 2), shard_end: String(i === 0 ? 2 : 3), shard_axis: 'queries' });
    writeSafetensors(shardFiles[0], { scores: { shape: [2, 4], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) } }, meta(0));
    writeSafetensors(shardFiles[1], { scores: { shape: [1, 4], data: Float32Array.from([9, 10, 11, 12]) } }, meta(1));
    const originals = shardFiles.map((f) => fs.readFileSync(f));
    const out = path.join(dir, 'merged.safetensors');
    const outcome = newOutcome();
    fc.assert(
      fc.property(caseArb, (c) => {
        const i = c.which % 2;
        shardFiles.forEach((f, j) => fs.writeFileSync(f, j === i ? mutateFile(originals[j], c) : originals[j]));
        expectErrorOrValid(outcome, dir, () => runMerge(shardFiles, out), (r) => {
          assert.equal(r.shards, 2);
          const merged = readScoreFile(out).scores;
          assert.equal(merged.nTest, r.rows);
          assert.equal(merged.data.length, merged.nTest * merged.nTrain);
        });
      }),
      fuzzRuns(500),
    );
    assertMixed(outcome, 'merge');
  });
});
