/**
 * EK-FAC factors (George et al. 2018) of every LoRA tensor, computed as kronfluence does.
 *
 * Each LoRA tensor is a linear layer W [rows, cols] (A: [r, in], input x; B: [out, r], input
 * A x) with per-token inputs a_t and pre-activation gradients d_t (model/capture.ts). Per tensor:
 * - activation covariance  C_a = sum_t a_t a_t^T / N   and
 *   gradient covariance    C_d = sum_t d_t d_t^T / N,  N = non-padding tokens of the data
 *   (kronfluence divides both by the token count of the attention mask);
 * - their eigenbases Q_a, Q_d (float64, of the symmetrised matrices);
 * - the corrected eigenvalues Lambda = mean over examples of (Q_d^T G_i Q_a)^2 (elementwise),
 *   with G_i = sum_t d_t a_t^T the example's gradient (what the gradient store holds: the
 *   loss is the mean over the example's counted tokens), in a second pass over the data.
 * Damping is applied at scoring (ekfac.ts): 0.1 x mean(Lambda) per tensor, as kronfluence
 * does when damping_factor is None.
 *
 * Fisher: `empirical` uses the data's labels; `sampled` draws each counted position's label
 * from the model's softmax (seeded), as kronfluence's `sample=True` (the true Fisher). Each
 * pass draws its own labels, as kronfluence's covariance and Lambda passes do.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { LabelMask, makeBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { adapterKey, LoraAdapter } from '../model/adapter';
import { BatchCapture, captureBatch, ModuleCapture } from '../model/capture';
import { LlamaModel } from '../model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../model/loraState';
import { Rng } from '../random';
import { download } from '../runtime/ops';
import { kroneckerRotate } from './linalg';

export type FisherKind = 'empirical' | 'sampled';
export const FISHER_KINDS: readonly FisherKind[] = ['empirical', 'sampled'];

/** The factors of one LoRA tensor W [rows, cols]; matrices row-major, eigenvectors in columns. */
export interface EkfacTensorFactors {
  /** The PEFT adapter key (`...lora_A.weight`), the gradient block's name. */
  name: string;
  rows: number;
  cols: number;
  /** [cols, cols]: sum_t a_t a_t^T / tokens. */
  activationCovariance: Float64Array;
  /** [rows, rows]: sum_t d_t d_t^T / tokens. */
  gradientCovariance: Float64Array;
  activationEigenvectors: Float64Array;
  gradientEigenvectors: Float64Array;
  activationEigenvalues: Float64Array;
  gradientEigenvalues: Float64Array;
  /** [rows, cols]: mean over examples of (Q_d^T G_i Q_a)^2, undamped. */
  lambda: Float64Array;
}

/** How the factors were made (saved as the file's metadata). */
export interface EkfacFactorSettings {
  fisher: FisherKind;
  /** Seed of the sampled labels (sampled Fisher only). */
  seed?: number;
  mask: LabelMask;
  examples: number;
  tokens: number;
  batchSize: number;
  loraScaling: number;
  /** Where the inputs came from, when known (the command records them; compared by `score`). */
  model?: string;
  adapter?: string;
  adapterHash?: string;
  data?: string;
}

export interface EkfacFactors {
  settings: EkfacFactorSettings;
  tensors: EkfacTensorFactors[];
}

export interface EkfacFactorOptions {
  mask?: LabelMask;
  batchSize?: number;
  padId?: number;
  fisher?: FisherKind;
  /** Seed of the sampled labels (default 0). */
  seed?: number;
  /** After each batch: examples done of the total, and which pass (1: covariances, 2: eigenvalues). */
  onProgress?: (done: number, total: number, pass: 1 | 2) => void;
}

/** A LoRA tensor's per-token inputs [tokens, cols] and pre-activation gradients [tokens, rows]. */
export interface TensorRows {
  act: Float32Array;
  grad: Float32Array;
  rows: number;
  cols: number;
}

/** A's rows (input x, gradient dA) and B's rows (input A x, gradient dB) of one module. */
function tensorRows(m: ModuleCapture): [TensorRows, TensorRows] {
  return [
    { act: m.x, grad: m.dA, rows: m.r, cols: m.inFeatures },
    { act: m.low, grad: m.dB, rows: m.outFeatures, cols: m.r },
  ];
}

/** Per-example gradients sum_t d_t a_t^T of one tensor [batch, rows, cols], float64 sums. */
export function tensorExampleGradients(t: TensorRows, example: Int32Array, batchSize: number): Float32Array {
  const { rows, cols } = t;
  const sum = new Float64Array(batchSize * rows * cols);
  for (let k = 0; k < example.length; k++) {
    const base = example[k] * rows * cols;
    for (let i = 0; i < rows; i++) {
      const d = t.grad[k * rows + i];
      if (d === 0) continue;
      const at = base + i * cols;
      for (let j = 0; j < cols; j++) sum[at + j] += d * t.act[k * cols + j];
    }
  }
  return Float32Array.from(sum);
}

/**
 * The per-example gradients a capture implies, by adapter key, [batch, rows, cols] each
 * (the layout of the gradient store's blocks).
 */
export function capturedGradients(capture: BatchCapture, batchSize: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const m of capture.modules) {
    const [a, b] = tensorRows(m);
    out.set(adapterKey(m.path, 'A'), tensorExampleGradients(a, capture.example, batchSize));
    out.set(adapterKey(m.path, 'B'), tensorExampleGradients(b, capture.example, batchSize));
  }
  return out;
}

/** X^T X for X [n, d] (float32 product), added into a float64 [d, d] sum. */
function addGram(into: Float64Array, x: Float32Array, n: number, d: number): void {
  const g = download(() => {
    const t = tf.tensor2d(x, [n, d]);
    return tf.matMul(tf.transpose(t), t);
  });
  for (let i = 0; i < g.length; i++) into[i] += g[i];
}

/** Eigenvalues and eigenvectors (columns) of the symmetric part of a float64 [n, n] matrix. */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const m = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.set(i, j, (a[i * n + j] + a[j * n + i]) / 2);
  const e = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  return { values: Float64Array.from(e.realEigenvalues), vectors: Float64Array.from(e.eigenvectorMatrix.to1DArray()) };
}

function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Batches of the examples, in order, with their start index. */
function* batches(examples: TokenSequence[], batchSize: number): Generator<{ start: number; chunk: TokenSequence[] }> {
  for (let start = 0; start < examples.length; start += batchSize) yield { start, chunk: examples.slice(start, start + batchSize) };
}

function checkFiniteMatrix(a: ArrayLike<number>, name: string, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new TdaError(`${what} has a non-finite value (${a[i]}) at ${i}`, { field: name });
  }
}

/** A LoRA tensor's place in the factors: its adapter key and gradient shape [rows, cols]. */
export interface TensorShape {
  name: string;
  rows: number;
  cols: number;
}

/**
 * The factors built from per-token rows, in kronfluence's two stages: covariances over the
 * tokens, then (after eigendecompose) the corrected eigenvalues over the examples.
 */
export class EkfacAccumulator {
  readonly tensors: EkfacTensorFactors[];
  tokens = 0;
  examples = 0;
  private decomposed = false;

  constructor(shapes: readonly TensorShape[]) {
    this.tensors = shapes.map(({ name, rows, cols }) => ({
      name,
      rows,
      cols,
      activationCovariance: new Float64Array(cols * cols),
      gradientCovariance: new Float64Array(rows * rows),
      activationEigenvectors: new Float64Array(0),
      gradientEigenvectors: new Float64Array(0),
      activationEigenvalues: new Float64Array(0),
      gradientEigenvalues: new Float64Array(0),
      lambda: new Float64Array(rows * cols),
    }));
  }

  /** Stage 1: one batch's token rows, one TensorRows per tensor (same order), `tokens` rows each. */
  addCovariances(rows: readonly TensorRows[], tokens: number): void {
    if (this.decomposed) throw new Error('EkfacAccumulator: covariances after eigendecompose()');
    rows.forEach((t, l) => {
      const f = this.tensors[l];
      addGram(f.activationCovariance, t.act, tokens, f.cols);
      addGram(f.gradientCovariance, t.grad, tokens, f.rows);
    });
    this.tokens += tokens;
  }

  /** Covariances divided by the token count, and their eigenbases. */
  eigendecompose(): void {
    if (this.tokens === 0) throw new TdaError('no tokens were seen', { field: 'examples' });
    // Modules reading the same input (q/k/v, gate/up) have equal activation covariances:
    // one eigendecomposition serves them all (the largest matrices, hidden x hidden).
    const done: { cov: Float64Array; values: Float64Array; vectors: Float64Array }[] = [];
    for (const f of this.tensors) {
      for (const [cov, what] of [
        [f.activationCovariance, 'activation covariance'],
        [f.gradientCovariance, 'gradient covariance'],
      ] as const) {
        for (let i = 0; i < cov.length; i++) cov[i] /= this.tokens;
        checkFiniteMatrix(cov, f.name, what);
      }
      const seen = done.find((d) => sameValues(d.cov, f.activationCovariance));
      const a = seen ?? symmetricEigen(f.activationCovariance, f.cols);
      if (!seen) done.push({ cov: f.activationCovariance, ...a });
      const g = symmetricEigen(f.gradientCovariance, f.rows);
      f.activationEigenvectors = a.vectors;
      f.activationEigenvalues = a.values;
      f.gradientEigenvectors = g.vectors;
      f.gradientEigenvalues = g.values;
    }
    this.decomposed = true;
  }

  /** Stage 2: one batch's token rows with the example (in the batch) of each row. */
  addLambda(rows: readonly TensorRows[], example: Int32Array, batchSize: number): void {
    if (!this.decomposed) throw new Error('EkfacAccumulator: eigendecompose() before the eigenvalue correction');
    rows.forEach((t, l) => {
      const f = this.tensors[l];
      const g = tensorExampleGradients(t, example, batchSize);
      const sq = download(() => {
        const qd = tf.tensor2d(Float32Array.from(f.gradientEigenvectors), [f.rows, f.rows]);
        const qa = tf.tensor2d(Float32Array.from(f.activationEigenvectors), [f.cols, f.cols]);
        return tf.sum(tf.square(kroneckerRotate(tf.tensor3d(g, [batchSize, f.rows, f.cols]), qd, qa)), 0);
      });
      for (let j = 0; j < sq.length; j++) f.lambda[j] += sq[j];
    });
    this.examples += batchSize;
  }

  /** The factors: Lambda as the mean over the examples. */
  finish(settings: EkfacFactorSettings): EkfacFactors {
    if (this.examples === 0) throw new TdaError('no examples were seen for the eigenvalue correction', { field: 'examples' });
    for (const f of this.tensors) {
      for (let j = 0; j < f.lambda.length; j++) f.lambda[j] /= this.examples;
      checkFiniteMatrix(f.lambda, f.name, 'corrected eigenvalues (lambda)');
    }
    return { settings, tensors: this.tensors };
  }
}

/** The gradient shapes of an adapter's tensors, in adapter order (A [r, in], then B [out, r]). */
export function adapterTensorShapes(adapter: LoraAdapter): TensorShape[] {
  const r = adapter.config.r;
  return adapter.modules.flatMap((m) => [
    { name: adapterKey(m.path, 'A'), rows: r, cols: m.inFeatures },
    { name: adapterKey(m.path, 'B'), rows: m.outFeatures, cols: r },
  ]);
}

/** Every tensor's rows of a capture, in adapter order. */
function captureRows(cap: BatchCapture): TensorRows[] {
  return cap.modules.flatMap(tensorRows);
}

/**
 * EK-FAC factors of every tensor of `adapter` over `examples`: two passes of the model
 * (covariances, then corrected eigenvalues in their eigenbases). Yields to the event loop
 * between batches so progress bars redraw.
 */
export async function computeEkfacFactors(model: LlamaModel, adapter: LoraAdapter, examples: TokenSequence[], opts: EkfacFactorOptions = {}): Promise<EkfacFactors> {
  if (examples.length === 0) throw new TdaError('the dataset has no examples', { field: 'examples' });
  const mask = opts.mask ?? 'response';
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TdaError(`must be a whole number >= 1, got ${batchSize}`, { field: 'batchSize' });
  const padId = opts.padId ?? 0;
  const fisher = opts.fisher ?? 'empirical';
  if (!FISHER_KINDS.includes(fisher)) throw new TdaError(`must be one of ${FISHER_KINDS.join(', ')}, got ${JSON.stringify(fisher)}`, { field: 'fisher' });
  const seed = opts.seed ?? 0;
  // One stream over both passes: each pass draws its own labels, deterministically per seed.
  const rng = fisher === 'sampled' ? new Rng(seed) : undefined;
  const acc = new EkfacAccumulator(adapterTensorShapes(adapter));
  const n = examples.length;
  const shared = loraStateFromAdapter(adapter);
  try {
    for (const pass of [1, 2] as const) {
      for (const { start, chunk } of batches(examples, batchSize)) {
        const cap = captureBatch(model, shared, makeBatch(chunk, mask, padId), { sample: rng });
        if (pass === 1) acc.addCovariances(captureRows(cap), cap.tokens);
        else acc.addLambda(captureRows(cap), cap.example, chunk.length);
        opts.onProgress?.(Math.min(n, start + batchSize), n, pass);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (pass === 1) acc.eigendecompose();
    }
  } finally {
    disposeLoraState(shared);
  }
  return acc.finish({ fisher, ...(fisher === 'sampled' ? { seed } : {}), mask, examples: n, tokens: acc.tokens, batchSize, loraScaling: adapter.config.scaling });
}
