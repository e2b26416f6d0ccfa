/**
 * LoRA dropout for training: PEFT applies `lora_dropout` to the input of lora_A only,
 * `y = W x + B A dropout(x) * scaling`, and only in training mode. Attribution never uses
 * dropout (gradients and losses are taken on the deterministic model).
 *
 * `apply(lora)` returns the LoRA state with the current masks as `inputMasks`, which the
 * model's linear layers (model/llama.ts) multiply lora_A's input by.
 *
 * Masks are inverted dropout like torch.nn.Dropout: each input feature of each token row
 * is kept with probability 1 - p and scaled by 1 / (1 - p), drawn from a seeded Rng.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { LoraState } from '../model/loraState';
import { Rng } from '../random';

export class LoraDropout {
  private masks = new Map<string, tf.Tensor2D>();

  constructor(
    readonly p: number,
    private readonly rng: Rng,
  ) {
    if (!(p >= 0 && p < 1)) throw new TdaError(`must be in [0, 1), got ${p}`, { field: 'lora_dropout' });
  }

  /** `lora` with the current masks (none drawn: `lora` itself). */
  apply(lora: LoraState): LoraState {
    if (this.masks.size === 0) return lora;
    if (lora.perExample) throw new TdaError('LoRA dropout applies to shared training factors only', { field: 'lora_dropout' });
    return { ...lora, inputMasks: this.masks };
  }

  /** Draws fresh masks ([rows, inFeatures] per module) for the next forward; p = 0 draws none. */
  resample(rows: number, modules: { path: string; inFeatures: number }[]): void {
    this.clear();
    if (this.p === 0) return;
    const keep = 1 / (1 - this.p);
    for (const m of modules) {
      const data = new Float32Array(rows * m.inFeatures);
      for (let i = 0; i < data.length; i++) data[i] = this.rng.next() < this.p ? 0 : keep;
      this.masks.set(m.path, tf.tensor2d(data, [rows, m.inFeatures]));
    }
  }

  /** Disposes the current masks (the view then runs without dropout). */
  clear(): void {
    for (const t of this.masks.values()) t.dispose();
    this.masks.clear();
  }
}
