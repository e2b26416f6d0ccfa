import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadAdapter, LoraAdapter } from '../../src/model/adapter';
import { computeEmbeddings } from '../../src/model/embeddings';
import { LlamaModel } from '../../src/model/llama';
import { FIXTURE_DIR, fixtureExpectations, fixtureSequences, relativeL2 } from '../helpers/fixtures';
import { throwsTda } from '../helpers/errors';

describe('computeEmbeddings (pooled final hidden states)', () => {
  let model: LlamaModel;
  let adapter: LoraAdapter;
  const expected = fixtureExpectations();
  const sequences = fixtureSequences();

  before(() => {
    model = LlamaModel.load(FIXTURE_DIR);
    adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
  });
  after(() => model.dispose());

  it('last-token pooling matches the reference hidden states within 1e-4 relative', () => {
    const e = computeEmbeddings(model, adapter, sequences, { pool: 'last', batchSize: 3 });
    assert.equal(e.n, 3);
    assert.equal(e.dim, model.config.hiddenSize);
    expected.last_token_hidden_first8.forEach((want, j) => {
      const got = Array.from(e.data.subarray(j * e.dim, j * e.dim + 8));
      assert.ok(relativeL2(got, want) < 1e-4, `example ${j}: ${got}`);
    });
  });

  it('mean pooling over real tokens matches the reference norms within 1e-4 relative', () => {
    const e = computeEmbeddings(model, adapter, sequences, { pool: 'mean', batchSize: 3 });
    expected.mean_pooled_hidden_norm.forEach((want, j) => {
      const norm = Math.hypot(...e.data.subarray(j * e.dim, (j + 1) * e.dim));
      assert.ok(Math.abs(norm - want) / want < 1e-4, `example ${j}: ${norm} vs ${want}`);
    });
  });

  it('last-prompt pooling is the hidden state at the last prompt token: the prompt alone gives the same (causality)', () => {
    assert.ok(sequences.every((s) => s.promptLength >= 1 && s.promptLength < s.inputIds.length), 'the fixture has prompts and responses');
    const got = computeEmbeddings(model, adapter, sequences, { pool: 'last-prompt', batchSize: 3 });
    // Independently: each prompt on its own (no response, no padding), its last token.
    const promptsAlone = sequences.map((s) => ({ inputIds: s.inputIds.slice(0, s.promptLength), promptLength: s.promptLength }));
    const alone = sequences.map((_, j) => computeEmbeddings(model, adapter, [promptsAlone[j]], { pool: 'last', batchSize: 1 }).data);
    alone.forEach((want, j) => {
      const row = got.data.subarray(j * got.dim, (j + 1) * got.dim);
      assert.ok(relativeL2(row, want) < 1e-5, `example ${j}: ${relativeL2(row, want)}`);
    });
    // ... and it is not the end of the response.
    const last = computeEmbeddings(model, adapter, sequences, { pool: 'last', batchSize: 3 });
    assert.ok(relativeL2(got.data, last.data) > 1e-2);
  });

  it('batch size and padding id do not change the results', () => {
    for (const pool of ['last-prompt', 'last', 'mean'] as const) {
      const together = computeEmbeddings(model, adapter, sequences, { pool, batchSize: 3 });
      for (const [batchSize, padId] of [[1, 0], [2, 0], [2, 5]]) {
        const other = computeEmbeddings(model, adapter, sequences, { pool, batchSize, padId });
        assert.ok(relativeL2(other.data, together.data) < 1e-5, `${pool}, batch ${batchSize}, pad ${padId}`);
      }
    }
  });

  it('the adapter changes the embeddings; null means the base model', () => {
    const withA = computeEmbeddings(model, adapter, sequences);
    const base = computeEmbeddings(model, null, sequences);
    assert.ok(relativeL2(base.data, withA.data) > 1e-4);
  });

  it('a one-token example is allowed (no loss mask is needed)', () => {
    const e = computeEmbeddings(model, null, [{ inputIds: [3], promptLength: 1 }], { pool: 'mean' });
    const f = computeEmbeddings(model, null, [{ inputIds: [3], promptLength: 0 }], { pool: 'last' });
    assert.deepEqual(Array.from(e.data), Array.from(f.data));
    assert.ok(e.data.every(Number.isFinite));
  });

  it('leaks no tensors', () => {
    computeEmbeddings(model, adapter, sequences, { batchSize: 2 });
    const before = tf.memory().numTensors;
    computeEmbeddings(model, adapter, sequences, { batchSize: 2, pool: 'mean' });
    computeEmbeddings(model, null, sequences, { batchSize: 3 });
    assert.equal(tf.memory().numTensors, before);
  });

  it('rejects bad options and token ids', () => {
    throwsTda(() => computeEmbeddings(model, null, sequences, { pool: 'max' as never }), "'pool'");
    throwsTda(() => computeEmbeddings(model, null, sequences, { pool: 'max' as never }), 'last-prompt, last, mean');
    throwsTda(() => computeEmbeddings(model, null, sequences, { batchSize: 0 }), "'batchSize'");
    throwsTda(() => computeEmbeddings(model, null, [{ inputIds: [1, 2], promptLength: 0 }], { pool: 'last-prompt' }), "'promptLength'", 'example 0', 'got 0');
    throwsTda(() => computeEmbeddings(model, null, [{ inputIds: [1, 2], promptLength: 3 }], { pool: 'last-prompt' }), "'promptLength'", '1 to 2 tokens');
    throwsTda(() => computeEmbeddings(model, null, [{ inputIds: [], promptLength: 0 }]), "'inputIds'", 'example 0');
    throwsTda(() => computeEmbeddings(model, null, [{ inputIds: [1, model.config.vocabSize], promptLength: 1 }]), "'inputIds'", 'position 1');
  });
});
