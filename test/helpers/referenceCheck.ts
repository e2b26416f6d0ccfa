/**
 * Compares tda-lab with a reference case's PyTorch numbers (test/fixtures/reference/<case>):
 * losses and last-token logits within 1e-4 relative, every per-example gradient tensor within
 * 1e-3 relative L2 (the agreement the fixtures specify), computed in one batch.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch, TokenSequence } from '../../src/data/batch';
import { SafetensorsFile } from '../../src/io/safetensors';
import { adapterKey, loadAdapter, LoraAdapter } from '../../src/model/adapter';
import { parseModelConfig } from '../../src/model/config';
import { computeLoraGradients } from '../../src/gradients/compute';
import { blockByName } from '../../src/gradients/types';
import { computeLosses } from '../../src/model/loss';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { relativeL2 } from './fixtures';
import { REFERENCE_CASES, REFERENCE_DIR, referenceSequences, weightsDigest, writeReferenceInputs } from './referenceCases';

export interface ReferenceExpectations {
  config: Record<string, unknown>;
  weights_sha256: string;
  adapter_sha256: string;
  input_ids: number[][];
  prompt_lengths: number[];
  example_losses: number[];
  last_token_logits_first8: number[][];
}

export function referenceExpectations(name: string): ReferenceExpectations {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE_DIR, name, 'expected.json'), 'utf8'));
}

/**
 * Writes the case's checkpoint into `work` from its seed and checks it is the one the
 * reference was computed on (same weights, config and sequences).
 */
export function writeCheckedInputs(name: string, work: string): { modelDir: string; adapterDir: string; sequences: TokenSequence[] } {
  const c = REFERENCE_CASES[name];
  const want = referenceExpectations(name);
  const { modelDir, adapterDir } = writeReferenceInputs(c, work);
  const regenerate = `regenerate the fixture with /usr/bin/python3 test/fixtures/reference/make_reference.py ${name}`;
  assert.equal(weightsDigest(modelDir), want.weights_sha256, `the seeded writer no longer writes the reference weights; ${regenerate}`);
  assert.equal(weightsDigest(adapterDir), want.adapter_sha256, `the random adapter changed; ${regenerate}`);
  assert.deepEqual(parseModelConfig(want.config, 'expected.json'), c.config, `the case's config changed; ${regenerate}`);
  const sequences = referenceSequences(c);
  assert.deepEqual(sequences.map((s) => s.inputIds), want.input_ids);
  assert.deepEqual(sequences.map((s) => s.promptLength), want.prompt_lengths);
  return { modelDir, adapterDir, sequences };
}

/** Last-token logits (first 8) of each sequence, from one batched forward pass. */
function lastLogits8(model: LlamaModel, adapter: LoraAdapter, sequences: TokenSequence[]): number[][] {
  const lora = loraStateFromAdapter(adapter);
  const batch = makeBatch(sequences, 'response');
  const c = model.batchConstants(batch);
  try {
    return tf.tidy(() => {
      const rows = tf.tensor1d(sequences.map((s, j) => j * batch.seqLen + s.inputIds.length - 1), 'int32');
      const logits = model.logits(tf.gather(model.hidden(c, lora), rows) as tf.Tensor2D);
      return (logits.arraySync() as number[][]).map((row) => row.slice(0, 8));
    });
  } finally {
    disposeBatchConstants(c);
    disposeLoraState(lora);
  }
}

/** `workers`: worker threads for the gradients (0 = this thread), one example per batch when > 0. */
export async function checkAgainstReference(name: string, model: LlamaModel, adapter: LoraAdapter, sequences: TokenSequence[], workers = 0, recompute: boolean | 'auto' = 'auto'): Promise<void> {
  const want = referenceExpectations(name);
  const n = sequences.length;
  const losses = computeLosses(model, adapter, sequences, { batchSize: n });
  want.example_losses.forEach((w, j) => assert.ok(Math.abs(losses[j] - w) / Math.abs(w) < 1e-4, `${name} loss ${j}: ${losses[j]} vs ${w}`));
  lastLogits8(model, adapter, sequences).forEach((row, j) => {
    const rel = relativeL2(row, want.last_token_logits_first8[j]);
    assert.ok(rel < 1e-4, `${name} logits of example ${j}: relative ${rel}`);
  });

  const got = await computeLoraGradients(model, adapter, sequences, { batchSize: workers > 0 ? 1 : n, workers, recompute });
  const expected = SafetensorsFile.open(path.join(REFERENCE_DIR, name, 'expected_grads.safetensors'));
  try {
    let checked = 0;
    for (const m of adapter.modules) {
      for (const which of ['A', 'B'] as const) {
        const key = adapterKey(m.path, which);
        const all = blockByName(got, key).data;
        const size = all.length / n;
        for (let j = 0; j < n; j++) {
          const ref = expected.readFloat32(`example${j}.${key}`);
          assert.equal(ref.length, size, key);
          const rel = relativeL2(all.subarray(j * size, (j + 1) * size), ref);
          assert.ok(rel < 1e-3, `${name} example ${j} ${key}: relative L2 ${rel}`);
          checked++;
        }
      }
    }
    // Every gradient the reference holds was compared.
    assert.equal(checked, expected.names().length);
  } finally {
    expected.close();
  }
}
