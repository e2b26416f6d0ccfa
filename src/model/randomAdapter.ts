/**
 * Seeded random PEFT LoRA adapters for benchmarks and reference tests. PEFT initialises B
 * to zero, which makes every gradient with respect to A zero; a trained adapter has both
 * factors non-zero, so B is drawn here too.
 */
import { initAdapter, LoraAdapter, parseLoraConfig } from './adapter';
import { Rng } from '../random';
import { ModelConfig } from './types';

export interface RandomAdapterOptions {
  r?: number;
  loraAlpha?: number;
  /** Module names (PEFT target_modules); default q/k/v/o. */
  targetModules?: string[];
  seed?: number;
  /** Standard deviation of B's entries (A is PEFT's kaiming-uniform init). */
  bStd?: number;
}

export function randomAdapter(model: ModelConfig, opts: RandomAdapterOptions = {}): LoraAdapter {
  const { r = 8, loraAlpha = 2 * r, targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed = 0, bStd = 0.01 } = opts;
  const config = parseLoraConfig({ peft_type: 'LORA', r, lora_alpha: loraAlpha, target_modules: targetModules }, 'random adapter');
  const adapter = initAdapter(model, config, seed);
  // A stream of its own, so B does not depend on how many values A drew.
  const rng = new Rng(seed + 0x51ed27);
  for (const m of adapter.modules) for (let i = 0; i < m.B.length; i++) m.B[i] = rng.normal() * bStd;
  return adapter;
}
