/**
 * LoRA dropout for training: PEFT applies `lora_dropout` to the input of lora_A only,
 * `y = W x + B A dropout(x) * scaling`, and only in training mode. Attribution never uses
 * dropout (gradients and losses are taken on the deterministic model).
 *
 * The model's forward (model/llama.ts) has no dropout hook, so training uses a *view* of
 * the model: an object whose prototype is the model, with its private `linear` method
 * replaced by one that computes the base part with the original method (no LoRA) and
 * adds the LoRA update on the masked input. The original model is left untouched. This
 * relies on llama.ts's private `linear(x, layer, module, c, lora)`; the tests check that
 * the view without masks reproduces the model exactly and that masks change the output.
 * (A `dropout mask` field on the LoRA factors read by llama.ts would remove the need.)
 *
 * Masks are inverted dropout like torch.nn.Dropout: each input feature of each token row
 * is kept with probability 1 - p and scaled by 1 / (1 - p), drawn from a seeded Rng.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { BatchConstants, LlamaModel } from '../model/llama';
import { LoraState } from '../model/loraState';
import { modulePath } from '../model/modules';
import { Rng } from '../model/random';
import { matMul2d } from '../runtime/ops';
import { LinearModule } from '../model/types';

type LinearFn = (x: tf.Tensor2D, layer: number, module: LinearModule, c: BatchConstants, lora?: LoraState) => tf.Tensor2D;

export class LoraDropout {
  /** Use this in place of the model while training; it applies the current masks. */
  readonly view: LlamaModel;
  private masks = new Map<string, tf.Tensor2D>();

  constructor(
    model: LlamaModel,
    readonly p: number,
    private readonly rng: Rng,
  ) {
    if (!(p >= 0 && p < 1)) throw new TdaError(`must be in [0, 1), got ${p}`, { field: 'lora_dropout' });
    const original = (model as unknown as { linear?: LinearFn }).linear;
    if (typeof original !== 'function') {
      throw new TdaError('LlamaModel has no linear() method to hook LoRA dropout into (model/llama.ts changed?)', { field: 'lora_dropout' });
    }
    const masks = () => this.masks;
    const view = Object.create(model) as LlamaModel;
    const linear: LinearFn = function (this: LlamaModel, x, layer, module, c, lora) {
      const y = original.call(this, x, layer, module, c, undefined);
      const path = modulePath(layer, module);
      const f = lora?.factors.get(path);
      if (!f || !lora) return y;
      if (lora.perExample) throw new TdaError('LoRA dropout applies to shared training factors only', { field: 'lora_dropout' });
      const mask = masks().get(path);
      const input = mask ? (tf.mul(x, mask) as tf.Tensor2D) : x;
      return tf.add(y, tf.mul(matMul2d(matMul2d(input, f.aT as tf.Tensor2D), f.bT as tf.Tensor2D), lora.scaling)) as tf.Tensor2D;
    };
    (view as unknown as { linear: LinearFn }).linear = linear;
    this.view = view;
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
