import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { tmpDir } from '../helpers/fixtures';
import { checkAgainstReference, writeCheckedInputs } from '../helpers/referenceCheck';

/**
 * Gradients at scale are right: TinyLlama-1.1B's layer shapes (hidden 2048, 32 heads, 4 K/V
 * heads, MLP 5632) with two layers and a 512-token vocabulary (91M parameters), BF16 in
 * four shards, LoRA r=8 on q/k/v/o, against the float64 PyTorch reference
 * (test/fixtures/reference/tinyllama-2l), with the weights as a large model runs them: left
 * in their files (mapped, on the native path) and each layer recomputed in the backward pass.
 */
describe('TinyLlama-1.1B layer shapes, two layers, against the PyTorch reference', () => {
  let work: string;
  before(() => (work = tmpDir()));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('per-example LoRA gradients within 1e-3 relative L2 per tensor, losses and logits within 1e-4', async () => {
    const { modelDir, adapterDir, sequences } = writeCheckedInputs('tinyllama-2l', work);
    assert.ok(fs.readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).length > 1, 'the checkpoint is sharded');
    const model = LlamaModel.load(modelDir);
    try {
      assert.deepEqual([model.config.hiddenSize, model.config.numHeads, model.config.numKvHeads, model.config.intermediateSize], [2048, 32, 4, 5632]);
      // Weights memory-mapped in BF16 on the native path; each layer recomputed in the backward pass.
      await checkAgainstReference('tinyllama-2l', model, loadAdapter(adapterDir, model.config), sequences, 0, true);
    } finally {
      model.dispose();
    }
  });
});
