/**
 * A tiny random LLaMA checkpoint and LoRA adapter on disk, plus random examples, for the
 * gradient store tests. Everything is seeded, so it is the same in every process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TokenSequence } from '../../src/data/batch';
import { initAdapter, LoraAdapter, saveAdapter } from '../../src/model/adapter';
import { Rng } from '../../src/random';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { LoraConfig, ModelConfig } from '../../src/model/types';

export const TINY_MODEL: ModelConfig = llamaConfig({ hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 50 });

export const TINY_LORA: LoraConfig = {
  r: 4,
  loraAlpha: 8,
  targetModules: ['q_proj', 'v_proj'],
  loraDropout: 0,
  useRslora: false,
  layersToTransform: null,
  baseModelNameOrPath: null,
  scaling: 2,
};

/** A PEFT-initialised adapter whose B is small random values (PEFT's B = 0 would zero every A gradient). */
export function randomAdapter(seed: number, bScale = 0.05): LoraAdapter {
  const adapter = initAdapter(TINY_MODEL, TINY_LORA, seed);
  const rng = new Rng(seed + 1000);
  for (const m of adapter.modules) for (let i = 0; i < m.B.length; i++) m.B[i] = rng.normal() * bScale;
  return adapter;
}

/** n random sequences of 5-12 tokens with a 1-4 token prompt, ids in [1, vocab). */
export function randomExamples(n: number, seed: number): TokenSequence[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 5 + rng.int(8);
    const inputIds = Array.from({ length: len }, () => 1 + rng.int(TINY_MODEL.vocabSize - 1));
    return { inputIds, promptLength: 1 + rng.int(4) };
  });
}

export interface StoreFixture {
  modelDir: string;
  adapterDir: string;
  /** A second adapter (different B): another checkpoint. */
  adapter2Dir: string;
  examples: TokenSequence[];
}

/** Writes the model and two adapters under `root`; 20 examples. */
export function writeStoreFixture(root: string): StoreFixture {
  const modelDir = path.join(root, 'model');
  const adapterDir = path.join(root, 'adapter');
  const adapter2Dir = path.join(root, 'adapter2');
  writeRandomCheckpoint(modelDir, TINY_MODEL, 7);
  saveAdapter(adapterDir, randomAdapter(11));
  saveAdapter(adapter2Dir, randomAdapter(12));
  const examples = randomExamples(20, 3);
  fs.writeFileSync(path.join(root, 'examples.json'), JSON.stringify(examples));
  return { modelDir, adapterDir, adapter2Dir, examples };
}
