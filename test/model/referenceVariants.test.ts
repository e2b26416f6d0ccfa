import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { loadAdapter } from '../../src/model/adapter';
import { computeLosses } from '../../src/model/loss';
import { LlamaModel } from '../../src/model/llama';
import { tmpDir } from '../helpers/fixtures';
import { checkAgainstReference, referenceExpectations, writeCheckedInputs } from '../helpers/referenceCheck';

/**
 * What real checkpoints carry, each against the independent PyTorch implementation
 * (test/fixtures/reference/torch_llama_lora.py): rope scaling (llama3, linear, dynamic),
 * an explicit head_dim, tied embeddings, Qwen2's biases, Mistral's sliding window. LoRA
 * on all seven linear layers.
 */
describe('checkpoint variants against the PyTorch reference', () => {
  let work: string;
  beforeEach(() => (work = tmpDir()));
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  const cases: [string, string][] = [
    ['llama3-rope', 'llama3 rope scaling, head_dim 16 with hidden 48 and 4 heads, tied embeddings'],
    ['linear-rope', 'linear rope scaling'],
    ['dynamic-rope', 'dynamic (NTK) rope scaling, sequences longer and shorter than max_position_embeddings'],
    ['qwen2-bias', 'qwen2: q/k/v biases, tied embeddings'],
    ['mistral-window', 'mistral: sliding window shorter than the sequences'],
  ];
  for (const [name, what] of cases) {
    it(`${name}: ${what}: losses, logits and per-example gradients match`, async () => {
      const { modelDir, adapterDir, sequences } = writeCheckedInputs(name, work);
      const model = LlamaModel.load(modelDir);
      try {
        await checkAgainstReference(name, model, loadAdapter(adapterDir, model.config), sequences);
      } finally {
        model.dispose();
      }
    });
  }

  it('dynamic-rope: the same numbers from two worker threads (the scaling travels with the config)', async () => {
    const { modelDir, adapterDir, sequences } = writeCheckedInputs('dynamic-rope', work);
    const model = LlamaModel.load(modelDir);
    try {
      await checkAgainstReference('dynamic-rope', model, loadAdapter(adapterDir, model.config), sequences, 2);
    } finally {
      model.dispose();
    }
  });

  // The fixtures have teeth: the same weights without the scaling give other losses.
  for (const name of ['llama3-rope', 'linear-rope', 'dynamic-rope']) {
    it(`${name}: dropping the scaling changes the losses`, () => {
      const { modelDir, adapterDir, sequences } = writeCheckedInputs(name, work);
      const loaded = LlamaModel.load(modelDir);
      const plain = new LlamaModel({ ...loaded.config, ropeScaling: null }, loaded.weights);
      const adapter = loadAdapter(adapterDir, loaded.config);
      const losses = computeLosses(plain, adapter, sequences);
      plain.dispose();
      const want = referenceExpectations(name).example_losses;
      const gaps = want.map((w, j) => Math.abs(losses[j] - w) / w);
      if (name === 'dynamic-rope') {
        // Dynamic scaling only acts past max_position_embeddings (8): example 1 has 7 tokens.
        assert.ok(gaps[1] < 1e-4, `example 1 is within the trained length, gap ${gaps[1]}`);
        assert.ok(gaps[0] > 1e-3 && gaps[2] > 1e-3, `gaps ${gaps}`);
      } else {
        assert.ok(gaps.every((g) => g > 1e-3), `gaps ${gaps}`);
      }
    });
  }
});
