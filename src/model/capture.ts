/**
 * Per-token inputs and output gradients of every LoRA linear layer, for EK-FAC.
 *
 * PEFT computes y = W x + scaling * B (A x): A and B are each a linear layer, A's input is
 * the layer input x, B's input is A x. One pass of the model over a batch with the shared
 * factors, with zero probes added to A's and B's outputs (llama.ts), gives by tf.grads:
 *   dA_t = dL/d(A x_t)   and   dB_t = dL/d(B A x_t) = scaling * dL/dy_t,
 * where L is the sum over the batch of each example's loss (the mean over its counted
 * tokens, as for the per-example gradients in gradients/compute.ts). Example b's gradients
 * are then sum_t dA_t x_t^T [r, in] and sum_t dB_t (A x_t)^T [out, r], over its tokens.
 *
 * Rows are every non-padding token of the batch, not only the counted ones: under causal
 * attention a counted token's loss depends on earlier tokens (the prompt too), so their
 * output gradients are not zero and belong to the example's gradient. Padding rows are dropped.
 */
import * as tf from '@tensorflow/tfjs';
import { TokenBatch } from '../data/batch';
import { TdaError } from '../errors';
import { Rng } from '../random';
import { crossEntropyRows, gatherRows, readFloat32 } from '../runtime/ops';
import { BatchConstants, disposeBatchConstants, LlamaModel } from './llama';
import { disposeLossRows, lossRows } from './loss';
import { checkBatchFits } from './memoryBudget';
import { LoraCapture, LoraState } from './loraState';

/** One LoRA module's per-token rows; every array is [tokens, width] row-major. */
export interface ModuleCapture {
  path: string;
  /** A's input, the layer input x [tokens, in]. */
  x: Float32Array;
  /** B's input, A x [tokens, r]. */
  low: Float32Array;
  /** Gradient with respect to A's output [tokens, r]. */
  dA: Float32Array;
  /** Gradient with respect to B's output (before PEFT's scaling) [tokens, out]. */
  dB: Float32Array;
  inFeatures: number;
  outFeatures: number;
  r: number;
}

export interface BatchCapture {
  /** Non-padding tokens of the batch: the rows of every ModuleCapture. */
  tokens: number;
  /** The example (index in the batch) of each row. */
  example: Int32Array;
  /** Each example's loss with the labels used. */
  losses: Float32Array;
  /** The next-token labels the loss used, one per counted position (the data's, or sampled). */
  labels: Int32Array;
  /** In adapter order (the order of the LoRA state's factors). */
  modules: ModuleCapture[];
}

export interface CaptureOptions {
  /**
   * Labels drawn from the model's own softmax at each counted position (the true Fisher,
   * as kronfluence's `sample=True`), instead of the data's (the empirical Fisher).
   */
  sample?: Rng;
}

/** One label per row of `logits` [n, V], drawn from softmax(row) with `rng` (float64 cumulative sums). */
export function sampleLabels(logits: Float32Array, n: number, vocab: number, rng: Rng): Int32Array {
  const out = new Int32Array(n);
  const p = new Float64Array(vocab);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * vocab, (i + 1) * vocab);
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, row[v]);
    let total = 0;
    for (let v = 0; v < vocab; v++) total += p[v] = Math.exp(row[v] - max);
    const u = rng.next() * total;
    let acc = 0;
    let pick = vocab - 1;
    for (let v = 0; v < vocab; v++) {
      acc += p[v];
      if (u < acc) {
        pick = v;
        break;
      }
    }
    out[i] = pick;
  }
  return out;
}

/** Keeps the rows of `data` [B*T, w] that are not padding. */
function realRows(data: Float32Array, width: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((r, i) => out.set(data.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

function disposeCapture(capture: LoraCapture): void {
  for (const p of capture.probes.values()) {
    p.a.dispose();
    p.b.dispose();
  }
  for (const v of capture.inputs.values()) {
    v.x.dispose();
    v.low.dispose();
  }
}

/**
 * Per-token inputs and output gradients of every LoRA module of `shared` (shared factors,
 * not per-example copies) over one batch, at its non-padding tokens.
 */
export function captureBatch(model: LlamaModel, shared: LoraState, batch: TokenBatch, opts: CaptureOptions = {}): BatchCapture {
  if (shared.perExample) throw new TdaError('capture needs the shared LoRA factors, not per-example copies', { field: 'lora' });
  const { batchSize: B, seqLen: T } = batch;
  checkBatchFits(model.config, B, T);
  const rows = B * T;
  const paths = [...shared.factors.keys()];
  const real: number[] = [];
  const example: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < batch.lengths[b]; t++) {
      real.push(b * T + t);
      example.push(b);
    }
  }
  const realIdx = Int32Array.from(real);
  const capture: LoraCapture = { probes: new Map(), inputs: new Map() };
  const shapes = paths.map((p) => {
    const f = shared.factors.get(p)!;
    const [inFeatures, r] = f.aT.shape as [number, number];
    const outFeatures = f.bT.shape[1] as number;
    return { inFeatures, r, outFeatures };
  });
  paths.forEach((p, i) => capture.probes.set(p, { a: tf.zeros([rows, shapes[i].r]), b: tf.zeros([rows, shapes[i].outFeatures]) }));
  const c: BatchConstants = model.batchConstants(batch);
  const lr = lossRows(batch);
  let labels = batch.lossLabels;
  let losses: tf.Tensor | undefined;
  try {
    const probeList = paths.flatMap((p) => [capture.probes.get(p)!.a, capture.probes.get(p)!.b]);
    const grads = tf.grads((...ps: tf.Tensor[]) => {
      const probes = new Map(paths.map((p, i) => [p, { a: ps[2 * i] as tf.Tensor2D, b: ps[2 * i + 1] as tf.Tensor2D }]));
      const state: LoraState = { ...shared, capture: { probes, inputs: capture.inputs } };
      const logits = model.logits(gatherRows(model.hidden(c, state), lr.rows));
      // Sampled labels are read off the forward pass's logits: constants, not differentiated.
      if (opts.sample) labels = sampleLabels(readFloat32(logits), logits.shape[0], logits.shape[1], opts.sample);
      const rowLoss = crossEntropyRows(logits, labels);
      losses = tf.keep(tf.reshape(tf.matMul(lr.average, tf.reshape(rowLoss, [-1, 1])), [-1]));
      return tf.sum(losses) as tf.Scalar;
    })(probeList);
    const lossValues = readFloat32(losses as tf.Tensor);
    const modules = paths.map((path, i) => {
      const { inFeatures, r, outFeatures } = shapes[i];
      const seen = capture.inputs.get(path);
      if (!seen) throw new Error(`capture: module ${path} was not reached by the forward pass`);
      return {
        path,
        inFeatures,
        r,
        outFeatures,
        x: realRows(readFloat32(seen.x), inFeatures, realIdx),
        low: realRows(readFloat32(seen.low), r, realIdx),
        dA: realRows(readFloat32(grads[2 * i]), r, realIdx),
        dB: realRows(readFloat32(grads[2 * i + 1]), outFeatures, realIdx),
      };
    });
    grads.forEach((g) => g.dispose());
    return { tokens: real.length, example: Int32Array.from(example), losses: lossValues, labels, modules };
  } finally {
    losses?.dispose();
    disposeCapture(capture);
    disposeBatchConstants(c);
    disposeLossRows(lr);
  }
}
