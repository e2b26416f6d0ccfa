/**
 * Differentiable building blocks tuned for the tfjs wasm backend.
 *
 * On wasm's own kernels (XNNPACK), matMul with transposeA/transposeB runs ~10x slower than
 * transposing first, and tfjs's own matMul gradient uses those flags. These ops supply
 * gradients that transpose explicitly there; on native BLAS (runtime/nativeKernels.ts) a
 * transposed operand is free, so they pass the flags instead (`product`). Frozen operands
 * are captured in closures, because `customGrad` differentiates every input it is given.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeActive } from './backend';
import { ExternalMatrix, externalLinear, externalProduct, externalRows } from './externalWeights';
import { nativeCrossEntropy, nativeRmsNorm, nativeRmsNormGrad, nativeRotary, nativeSwiGlu, nativeSwiGluGrad } from './nativeElementwise';

/**
 * A frozen weight W [out, in] in one or both layouts (at least one is set):
 * - `wT` [in, out] is what the forward pass multiplies by (x @ wT),
 * - `w` [out, in], the Hugging Face layout, is what the backward pass multiplies by (dy @ w).
 *
 * Memory on wasm: a matmul's right operand is packed by XNNPACK, and the packed copy is
 * cached until that tensor is disposed, so a weight used on the right costs twice its size
 * for as long as it lives. With both layouts a model takes ~4x its float32 size (fastest:
 * no transposes, nothing re-packed). With one layout, each direction keeps the weight on
 * the left where it can, a @ b^T = (b @ a^T)^T, transposing the (small) activations, and
 * otherwise multiplies by a transient copy whose packing is freed with it: ~1x plus one
 * matrix in flight, which is what lets a 0.5B-parameter model (2 GB in float32) fit the
 * 4 GB wasm heap. It costs ~10% on small models, so those keep both layouts (see
 * model/baseWeights.ts WeightLayout).
 */
export interface FrozenMatrix {
  wT?: tf.Tensor2D;
  w?: tf.Tensor2D;
  /** W [out, in] left in its checkpoint file, memory-mapped (runtime/externalWeights.ts); then wT and w are unset. */
  ext?: ExternalMatrix;
}

/** An embedding table [vocab, hidden]: a heap tensor, or left in its checkpoint file. */
export type EmbeddingTable = tf.Tensor2D | ExternalMatrix;

/** The embedding lookup: rows `ids` of the table (which gets no gradient). */
export function embedRows(table: EmbeddingTable, ids: tf.Tensor1D): tf.Tensor2D {
  return table instanceof tf.Tensor ? gatherRows(table, ids) : externalRows(table, ids);
}

/** tf.customGrad with the argument types spelled out (its declared type lumps tensors and `save`). */
export type GradBody = (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
export function customGrad(body: GradBody): (...inputs: tf.Tensor[]) => tf.Tensor {
  return tf.customGrad(body as unknown as Parameters<typeof tf.customGrad>[0]) as (...inputs: tf.Tensor[]) => tf.Tensor;
}

/**
 * A frozen matrix from a Hugging Face [out, in] weight: wT, plus `w` itself when
 * `bothLayouts` (else `w` is disposed).
 */
export function frozenFromHf(w: tf.Tensor2D, bothLayouts: boolean): FrozenMatrix {
  const wT = tf.keep(tf.tidy(() => transpose2d(w)));
  if (bothLayouts) return { wT, w: tf.keep(w) };
  w.dispose();
  return { wT };
}

/**
 * A tied LM head: the embedding table [vocab, hidden] is W itself (kept, not disposed),
 * plus its transpose when `bothLayouts`.
 */
export function frozenTied(embed: tf.Tensor2D, bothLayouts: boolean): FrozenMatrix {
  return bothLayouts ? { w: embed, wT: tf.keep(tf.tidy(() => transpose2d(embed))) } : { w: embed };
}

/** a @ b^T computed as (b @ a^T)^T: transposes of the small operand only. */
function productWithTransposed(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => transpose2d(tf.matMul(b, transpose2d(a))));
}

/**
 * a @ b with b on the right through a transient copy: the packed copy XNNPACK caches for a
 * right operand is freed with the copy instead of living as long as b.
 */
function productUncached(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(a, tf.clone(b)));
}

/**
 * op(a) @ op(b) for 2-D tensors: with the transpose flags on native BLAS (free there), with
 * explicit transposes on XNNPACK (whose transposed path is ~10x slower).
 */
export function product(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (nativeActive()) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => tf.matMul(transposeA ? transpose2d(a) : a, transposeB ? transpose2d(b) : b));
}

/** y = x @ W^T for a frozen W; only x receives a gradient. */
export function frozenLinear(x: tf.Tensor2D, m: FrozenMatrix): tf.Tensor2D {
  if (m.ext) return externalLinear(x, m.ext);
  const f = customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return { value: frozenForward(xIn as tf.Tensor2D, m), gradFunc: (dy: tf.Tensor) => frozenBackward(dy as tf.Tensor2D, m) };
  });
  return f(x) as tf.Tensor2D;
}

function frozenLayouts(m: FrozenMatrix): { w?: tf.Tensor2D; wT?: tf.Tensor2D; both: boolean } {
  const { w, wT } = m;
  if (!w && !wT) throw new Error('frozenLinear: the frozen matrix holds no tensor');
  return { w, wT, both: w !== undefined && wT !== undefined };
}

/** x @ W^T, untaped: one layout is all native BLAS needs (the other is the same matrix read transposed). */
function frozenForward(x: tf.Tensor2D, m: FrozenMatrix): tf.Tensor2D {
  if (m.ext) return externalProduct(x, m.ext, false);
  const { w, wT, both } = frozenLayouts(m);
  if (!both && nativeActive()) return wT ? tf.matMul(x, wT) : tf.matMul(x, w!, false, true);
  return both ? tf.matMul(x, wT!) : wT ? productUncached(x, wT) : productWithTransposed(x, w!);
}

/** dy @ W, untaped: the gradient of x @ W^T with respect to x. */
function frozenBackward(dy: tf.Tensor2D, m: FrozenMatrix): tf.Tensor2D {
  if (m.ext) return externalProduct(dy, m.ext, true);
  const { w, wT, both } = frozenLayouts(m);
  if (!both && nativeActive()) return w ? tf.matMul(dy, w) : tf.matMul(dy, wT!, false, true);
  return both ? tf.matMul(dy, w!) : w ? productUncached(dy, w) : productWithTransposed(dy, wT!);
}

/** Rows of a frozen [out, in] matrix (the vocabulary size of an LM head). */
function frozenRows(m: FrozenMatrix): number {
  if (m.ext) return m.ext.rows;
  return m.w ? m.w.shape[0] : m.wT!.shape[1];
}

/**
 * tf.grads(f)(xs, dy) from inside a custom gradient, while the engine is backpropagating an
 * outer tape: tfjs 4.22 (pinned) starts a fresh tape for the inner call and clears the
 * engine's active tape when it finishes, which the outer pass still needs, so the outer
 * one is put back.
 */
export function gradsInsideBackward(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outer;
  }
}

/** 2-D product a @ b with a gradient for both operands, using explicit transposes. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const f = customGrad((aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor2D, bIn as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor2D[];
        return [product(dy as tf.Tensor2D, sb, false, true), product(sa, dy as tf.Tensor2D, true, false)];
      },
    };
  });
  return f(a, b) as tf.Tensor2D;
}

/** Batched product a @ b for rank-3 tensors, gradients for both operands, explicit transposes. */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const f = customGrad((aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor3D[];
        if (nativeActive()) return [tf.matMul(dy as tf.Tensor3D, sb, false, true), tf.matMul(sa, dy as tf.Tensor3D, true, false)];
        return [
          tf.matMul(dy as tf.Tensor3D, tf.transpose(sb, [0, 2, 1])),
          tf.matMul(tf.transpose(sa, [0, 2, 1]), dy as tf.Tensor3D),
        ];
      },
    };
  });
  return f(a, b) as tf.Tensor3D;
}

/**
 * rows = table[ids] along axis 0: the embedding lookup, and the selection of the positions
 * whose loss counts. The gradient scatters dy's rows back (summing repeated ids), because
 * gather's gradient kernel (UnsortedSegmentSum) is missing on wasm. On wasm both directions
 * are row copies in JavaScript: the wasm Gather kernel runs ~10 ns per element, a row copy
 * runs at memcpy speed.
 */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const [n, w] = table.shape;
  const idx = readInt32(ids);
  let unique = true;
  const seen = new Uint8Array(n);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    if (!(r >= 0 && r < n)) throw new Error(`gatherRows: row ${r} is outside [0, ${n})`);
    if (seen[r]) unique = false;
    seen[r] = 1;
  }
  const f = customGrad((tIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return {
      value: selectRows(tIn as tf.Tensor2D, idx),
      gradFunc: (dy: tf.Tensor) => {
        const g = readFloat32(dy);
        const out = new Float32Array(n * w);
        if (unique) {
          for (let i = 0; i < idx.length; i++) out.set(g.subarray(i * w, (i + 1) * w), idx[i] * w);
        } else {
          for (let i = 0; i < idx.length; i++) {
            const o = idx[i] * w;
            for (let j = 0; j < w; j++) out[o + j] += g[i * w + j];
          }
        }
        return tf.tensor2d(out, [n, w]);
      },
    };
  });
  return f(table) as tf.Tensor2D;
}

/** table[idx] as a new tensor, by row copies from the wasm heap (tf.gather elsewhere). */
function selectRows(table: tf.Tensor2D, idx: Int32Array): tf.Tensor2D {
  const w = table.shape[1];
  const view = heapView(table);
  if (!view) return tf.gather(table, tf.tensor1d(idx, 'int32'));
  const out = new Float32Array(idx.length * w);
  for (let i = 0; i < idx.length; i++) out.set(view.subarray(idx[i] * w, (idx[i] + 1) * w), i * w);
  return tf.tensor2d(out, [idx.length, w]);
}

/**
 * One-hot rows as float32. The wasm backend's OneHot kernel (tfjs 4.22) ignores a float
 * dtype and writes integer bits into a float32 buffer, so build int32 and cast.
 */
export function oneHotFloat(ids: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(ids, depth), 'float32') as tf.Tensor2D);
}

/**
 * Runs `f` in a tidy scope and downloads its result as a Float32Array. Never return a
 * typed array from tf.tidy itself: tidy walks the returned value element by element
 * (seconds for millions of values).
 */
export function download(f: () => tf.Tensor): Float32Array {
  const t = tf.tidy(f);
  try {
    return readFloat32(t);
  } finally {
    t.dispose();
  }
}

interface WasmHeapBackend {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array;
  dataIdMap: { has(dataId: object): boolean };
}

/**
 * A view of a tensor's values in the wasm heap, or null off wasm. Valid only until the next
 * tensor allocation (the heap may grow and move): copy out of it at once.
 *
 * Backend internals (tfjs-backend-wasm 4.22.0, pinned in package.json): the backend's own
 * dataSync copies with `HEAPU8.slice`, which V8 runs ~30x slower than `set` here.
 */
function heapView(t: tf.Tensor): Float32Array | Int32Array | null {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') return null;
  if (tf.getBackend() !== 'wasm') return null;
  const be = tf.backend() as unknown as Partial<WasmHeapBackend>;
  if (typeof be.typedArrayFromHeap !== 'function' || !be.dataIdMap?.has(t.dataId)) return null;
  return be.typedArrayFromHeap({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
}

/** A copy of a float32 tensor's values (fast on wasm; dataSync elsewhere). */
export function readFloat32(t: tf.Tensor): Float32Array {
  const view = t.dtype === 'float32' ? heapView(t) : null;
  // A copy off wasm too: the cpu backend's dataSync hands out its own storage.
  if (!view) return Float32Array.from(t.dataSync());
  const out = new Float32Array(view.length);
  out.set(view);
  return out;
}

/** A copy of an int32 tensor's values. */
export function readInt32(t: tf.Tensor): Int32Array {
  const view = t.dtype === 'int32' ? heapView(t) : null;
  if (!view) return Int32Array.from(t.dataSync());
  const out = new Int32Array(view.length);
  out.set(view);
  return out;
}

/**
 * Cross-entropy of each row, -log softmax(logits)[label], [n], for integer labels [n].
 * Uses the wasm Softmax kernel (vectorised) instead of exp/log per element, which run
 * ~30 ns per value on wasm: log-sum-exp = max(x) - log(max softmax(x)), exact because the
 * largest logit has softmax 1 / sum(exp(x - max)). Gradient: (softmax - onehot) * dy, with
 * no one-hot matrix ([n, vocab] is the largest tensor of a batch): the label entries are
 * read and adjusted directly.
 */
export function crossEntropyRows(logits: tf.Tensor2D, labels: Int32Array): tf.Tensor1D {
  const [n, V] = logits.shape;
  checkLabels('crossEntropyRows', labels, n, V);
  const f = customGrad((lIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const [value, p] = lossAndSoftmax(lIn as tf.Tensor2D, labels);
    save([p]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const g = tf.tidy(() => tf.mul(saved[0], tf.reshape(dy, [-1, 1])));
        const view = heapView(g);
        if (!view) return tf.tidy(() => tf.sub(g, tf.mul(oneHotFloat(tf.tensor1d(labels, 'int32'), V), tf.reshape(dy, [-1, 1]))));
        // g is this op's own fresh output (no other reference): adjust its label entries in place.
        const d = readFloat32(dy);
        for (let i = 0; i < n; i++) view[i * V + labels[i]] -= d[i];
        return g;
      },
    };
  });
  return f(logits) as tf.Tensor1D;
}

/** Logit values held at once by headCrossEntropyRows: 4M (16 MB) per block of rows. */
const HEAD_BLOCK_VALUES = 4 * 2 ** 20;

/**
 * Cross-entropy of each row of `hidden` [n, d] under a frozen LM head W [V, d], [n], with
 * its gradient with respect to `hidden`, holding the logits of one block of rows at a time
 * instead of all n x V of them (with their softmax and its gradient: three [n, V] tensors,
 * ~440 MB for 1,536 rows of a 24,000-token vocabulary).
 *
 * Each row's loss is a function of that row alone, so its gradient is the upstream scalar
 * times the row's own d loss / d hidden = (softmax - onehot) @ W. That direction is computed
 * block by block in the forward pass and kept ([n, d], small); the backward pass only
 * scales it. The products are the same as logits followed by crossEntropyRows (one
 * x @ W^T and one g @ W per row); only the order of the scaling differs, so the numbers
 * agree to rounding. For gradients only: a forward pass alone would pay for g @ W needlessly.
 */
export function headCrossEntropyRows(hidden: tf.Tensor2D, head: FrozenMatrix, labels: Int32Array): tf.Tensor1D {
  const [n, d] = hidden.shape;
  const V = frozenRows(head);
  checkLabels('headCrossEntropyRows', labels, n, V);
  const rowsPerBlock = Math.max(1, Math.floor(HEAD_BLOCK_VALUES / V));
  const f = customGrad((hIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const h = hIn as tf.Tensor2D;
    const losses: tf.Tensor[] = [];
    const directions: tf.Tensor[] = [];
    // Each block's tensors outlive its tidy (they belong to this op's scope, which frees
    // whatever is neither returned nor saved).
    for (let r = 0; r < n; r += rowsPerBlock) {
      const m = Math.min(rowsPerBlock, n - r);
      const [loss, direction] = tf.tidy(() => {
        const logits = frozenForward(m === n ? h : tf.slice(h, [r, 0], [m, d]), head);
        const [rowLoss, g] = softmaxMinusOneHot(logits, labels.subarray(r, r + m));
        return [rowLoss, frozenBackward(g, head)];
      });
      losses.push(loss);
      directions.push(direction);
    }
    const value = losses.length === 1 ? losses[0] : tf.concat(losses);
    const direction = directions.length === 1 ? directions[0] : tf.concat(directions);
    save([direction]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0], tf.reshape(dy, [-1, 1])),
    };
  });
  return f(hidden) as tf.Tensor1D;
}

function checkLabels(op: string, labels: Int32Array, n: number, V: number): void {
  if (labels.length !== n) throw new Error(`${op}: ${labels.length} labels for ${n} rows`);
  for (const y of labels) if (!(y >= 0 && y < V)) throw new Error(`${op}: label ${y} is outside [0, ${V})`);
}

/** Each row's cross-entropy and the rows' softmax, untaped (the native kernel computes both in one pass). */
function lossAndSoftmax(logits: tf.Tensor2D, labels: Int32Array): [tf.Tensor1D, tf.Tensor2D] {
  if (nativeActive()) {
    const ids = tf.tensor1d(labels, 'int32');
    const out = nativeCrossEntropy(logits, ids);
    ids.dispose();
    return out;
  }
  const p = tf.softmax(logits);
  return [tf.tidy(() => tf.sub(tf.sub(tf.max(logits, 1), tf.log(tf.max(p, 1))), labelValues(logits, labels))) as tf.Tensor1D, p];
}

/** Each row's cross-entropy and d loss / d logits = softmax - onehot(label), untaped. */
function softmaxMinusOneHot(logits: tf.Tensor2D, labels: Int32Array): [tf.Tensor1D, tf.Tensor2D] {
  const [n, V] = logits.shape;
  const [loss, p] = lossAndSoftmax(logits, labels);
  const view = heapView(p);
  if (!view) return [loss, tf.tidy(() => tf.sub(p, oneHotFloat(tf.tensor1d(labels, 'int32'), V)))];
  // p is this function's own fresh output (no other reference): adjust its label entries in place.
  for (let i = 0; i < n; i++) view[i * V + labels[i]] -= 1;
  return [loss, p];
}

/** x[i, labels[i]] for each row, [n]. */
function labelValues(x: tf.Tensor2D, labels: Int32Array): tf.Tensor1D {
  const [n, V] = x.shape;
  const view = heapView(x);
  if (!view) return tf.sum(tf.mul(x, oneHotFloat(tf.tensor1d(labels, 'int32'), V)), 1) as tf.Tensor1D;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view[i * V + labels[i]];
  return tf.tensor1d(out);
}

/**
 * Per-example low-rank update for a batch of B sequences of T tokens: row b*T + t of the
 * result is x[b*T + t] @ aT[b] @ bT[b] * scaling, for x [B*T, in], aT [B, in, r], bT [B, r, out].
 *
 * Arranged as 2-D products (batched matmuls run a generic loop on wasm): the copies of A
 * side by side, Acat = [in, B*r], give x @ Acat [B*T, B*r], of which example b keeps only
 * its own r columns (a block mask); that times Bcat = [B*r, out] is the update. The
 * gradients are 2-D products too, and the one for Bcat/Acat comes out per example.
 *
 * `shared`: the copies are all equal to these [in, r] / [r, out] factors (per-example
 * gradients at a shared point, the usual case): the forward pass is then the plain r-wide
 * product, and only the per-example gradients use the block arrangement. The values of
 * aT/bT are not read in that case, only differentiated.
 */
export function perExampleLowRank(
  x: tf.Tensor2D,
  aT: tf.Tensor3D,
  bT: tf.Tensor3D,
  seqLen: number,
  scaling = 1,
  shared?: { aT: tf.Tensor2D; bT: tf.Tensor2D },
): tf.Tensor2D {
  const [B, inF, r] = aT.shape;
  const out = bT.shape[2];
  const rows = x.shape[0];
  if (rows !== B * seqLen) throw new Error(`perExampleLowRank: ${rows} rows is not ${B} x ${seqLen}`);
  const blockMask = () => {
    const m = new Float32Array(rows * B * r);
    // The block mask, scaled: example b's rows keep its own r columns, times `scaling`.
    for (let b = 0; b < B; b++) for (let t = 0; t < seqLen; t++) m.fill(scaling, (b * seqLen + t) * B * r + b * r, (b * seqLen + t) * B * r + (b + 1) * r);
    return tf.tensor2d(m, [rows, B * r]);
  };
  // d/dAcat = x^T @ dLow [in, B*r] -> [B, in, r]; d/dBcat = low^T @ dy [B*r, out] -> [B, r, out].
  const perExampleGrads = (sx: tf.Tensor2D, low: tf.Tensor2D, dLow: tf.Tensor2D, g: tf.Tensor2D) => [
    tf.transpose(tf.reshape(product(sx, dLow, true, false), [inF, B, r]), [1, 0, 2]),
    tf.reshape(product(low, g, true, false), [B, r, out]),
  ];
  if (shared) {
    // Copies known to equal `shared`: the forward pass and dx use the r-wide shared
    // factors; only the two per-example gradients need the B*r-wide arrangement.
    const tileCols = () => {
      const e = new Float32Array(r * B * r); // [I I ... I], r x (B*r)
      for (let j = 0; j < r; j++) for (let b = 0; b < B; b++) e[j * B * r + b * r + j] = 1;
      return tf.tensor2d(e, [r, B * r]);
    };
    const f = customGrad((xIn: tf.Tensor, aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
      void aIn;
      void bIn;
      const low = tf.matMul(xIn as tf.Tensor2D, shared.aT); // [B*T, r]
      save([xIn, low]);
      return {
        value: tf.tidy(() => tf.mul(tf.matMul(low, shared.bT), scaling)),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [sx, sLow] = saved as tf.Tensor2D[];
            const g = dy as tf.Tensor2D;
            const h = product(g, shared.bT, false, true); // [B*T, r]
            const e = tileCols();
            const mask = blockMask();
            const [dA, dB] = perExampleGrads(sx, tf.mul(tf.matMul(sLow, e), mask) as tf.Tensor2D, tf.mul(tf.matMul(h, e), mask) as tf.Tensor2D, g);
            return [product(tf.mul(h, scaling) as tf.Tensor2D, shared.aT, false, true), dA, dB];
          }),
      };
    });
    return f(x, aT, bT) as tf.Tensor2D;
  }
  const f = customGrad((xIn: tf.Tensor, aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const acat = tf.reshape(tf.transpose(aIn, [1, 0, 2]), [inF, B * r]) as tf.Tensor2D;
    const low = tf.mul(tf.matMul(xIn as tf.Tensor2D, acat), blockMask()) as tf.Tensor2D;
    // Everything the backward pass reads is saved: tfjs disposes a forward pass's
    // intermediates, inputs included, before running the backward pass.
    save([xIn, low, aIn, bIn]);
    return {
      value: tf.matMul(low, tf.reshape(bIn, [B * r, out]) as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sx, sLow] = saved as tf.Tensor2D[];
          const [sa, sb] = saved.slice(2);
          const g = dy as tf.Tensor2D;
          const bcatT = tf.reshape(tf.transpose(sb, [2, 0, 1]), [out, B * r]) as tf.Tensor2D;
          const dLow = tf.mul(tf.matMul(g, bcatT), blockMask()) as tf.Tensor2D;
          const [dA, dB] = perExampleGrads(sx, sLow, dLow, g);
          const acatT = tf.reshape(tf.transpose(sa, [0, 2, 1]), [B * r, inF]) as tf.Tensor2D;
          return [tf.matMul(dLow, acatT), dA, dB];
        }),
    };
  });
  return f(x, aT, bT) as tf.Tensor2D;
}

/**
 * 2-D transpose. The wasm Transpose kernel is ~3x faster on the same data seen as
 * [1, m, 1, n] -> [n, 1, m, 1] than on the plain 2-D permutation.
 */
export function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  const [m, n] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [1, m, 1, n]), [0, 3, 2, 1]), [n, m]);
}

/** SiLU activation x * sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

// ---------------------------------------------------------------- fused layer ops
//
// tfjs saves a copy of every input an op's gradient reads (on wasm a real copy), so a
// chain of small elementwise ops keeps several copies of each activation alive until the
// backward pass. These ops write the gradient out and save only what it needs.

/** a + b for same-shape tensors, saving nothing (tf.add saves copies of both inputs). */
export function addSame<T extends tf.Tensor>(a: T, b: T): T {
  const f = customGrad((aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return { value: tf.add(aIn, bIn), gradFunc: (dy: tf.Tensor) => [dy, dy] };
  });
  return f(a, b) as T;
}

/**
 * RMSNorm y = x * r * w with r = 1 / sqrt(mean(x^2) + eps) per row, for x [n, h].
 * Gradient: with g = dy * w, dx = r g - x r^3 mean(g x); dw = sum over rows of dy x r.
 * A frozen `w` is read from the closure; pass `trainableWeight` to differentiate it.
 */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number, trainableWeight = false): tf.Tensor2D {
  const forward = (xIn: tf.Tensor, wIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(xIn), -1, true), eps)));
    save([xIn, r, wIn]);
    return {
      value: tf.tidy(() => tf.mul(tf.mul(xIn, r), wIn)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sr, sw] = saved;
        return tf.tidy(() => {
          const g = tf.mul(dy, sw);
          const h = sx.shape[1] as number;
          const dot = tf.div(tf.sum(tf.mul(g, sx), -1, true), h); // mean(g x) per row
          const dx = tf.mul(tf.sub(g, tf.mul(sx, tf.mul(tf.square(sr), dot))), sr);
          return trainableWeight ? [dx, tf.sum(tf.mul(dy, tf.mul(sx, sr)), 0)] : [dx];
        });
      },
    };
  };
  if (nativeActive()) {
    // One fused pass each way (native/native_elementwise.c), same quantities as `forward`;
    // a trainable weight's gradient from tfjs ops.
    const nativeForward = (xIn: tf.Tensor, wIn: tf.Tensor, save: tf.GradSaveFunc) => {
      const [y, r] = nativeRmsNorm(xIn as tf.Tensor2D, wIn as tf.Tensor1D, eps);
      save([xIn, r, wIn]);
      r.dispose();
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sr, sw] = saved;
          const dx = nativeRmsNormGrad(sx, sr, sw, dy);
          return trainableWeight ? [dx, tf.tidy(() => tf.sum(tf.mul(dy, tf.mul(sx, sr)), 0))] : [dx];
        },
      };
    };
    if (trainableWeight) return customGrad((xIn: tf.Tensor, wIn: tf.Tensor, save: tf.GradSaveFunc) => nativeForward(xIn, wIn, save))(x, w) as tf.Tensor2D;
    return customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
      const out = nativeForward(xIn, w, (ts: tf.Tensor[]) => save(ts.slice(0, 2)));
      return { value: out.value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => out.gradFunc(dy, [...saved, w]) };
    })(x) as tf.Tensor2D;
  }
  if (trainableWeight) {
    return customGrad((xIn: tf.Tensor, wIn: tf.Tensor, save: tf.GradSaveFunc) => forward(xIn, wIn, save))(x, w) as tf.Tensor2D;
  }
  return customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const out = forward(xIn, w, (ts: tf.Tensor[]) => save(ts.slice(0, 2)));
    return { value: out.value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => out.gradFunc(dy, [...saved, w]) };
  })(x) as tf.Tensor2D;
}

/**
 * SwiGLU: silu(gate) * up. Gradient: d_up = dy silu(gate),
 * d_gate = dy up s (1 + gate (1 - s)) with s = sigmoid(gate). Saves gate and up only.
 */
export function swiGlu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  const f = customGrad((gIn: tf.Tensor, uIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([gIn, uIn]);
    if (nativeActive()) return { value: nativeSwiGlu(gIn, uIn), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => nativeSwiGluGrad(saved[0], saved[1], dy) };
    return {
      value: tf.tidy(() => tf.mul(tf.mul(gIn, tf.sigmoid(gIn)), uIn)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [g, u] = saved;
        return tf.tidy(() => {
          const s = tf.sigmoid(g);
          const silu = tf.mul(g, s);
          const dGate = tf.mul(tf.mul(dy, u), tf.mul(s, tf.add(tf.sub(g, silu), 1))); // s (1 + g (1 - s)) = s (1 + g - g s)
          return [dGate, tf.mul(dy, silu)];
        });
      },
    };
  });
  return f(gate, up) as tf.Tensor2D;
}

/** A small [d, d] matrix and its transpose. */
export interface RotationMatrix {
  r: tf.Tensor2D;
  rT: tf.Tensor2D;
  /** r is rotate-half, x @ r = cat(-x2, x1): native code then applies it by index. */
  rotateHalf?: boolean;
}

/**
 * Rotary embedding in the rotate-half form, x * cos + rotate(x) * sin, for x [B*T, heads*d]
 * seen as [B, T, heads, d], with cos/sin [1, T, 1, d] (or [B, T, 1, d] when the tables
 * differ by example: dynamic rope scaling past the trained length) and rotate-half as the [d, d] matrix
 * `rotate.r` (x @ r), kept with its transpose (it is tiny). Gradient dy * cos + (dy * sin) @ r^T;
 * saves nothing.
 */
export function rotary(x: tf.Tensor2D, cos: tf.Tensor4D, sin: tf.Tensor4D, rotate: RotationMatrix, batchSize: number, seqLen: number, heads: number): tf.Tensor2D {
  const d = rotate.r.shape[0];
  const shape4 = [batchSize, seqLen, heads, d];
  // The native kernel takes one table shared by the batch; per-example tables go the tfjs way.
  if (rotate.rotateHalf && nativeActive() && cos.shape[0] === 1) {
    // One pass each way, rotate-half by index (native/native_elementwise.c), no [d, d] product.
    return customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
      void save;
      return {
        value: nativeRotary(xIn, cos, sin, batchSize, seqLen, heads, d, 1),
        gradFunc: (dy: tf.Tensor) => nativeRotary(dy, cos, sin, batchSize, seqLen, heads, d, -1),
      };
    })(x) as tf.Tensor2D;
  }
  const f = customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return {
      value: tf.tidy(() => {
        const rot = tf.reshape(tf.matMul(tf.reshape(xIn, [-1, d]) as tf.Tensor2D, rotate.r), shape4);
        return tf.reshape(tf.add(tf.mul(tf.reshape(xIn, shape4), cos), tf.mul(rot, sin)), xIn.shape);
      }),
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => {
          const dy4 = tf.reshape(dy, shape4);
          const back = tf.reshape(tf.matMul(tf.reshape(tf.mul(dy4, sin), [-1, d]) as tf.Tensor2D, rotate.rT), shape4);
          return tf.reshape(tf.add(tf.mul(dy4, cos), back), dy.shape);
        }),
    };
  });
  return f(x) as tf.Tensor2D;
}
