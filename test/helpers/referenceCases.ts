/**
 * Models checked against the PyTorch reference in test/fixtures/reference/: each case is a
 * config, a seed for the project's random checkpoint writer, a random adapter and a few
 * token sequences. The weights are not committed; the tests and the generator script
 * (test/fixtures/reference/make_reference.py, which calls writeReferenceInputs.ts) both
 * write them from the seed, and the fixture records their SHA-256 so a change in the writer
 * shows up as a clear failure rather than as a numerical mismatch.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TokenSequence } from '../../src/data/batch';
import { DType } from '../../src/io/safetensors';
import { saveAdapter } from '../../src/model/adapter';
import { Rng } from '../../src/random';
import { randomAdapter, RandomAdapterOptions } from '../../src/model/randomAdapter';
import { llamaConfig, writeLargeRandomCheckpoint } from '../../src/model/synthetic';
import { ModelConfig } from '../../src/model/types';

export const REFERENCE_DIR = path.join(__dirname, '..', 'fixtures', 'reference');

export interface ReferenceCase {
  config: ModelConfig;
  seed: number;
  /** Weight standard deviation: large enough in the small models that attention is far from uniform, so positions matter. */
  std: number;
  dtype: DType;
  maxShardBytes: number;
  adapter: RandomAdapterOptions;
  /** Lengths and prompt lengths of the sequences; the tokens are drawn from `seed`. */
  shapes: [number, number][];
}

const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const SMALL = { intermediateSize: 64, numLayers: 2, vocabSize: 64, rmsNormEps: 1e-5 };
const SMALL_CASE = { seed: 3, std: 0.3, dtype: 'F32' as DType, maxShardBytes: 1e9, adapter: { r: 4, loraAlpha: 8, targetModules: ALL_LINEAR, seed: 4, bStd: 0.2 } };
// Lengths past max_position_embeddings = 8 (dynamic scaling) and past the sliding window.
const SMALL_SHAPES: [number, number][] = [
  [12, 4],
  [7, 3],
  [16, 5],
];

export const REFERENCE_CASES: Record<string, ReferenceCase> = {
  /** TinyLlama-1.1B's layer shapes with two layers and a 512-token vocabulary; BF16, sharded. */
  'tinyllama-2l': {
    config: llamaConfig({ hiddenSize: 2048, intermediateSize: 5632, numLayers: 2, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 512, rmsNormEps: 1e-5 }),
    seed: 1,
    std: 0.02,
    dtype: 'BF16',
    maxShardBytes: 64e6,
    adapter: { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: 2, bStd: 0.01 },
    shapes: [
      [12, 4],
      [7, 3],
      [16, 5],
    ],
  },
  /** Llama-3.x: llama3 rope scaling (all three frequency bands occur at d = 16), head_dim 16 != 48 / 4, tied embeddings. */
  'llama3-rope': {
    ...SMALL_CASE,
    config: llamaConfig({
      ...SMALL,
      hiddenSize: 48,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      tieWordEmbeddings: true,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
    }),
    shapes: SMALL_SHAPES,
  },
  'linear-rope': {
    ...SMALL_CASE,
    config: llamaConfig({ ...SMALL, hiddenSize: 48, numHeads: 4, numKvHeads: 2, ropeScaling: { type: 'linear', factor: 4 } }),
    shapes: SMALL_SHAPES,
  },
  /** Two of the three sequences are longer than max_position_embeddings. */
  'dynamic-rope': {
    ...SMALL_CASE,
    config: llamaConfig({ ...SMALL, hiddenSize: 48, numHeads: 4, numKvHeads: 2, headDim: 16, maxPositionEmbeddings: 8, ropeScaling: { type: 'dynamic', factor: 4 } }),
    shapes: SMALL_SHAPES,
  },
  /** Qwen2: q/k/v biases, tied embeddings, theta 1e6. */
  'qwen2-bias': {
    ...SMALL_CASE,
    config: llamaConfig({ ...SMALL, modelType: 'qwen2', hiddenSize: 48, numHeads: 6, numKvHeads: 2, ropeTheta: 1e6, qkvBias: true, tieWordEmbeddings: true }),
    shapes: SMALL_SHAPES,
  },
  /** Mistral: a sliding window shorter than the sequences. */
  'mistral-window': {
    ...SMALL_CASE,
    config: llamaConfig({ ...SMALL, modelType: 'mistral', hiddenSize: 48, numHeads: 4, numKvHeads: 1, slidingWindow: 5 }),
    shapes: SMALL_SHAPES,
  },
};

export function referenceSequences(c: ReferenceCase): TokenSequence[] {
  const rng = new Rng(c.seed + 1000);
  return c.shapes.map(([len, promptLength]) => ({ inputIds: Array.from({ length: len }, () => rng.int(c.config.vocabSize)), promptLength }));
}

/** Writes `dir/model` (config + safetensors), `dir/adapter` and `dir/sequences.json`. */
export function writeReferenceInputs(c: ReferenceCase, dir: string): { modelDir: string; adapterDir: string } {
  const modelDir = path.join(dir, 'model');
  const adapterDir = path.join(dir, 'adapter');
  writeLargeRandomCheckpoint(modelDir, c.config, c.seed, { dtype: c.dtype, maxShardBytes: c.maxShardBytes, std: c.std });
  saveAdapter(adapterDir, randomAdapter(c.config, c.adapter));
  const seqs = referenceSequences(c);
  fs.writeFileSync(path.join(dir, 'sequences.json'), JSON.stringify({ input_ids: seqs.map((s) => s.inputIds), prompt_lengths: seqs.map((s) => s.promptLength) }));
  return { modelDir, adapterDir };
}

/** SHA-256 over the safetensors files of a directory, in name order (the generator script computes the same). */
export function weightsDigest(dir: string): string {
  const h = createHash('sha256');
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) {
    h.update(f);
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  return h.digest('hex');
}
