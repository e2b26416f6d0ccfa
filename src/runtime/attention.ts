/**
 * The attention core softmax(q k^T / sqrt(d) + bias) v with its gradient, arranged for the
 * wasm backend: on native BLAS as a few batched products per layer (attentionBatched), on
 * XNNPACK as one 2-D product per (example, K/V head), as follows.
 *
 * tfjs's batched matmul runs a generic scalar loop on wasm (1-2 GFLOP/s) while a 2-D
 * matmul goes to XNNPACK (15-20 GFLOP/s), and slice/split copy their whole input each call.
 * So each (example, K/V head) pair is one 2-D product: the operands are brought into
 * [pairs, rows, cols] layouts with one transpose each, copied out of the heap once, and
 * every pair's operand is made a small tensor from a subarray. The query heads sharing a
 * K/V head are stacked ([g*T, d]), so K and V are never repeated. The softmax runs on the
 * whole [B, H, T, T] block (the vectorised wasm Softmax kernel) and its gradient is written
 * out, so no exp runs in the backward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeActive } from './backend';
import { nativeSoftmaxGrad } from './nativeElementwise';
import { readFloat32 } from './ops';

export interface AttentionShape {
  batchSize: number;
  seqLen: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

type GradBody = (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
function customGrad(body: GradBody): (...inputs: tf.Tensor[]) => tf.Tensor {
  return tf.customGrad(body as unknown as Parameters<typeof tf.customGrad>[0]) as (...inputs: tf.Tensor[]) => tf.Tensor;
}

/** out[p] = a[p] @ b[p] for p < pairs, a [pairs, m, k] and b [pairs, k, n] given as flat arrays; returns [pairs * m, n]. */
function pairProducts(a: Float32Array, b: Float32Array, pairs: number, m: number, k: number, n: number): tf.Tensor2D {
  const outs: tf.Tensor2D[] = [];
  for (let p = 0; p < pairs; p++) {
    const ta = tf.tensor2d(a.subarray(p * m * k, (p + 1) * m * k), [m, k]);
    const tb = tf.tensor2d(b.subarray(p * k * n, (p + 1) * k * n), [k, n]);
    outs.push(tf.matMul(ta, tb));
    ta.dispose();
    tb.dispose();
  }
  const out = tf.concat(outs, 0);
  outs.forEach((t) => t.dispose());
  return out;
}

/** Values of `t` reshaped and permuted, copied to JS memory. */
function permuted(t: tf.Tensor, shape: number[], perm: number[]): Float32Array {
  const r = tf.tidy(() => tf.transpose(tf.reshape(t, shape), perm));
  const data = readFloat32(r);
  r.dispose();
  return data;
}

/** Like permuted, for values held in JS memory. */
function permutedArray(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const t = tf.tensor(data, shape);
  const out = permuted(t, shape, perm);
  t.dispose();
  return out;
}

/** [B, G, T, d] rows back to token-major [B*T, G*d]. */
function tokenMajor(t: tf.Tensor2D, B: number, G: number, T: number, d: number, scale = 1): tf.Tensor2D {
  return tf.tidy(() => {
    const r = tf.reshape(tf.transpose(tf.reshape(t, [B, G, T, d]), [0, 2, 1, 3]), [B * T, G * d]) as tf.Tensor2D;
    return scale === 1 ? r : (tf.mul(r, scale) as tf.Tensor2D);
  });
}

/**
 * Attention for q [B*T, H*d], k and v [B*T, Hkv*d] (rotary embedding already applied),
 * with an additive bias [B, 1, T, T] (causal mask, padding, sliding window). Returns
 * [B*T, H*d]. Query head h uses K/V head floor(h / (H / Hkv)), as in Hugging Face.
 */
export function attentionCore(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, bias: tf.Tensor4D, s: AttentionShape): tf.Tensor2D {
  if (nativeActive()) return attentionBatched(q, k, v, bias, s);
  const { batchSize: B, seqLen: T, numHeads: H, numKvHeads: Hkv, headDim: d } = s;
  const g = H / Hkv;
  const pairs = B * Hkv;
  const gT = g * T;
  const scale = 1 / Math.sqrt(d);
  const f = customGrad((qIn: tf.Tensor, kIn: tf.Tensor, vIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    // [B, T, Hkv, g, d] -> [B, Hkv, g, T, d] = [pairs, gT, d], scaled here rather than the scores.
    const qScaled = tf.mul(qIn, scale);
    const qs = permuted(qScaled, [B, T, H, d], [0, 2, 1, 3]);
    qScaled.dispose();
    const kT = permuted(kIn, [B, T, Hkv, d], [0, 2, 3, 1]); // [pairs, d, T]
    const vs = permuted(vIn, [B, T, Hkv, d], [0, 2, 1, 3]); // [pairs, T, d]
    const scores = pairProducts(qs, kT, pairs, gT, d, T); // [pairs * gT, T]
    const probs = tf.tidy(() => tf.softmax(tf.add(tf.reshape(scores, [B, H, T, T]), bias)));
    scores.dispose();
    const p = readFloat32(probs);
    probs.dispose();
    const o = pairProducts(p, vs, pairs, gT, T, d); // [pairs * gT, d] = [B, H, T, d]
    const value = tokenMajor(o, B, H, T, d);
    o.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        // dP = dO V^T, dS = softmax backward, dQ = dS K; dK and dV come out transposed,
        // dK^T = Q^T dS and dV^T = dO^T P, so the [T, T]-sized P and dS are never transposed
        // (only the d-wide operands, 4x smaller at T = 256).
        const dO = permuted(dy, [B, T, H, d], [0, 2, 1, 3]); // [pairs, gT, d]
        const dOT = permutedArray(dO, [pairs, gT, d], [0, 2, 1]); // [pairs, d, gT]
        const vT = permutedArray(vs, [pairs, T, d], [0, 2, 1]); // [pairs, d, T]
        const dP = pairProducts(dO, vT, pairs, gT, d, T); // [pairs * gT, T]
        const pt = tf.tensor2d(p, [pairs * gT, T]);
        // Softmax backward: dS = P * (dP - rowsum(dP * P)); the bias is a constant.
        const dS = tf.tidy(() => tf.mul(pt, tf.sub(dP, tf.sum(tf.mul(dP, pt), 1, true))));
        dP.dispose();
        pt.dispose();
        const dSd = readFloat32(dS);
        dS.dispose();
        const kk = permutedArray(kT, [pairs, d, T], [0, 2, 1]); // [pairs, T, d]
        const qT = permutedArray(qs, [pairs, gT, d], [0, 2, 1]); // [pairs, d, gT]
        const dq = pairProducts(dSd, kk, pairs, gT, T, d); // [pairs * gT, d]
        const dkT = pairProducts(qT, dSd, pairs, d, gT, T); // [pairs * d, T]
        const dvT = pairProducts(dOT, p, pairs, d, gT, T); // [pairs * d, T]
        // [B, G, d, T] rows back to token-major [B*T, G*d].
        const fromTransposed = (t: tf.Tensor2D, G: number) => tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(t, [B, G, d, T]), [0, 3, 1, 2]), [B * T, G * d]));
        const grads = [tokenMajor(dq, B, H, T, d, scale), fromTransposed(dkT, Hkv), fromTransposed(dvT, Hkv)];
        [dq, dkT, dvT].forEach((t) => t.dispose());
        return grads;
      },
    };
  });
  return f(q, k, v) as tf.Tensor2D;
}

/** Token-major [B*T, G*d] to [B*G, T, d], one transpose. */
function headMajor(t: tf.Tensor, B: number, G: number, T: number, d: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(t, [B, T, G, d]), [0, 2, 1, 3]), [B * G, T, d]) as tf.Tensor3D;
}

/**
 * attentionCore on native BLAS, where batched and transposed products run at full speed:
 * every (example, K/V head) pair is one matrix of a batch, so a layer is five batched
 * products (two forward, three more backward) instead of thousands of small ones. The query
 * heads sharing a K/V head are stacked as [g*T, d] rows, so K and V are never repeated.
 * Saves the head-major Q, K, V and the probabilities for the backward pass.
 */
function attentionBatched(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, bias: tf.Tensor4D, s: AttentionShape): tf.Tensor2D {
  const { batchSize: B, seqLen: T, numHeads: H, numKvHeads: Hkv, headDim: d } = s;
  const pairs = B * Hkv;
  const gT = (H / Hkv) * T;
  const scale = 1 / Math.sqrt(d);
  const f = customGrad((qIn: tf.Tensor, kIn: tf.Tensor, vIn: tf.Tensor, save: tf.GradSaveFunc) => {
    // Query head h = kv * g + j, so [B, H, T, d] is [B, Hkv, g*T, d] = [pairs, gT, d].
    const [qs, ks, vs, probs] = tf.tidy(() => {
      const qh = tf.reshape(headMajor(tf.mul(qIn, scale), B, H, T, d), [pairs, gT, d]) as tf.Tensor3D;
      const kh = headMajor(kIn, B, Hkv, T, d);
      const scores = tf.reshape(tf.matMul(qh, kh, false, true), [B, H, T, T]);
      const p = tf.reshape(tf.softmax(tf.add(scores, bias)), [pairs, gT, T]) as tf.Tensor3D;
      return [qh, kh, headMajor(vIn, B, Hkv, T, d), p];
    });
    save([qs, ks, vs, probs]);
    const value = tf.tidy(() => tokenMajor(tf.reshape(tf.matMul(probs, vs), [B * H * T, d]) as tf.Tensor2D, B, H, T, d));
    [qs, ks, vs, probs].forEach((t) => t.dispose());
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, sk, sv, sp] = saved as tf.Tensor3D[];
          const dO = tf.reshape(headMajor(dy, B, H, T, d), [pairs, gT, d]) as tf.Tensor3D;
          const dP = tf.matMul(dO, sv, false, true); // [pairs, gT, T]
          // Softmax backward, P * (dP - rowsum(dP * P)), in one native pass; the bias is a constant.
          const dS = nativeSoftmaxGrad(sp, dP) as tf.Tensor3D;
          const dq = tf.reshape(tf.matMul(dS, sk), [B * H * T, d]) as tf.Tensor2D; // [pairs, gT, d]
          const dk = tf.reshape(tf.matMul(dS, sq, true, false), [B * Hkv * T, d]) as tf.Tensor2D; // [pairs, T, d]
          const dv = tf.reshape(tf.matMul(sp, dO, true, false), [B * Hkv * T, d]) as tf.Tensor2D;
          return [tokenMajor(dq, B, H, T, d, scale), tokenMajor(dk, B, Hkv, T, d), tokenMajor(dv, B, Hkv, T, d)];
        }),
    };
  });
  return f(q, k, v) as tf.Tensor2D;
}
