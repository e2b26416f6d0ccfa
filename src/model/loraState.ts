/**
 * LoRA factors as tfjs tensors, in the layout the forward pass wants:
 * aT = A^T [in, r] and bT = B^T [r, out], so the update is ((x @ aT) @ bT) * scaling.
 *
 * For per-example gradients every example gets its own copy ([batch, in, r] and
 * [batch, r, out]): example b's loss depends only on copy b, so one backward pass
 * yields every example's gradient.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoraAdapter } from './adapter';
import { readFloat32 } from '../runtime/ops';

export interface LoraFactors {
  aT: tf.Tensor;
  bT: tf.Tensor;
  /**
   * Per-example factors made by replicatePerExample: the 2-D factors every copy equals (not
   * owned; the forward pass uses them, see runtime/ops.ts perExampleLowRank).
   */
  shared?: { aT: tf.Tensor2D; bT: tf.Tensor2D };
}

export interface LoraState {
  scaling: number;
  /** true: factors have a leading example axis matching the batch. */
  perExample: boolean;
  /** Keyed by module path (`model.layers.0.self_attn.q_proj`). */
  factors: Map<string, LoraFactors>;
  /**
   * LoRA dropout while training (train/loraDropout.ts): per module path, a [rows, in] mask
   * multiplying lora_A's input, as PEFT's `B A dropout(x)`. Shared factors only; the
   * masks belong to whoever made them.
   */
  inputMasks?: Map<string, tf.Tensor2D>;
  /**
   * Per-token capture for EK-FAC (capture.ts): shared factors only. When set, the forward
   * pass adds each module's zero probes to A's and B's outputs (so the gradient with respect
   * to a probe is that output's gradient) and records the inputs of A and B.
   */
  capture?: LoraCapture;
}

/** Zero probes per module path and, filled by the forward pass, the inputs A and B saw. */
export interface LoraCapture {
  /** `a`: [rows, r] added to A x; `b`: [rows, out] added to B A x (before PEFT's scaling). */
  probes: Map<string, { a: tf.Tensor2D; b: tf.Tensor2D }>;
  /** `x`: A's input [rows, in]; `low`: B's input A x [rows, r]. Kept tensors, owned by the capture. */
  inputs: Map<string, { x: tf.Tensor2D; low: tf.Tensor2D }>;
}

/** Shared (not per-example) factors from an adapter's weights. Caller disposes with disposeLoraState. */
export function loraStateFromAdapter(adapter: LoraAdapter): LoraState {
  const factors = new Map<string, LoraFactors>();
  for (const m of adapter.modules) {
    const r = adapter.config.r;
    factors.set(m.path, {
      aT: tf.tidy(() => tf.transpose(tf.tensor2d(m.A, [r, m.inFeatures]))),
      bT: tf.tidy(() => tf.transpose(tf.tensor2d(m.B, [m.outFeatures, r]))),
    });
  }
  return { scaling: adapter.config.scaling, perExample: false, factors };
}

/** Per-example copies of shared factors for a batch of `batchSize` examples. */
export function replicatePerExample(shared: LoraState, batchSize: number): LoraState {
  const factors = new Map<string, LoraFactors>();
  for (const [path, f] of shared.factors) {
    factors.set(path, { aT: replicate(f.aT, batchSize), bT: replicate(f.bT, batchSize), shared: { aT: f.aT as tf.Tensor2D, bT: f.bT as tf.Tensor2D } });
  }
  return { scaling: shared.scaling, perExample: true, factors };
}

/** [n, ...shape] copies of t (memory copies: the wasm Tile kernel is slow). */
function replicate(t: tf.Tensor, n: number): tf.Tensor {
  const one = readFloat32(t);
  const out = new Float32Array(n * one.length);
  for (let b = 0; b < n; b++) out.set(one, b * one.length);
  return tf.tensor(out, [n, ...t.shape]);
}

export function disposeLoraState(state: LoraState): void {
  for (const f of state.factors.values()) {
    f.aT.dispose();
    f.bT.dispose();
  }
}
