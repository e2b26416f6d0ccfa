/**
 * The LLaMA-family decoder (LLaMA, Mistral, Qwen2) with optional LoRA on any linear layer.
 *
 * Conventions follow Hugging Face transformers: RMSNorm `x * rsqrt(mean(x^2) + eps) * w`;
 * rotary embeddings in the rotate-half form with `inv_freq = 1 / theta^(2i/d)` (or its
 * scaled variants, rope.ts); K/V heads
 * shared by consecutive query heads (grouped-query attention); SwiGLU MLP
 * `down(silu(gate(x)) * up(x))`; LoRA adds `(x A^T) B^T * scaling`.
 *
 * Activations are kept as 2-D [batch * seq, features] matrices so the big products are
 * plain 2-D matmuls, the fast path on the wasm backend.
 */
import * as tf from '@tensorflow/tfjs';
import { TokenBatch } from '../data/batch';
import { attentionCore } from '../runtime/attention';
import { addSame, customGrad, embedRows, frozenLinear, gradsInsideBackward, matMul2d, perExampleLowRank, rmsNorm, rotary, RotationMatrix, swiGlu } from '../runtime/ops';
import { BaseWeights, disposeBaseWeights, loadBaseModelFiles, LoadOptions } from './baseWeights';
import { modulePath } from './modules';
import { LoraCapture, LoraState } from './loraState';
import { rotaryTables } from './rope';
import { LinearModule, ModelConfig } from './types';

/** Constant tensors for one batch, made outside any differentiated function. */
export interface BatchConstants {
  batchSize: number;
  seqLen: number;
  ids: tf.Tensor1D;
  /** [1, T, 1, d] rotary tables, or [B, T, 1, d] when they differ by example (rope.ts). */
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** [B, 1, T, T] additive mask: 0 where attention is allowed, a large negative number elsewhere. */
  attentionBias: tf.Tensor4D;
  /**
   * Activation checkpointing: keep only each layer's input for the backward pass and
   * recompute the layer there (one more forward pass; memoryBudget.ts chooseRecompute).
   */
  recomputeLayers?: boolean;
}

const MASKED = -1e9;

export class LlamaModel {
  /** Rotate-half as a [d, d] matrix: x @ R = cat(-x2, x1). */
  private readonly rotateHalf: RotationMatrix;

  /**
   * Trainable mode (pretraining from scratch): the base weights are tf.Variables stored
   * transposed (wT, untied LM head), used through a matmul that passes gradients to both operands.
   */
  readonly trainable: boolean;

  constructor(
    readonly config: ModelConfig,
    readonly weights: BaseWeights,
    opts: { trainable?: boolean } = {},
  ) {
    this.trainable = opts.trainable ?? false;
    this.rotateHalf = rotateHalfMatrix(config.headDim);
  }

  /**
   * Loads `config.json` and `model.safetensors` (or a sharded index) from a Hugging Face
   * directory; `layout` and `storage` choose how and where frozen weights are kept
   * (baseWeights.ts WeightLayout, WeightStorage: by default memory-mapped on the native path).
   */
  static load(dir: string, opts: LoadOptions = {}): LlamaModel {
    const { config, weights } = loadBaseModelFiles(dir, opts);
    return new LlamaModel(config, weights);
  }

  dispose(): void {
    disposeBaseWeights(this.weights);
    this.rotateHalf.r.dispose();
    this.rotateHalf.rT.dispose();
  }

  /** Builds the constant tensors of a batch; dispose them with disposeBatchConstants. */
  batchConstants(batch: TokenBatch): BatchConstants {
    const { batchSize: B, seqLen: T } = batch;
    const d = this.config.headDim;
    const rope = rotaryTables(this.config, batch.lengths, T);
    const bias = new Float32Array(B * T * T);
    const window = this.config.slidingWindow;
    for (let b = 0; b < B; b++) {
      const len = batch.lengths[b];
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          const allowed = j <= i && j < len && (window === null || i - j < window);
          bias[(b * T + i) * T + j] = allowed ? 0 : MASKED;
        }
      }
    }
    return {
      batchSize: B,
      seqLen: T,
      ids: tf.tensor1d(batch.ids, 'int32'),
      cos: tf.tensor4d(rope.cos, [rope.rows, T, 1, d]),
      sin: tf.tensor4d(rope.sin, [rope.rows, T, 1, d]),
      attentionBias: tf.tensor4d(bias, [B, 1, T, T]),
    };
  }

  /** Final (post-norm) hidden states [B * T, hidden]. */
  hidden(c: BatchConstants, lora?: LoraState): tf.Tensor2D {
    const w = this.weights;
    let h = embedRows(w.embed, c.ids);
    for (let l = 0; l < this.config.numLayers; l++) {
      const input = h;
      h = c.recomputeLayers && lora ? this.recomputedLayer(input, l, c, lora) : this.layer(input, l, c, lora);
      if (l > 0) input.dispose();
    }
    return this.rmsNorm(h, w.finalNorm);
  }

  /**
   * One decoder layer. One scope per layer: its intermediates are freed as soon as it is
   * done (under a gradient tape the backward pass reads only what each op saved), which
   * keeps the peak memory of a batch to about one layer's intermediates plus the saved tensors.
   */
  private layer(input: tf.Tensor2D, l: number, c: BatchConstants, lora?: LoraState): tf.Tensor2D {
    const layer = this.weights.layers[l];
    return tf.tidy(() => {
      const x = this.rmsNorm(input, layer.inputNorm);
      const attn = this.attention(x, l, c, lora);
      const h1 = addSame(input, this.linear(attn, l, 'o_proj', c, lora));
      const y = this.rmsNorm(h1, layer.postAttentionNorm);
      const act = swiGlu(this.linear(y, l, 'gate_proj', c, lora), this.linear(y, l, 'up_proj', c, lora));
      return addSame(h1, this.linear(act, l, 'down_proj', c, lora));
    });
  }

  /**
   * The layer as one differentiable op of its input and its LoRA factors that saves only
   * those: the forward runs untaped, and the backward runs the layer again under a tape of
   * its own. Memory per layer drops from all its intermediates to its input.
   */
  private recomputedLayer(input: tf.Tensor2D, l: number, c: BatchConstants, lora: LoraState): tf.Tensor2D {
    const prefix = `model.layers.${l}.`;
    const paths = [...lora.factors.keys()].filter((p) => p.startsWith(prefix));
    const factors = paths.flatMap((p) => [lora.factors.get(p)!.aT, lora.factors.get(p)!.bT]);
    const withFactors = (ts: tf.Tensor[]): LoraState => {
      const map = new Map(lora.factors);
      paths.forEach((p, i) => map.set(p, { ...lora.factors.get(p)!, aT: ts[2 * i], bT: ts[2 * i + 1] }));
      return { ...lora, factors: map };
    };
    const run = (x: tf.Tensor, ...fs: tf.Tensor[]) => this.layer(x as tf.Tensor2D, l, c, withFactors(fs));
    const f = customGrad((...args: never[]) => {
      const save = (args as unknown[]).pop() as tf.GradSaveFunc;
      const inputs = args as unknown as tf.Tensor[];
      save(inputs);
      return {
        value: run(inputs[0], ...inputs.slice(1)),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => gradsInsideBackward(run, saved, dy),
      };
    });
    return f(input, ...factors) as tf.Tensor2D;
  }

  /** Logits [rows, vocab] for the given rows of a hidden-state matrix. */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    return this.trainable ? matMul2d(hidden, this.weights.lmHead.wT!) : frozenLinear(hidden, this.weights.lmHead);
  }

  private rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D): tf.Tensor2D {
    return rmsNorm(x, weight, this.config.rmsNormEps, this.trainable);
  }

  /** A linear layer: frozen weight, optional bias, optional LoRA update (with dropout masks on its input while training). */
  private linear(x: tf.Tensor2D, layer: number, module: LinearModule, c: BatchConstants, lora?: LoraState): tf.Tensor2D {
    const lw = this.weights.layers[layer];
    let y = this.trainable ? matMul2d(x, lw.linear[module].wT!) : frozenLinear(x, lw.linear[module]);
    const bias = lw.bias[module];
    if (bias) y = tf.add(y, bias);
    const path = modulePath(layer, module);
    const f = lora?.factors.get(path);
    if (f && lora) {
      const mask = lora.inputMasks?.get(path);
      if (lora.perExample) {
        if (mask) throw new Error('LoRA dropout masks apply to shared factors only');
        y = addSame(y, perExampleLowRank(x, f.aT as tf.Tensor3D, f.bT as tf.Tensor3D, c.seqLen, lora.scaling, f.shared));
      } else {
        const input = mask ? (tf.mul(x, mask) as tf.Tensor2D) : x;
        const probes = lora.capture?.probes.get(path);
        const update = probes ? capturedLowRank(input, f.aT as tf.Tensor2D, f.bT as tf.Tensor2D, probes, path, lora.capture!) : matMul2d(matMul2d(input, f.aT as tf.Tensor2D), f.bT as tf.Tensor2D);
        y = tf.add(y, tf.mul(update, lora.scaling));
      }
    }
    return y;
  }

  /** Rotary embedding on [B*T, heads*d] projections (runtime/ops.ts rotary). */
  private rope(x: tf.Tensor2D, heads: number, c: BatchConstants): tf.Tensor2D {
    return rotary(x, c.cos, c.sin, this.rotateHalf, c.batchSize, c.seqLen, heads);
  }

  /**
   * Causal self-attention. Query heads are grouped by the K/V head they share, so each
   * (example, K/V head) pair is one [g*T, d] x [d, T] product and K/V are never repeated
   * (see runtime/attention.ts).
   */
  private attention(x: tf.Tensor2D, layer: number, c: BatchConstants, lora?: LoraState): tf.Tensor2D {
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    const { batchSize: B, seqLen: T } = c;
    const q = this.rope(this.linear(x, layer, 'q_proj', c, lora), H, c);
    const k = this.rope(this.linear(x, layer, 'k_proj', c, lora), Hkv, c);
    const v = this.linear(x, layer, 'v_proj', c, lora);
    return attentionCore(q, k, v, c.attentionBias, { batchSize: B, seqLen: T, numHeads: H, numKvHeads: Hkv, headDim: d });
  }
}

/**
 * B A x with zero probes added to A's and B's outputs (the pre-activation gradients are the
 * gradients with respect to them) and A's and B's inputs recorded: EK-FAC's capture.
 */
function capturedLowRank(x: tf.Tensor2D, aT: tf.Tensor2D, bT: tf.Tensor2D, probes: { a: tf.Tensor2D; b: tf.Tensor2D }, path: string, capture: LoraCapture): tf.Tensor2D {
  const low = tf.add(matMul2d(x, aT), probes.a) as tf.Tensor2D;
  capture.inputs.set(path, { x: tf.keep(x), low: tf.keep(low) });
  return tf.add(matMul2d(low, bT), probes.b) as tf.Tensor2D;
}

export function disposeBatchConstants(c: BatchConstants): void {
  c.ids.dispose();
  c.cos.dispose();
  c.sin.dispose();
  c.attentionBias.dispose();
}

function rotateHalfMatrix(d: number): RotationMatrix {
  const half = d / 2;
  const r = new Float32Array(d * d);
  for (let j = 0; j < half; j++) {
    r[(j + half) * d + j] = -1; // output j takes -x[j + d/2]
    r[j * d + (j + half)] = 1; // output j + d/2 takes x[j]
  }
  const rot = tf.tensor2d(r, [d, d]);
  return { r: rot, rT: tf.tidy(() => tf.transpose(rot)), rotateHalf: true };
}
