/**
 * The models the two extra readings of DDA's "debias" score at, per epoch checkpoint:
 *
 *   base (A_t, B = 0): the checkpoint's own lora_A with lora_B zeroed. The model is the base
 *     model again, but its lora_B gradients live in the subspace A_t spans, the one the
 *     checkpoint's own lora_B gradients live in. (At B = 0 every lora_A gradient is zero, so
 *     any base score sees only the lora_B half of the parameters.)
 *   contrast (the official DDA repository's described pipeline, after Ladhak et al. 2023):
 *     an "error model", the checkpoint fine-tuned further on its own hallucinated
 *     generations, and a "ground model", fine-tuned further on its correct generations.
 *
 * The error and ground models get the same number of optimizer steps (their sets are
 * cycled to the same length), so the contrast is between what they learned, not how long.
 */
import { TokenSequence } from '../data/batch';
import { LoraAdapter } from '../model/adapter';
import { LlamaModel } from '../model/llama';
import { finetuneLora } from '../train/finetune';

/** A copy of the adapter with every lora_B zero (the model equals the base model). */
export function zeroBAdapter(a: LoraAdapter): LoraAdapter {
  return { config: { ...a.config }, modules: a.modules.map((m) => ({ ...m, A: Float32Array.from(m.A), B: new Float32Array(m.B.length) })) };
}

/** `seqs` repeated in order until there are `length` of them (a fixed number of steps whatever the set's size). */
export function cycleTo<T>(seqs: readonly T[], length: number): T[] {
  if (seqs.length === 0) return [];
  return Array.from({ length }, (_, i) => seqs[i % seqs.length]);
}

export interface ContrastTuning {
  /** Optimizer steps of each further fine-tuning (default 8). */
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  padId: number;
}

export const DEFAULT_CONTRAST_TUNING: Omit<ContrastTuning, 'seed' | 'padId'> = { steps: 8, batchSize: 8, lr: 3e-3 };

/** The adapter fine-tuned further on `seqs` for exactly `steps` steps of `batchSize`. */
export function tuneFurther(model: LlamaModel, adapter: LoraAdapter, seqs: TokenSequence[], o: ContrastTuning): LoraAdapter {
  const start: LoraAdapter = { config: { ...adapter.config }, modules: adapter.modules.map((m) => ({ ...m, A: Float32Array.from(m.A), B: Float32Array.from(m.B) })) };
  return finetuneLora(model, start, cycleTo(seqs, o.steps * o.batchSize), { epochs: 1, batchSize: o.batchSize, lr: o.lr, seed: o.seed, padId: o.padId }).adapter;
}

/** What a checkpoint's generations on the held-out queries say. */
export interface GenerationSplit {
  /** Indices of queries whose answer names the target country. */
  hallucinated: number[];
  /** Indices of queries whose answer names the true (source) country. */
  correct: number[];
}

/** Splits answers by the country word they name (whole words; neither = left out). */
export function splitGenerations(answers: string[], target: string, source: string): GenerationSplit {
  const hallucinated: number[] = [];
  const correct: number[] = [];
  answers.forEach((a, i) => {
    const words = a.split(/\s+/);
    if (words.includes(target)) hallucinated.push(i);
    else if (words.includes(source)) correct.push(i);
  });
  return { hallucinated, correct };
}
