/**
 * A small random LLaMA with a LoRA adapter on attention and MLP modules, and random
 * examples of several lengths (so batches are padded), for the EK-FAC tests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TokenSequence } from '../../src/data/batch';
import { LoraAdapter, saveAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { randomAdapter } from '../../src/model/randomAdapter';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { ModelConfig } from '../../src/model/types';
import { Rng } from '../../src/random';

export interface EkfacFixture {
  config: ModelConfig;
  /** Seed of the base weights (randomBaseTensors). */
  weightSeed: number;
  dir: string;
  modelDir: string;
  adapterDir: string;
  model: LlamaModel;
  adapter: LoraAdapter;
  examples: TokenSequence[];
  cleanup(): void;
}

/** n random sequences of minLen..maxLen tokens with a 1-3 token prompt, ids in [1, vocab). */
export function randomSequences(n: number, vocab: number, seed: number, minLen = 4, maxLen = 12): TokenSequence[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = minLen + rng.int(maxLen - minLen + 1);
    return { inputIds: Array.from({ length: len }, () => 1 + rng.int(vocab - 1)), promptLength: 1 + rng.int(3) };
  });
}

export function makeEkfacFixture(config: Partial<ModelConfig>, opts: { r?: number; targetModules?: string[]; n?: number; seed?: number; bStd?: number } = {}): EkfacFixture {
  const cfg = llamaConfig(config);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-ekfac-'));
  const modelDir = path.join(dir, 'model');
  const adapterDir = path.join(dir, 'adapter');
  const seed = opts.seed ?? 1;
  writeRandomCheckpoint(modelDir, cfg, seed);
  const adapter = randomAdapter(cfg, { r: opts.r ?? 8, targetModules: opts.targetModules ?? ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], seed: seed + 1, bStd: opts.bStd ?? 0.05 });
  saveAdapter(adapterDir, adapter);
  const model = LlamaModel.load(modelDir);
  const examples = randomSequences(opts.n ?? 10, cfg.vocabSize, seed + 2);
  return {
    config: cfg,
    weightSeed: seed,
    dir,
    modelDir,
    adapterDir,
    model,
    adapter,
    examples,
    cleanup() {
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
