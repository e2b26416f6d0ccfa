/**
 * Fused elementwise kernels on native code (native/native_elementwise.c) for the layer ops
 * of runtime/ops.ts and runtime/attention.ts: SwiGLU, RMSNorm, rotary embedding, the
 * softmax gradient and cross-entropy, each one pass over memory where tfjs runs several
 * kernels (and the wasm sigmoid and exp are slow). Registered as wasm kernels next to the
 * native matrix products (nativeKernels.ts) and used only while those are active. Like the
 * products, outputs are allocated first, then the heap buffer and the offsets are read.
 */
import * as tf from '@tensorflow/tfjs';
import { NativeAddon } from './nativeAddon';

interface HeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** Op codes of native_elementwise.c. */
const OP = { swiGlu: 0, swiGluGrad: 1, rmsNorm: 2, rmsNormGrad: 3, rotary: 4, softmaxGrad: 5, crossEntropy: 6 } as const;

interface Attrs {
  op: number;
  dims: number[];
  scalar: number;
  /** Output shapes and dtypes. */
  outputs: { shape: number[]; dtype: tf.DataType }[];
  [key: string]: unknown;
}

const KERNEL = 'TdaNativeElementwise';

function offsetOf(backend: HeapBackend, t: tf.TensorInfo): number {
  const entry = backend.dataIdMap.get(t.dataId);
  if (!entry || typeof entry.memoryOffset !== 'number') throw new Error('native elementwise: a tensor has no wasm heap storage');
  return entry.memoryOffset;
}

/** Registers the kernel that runs every op (its attributes say which). */
export function registerNativeElementwise(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: 'wasm',
    kernelFunc: (({ inputs, backend, attrs }: { inputs: Record<string, tf.TensorInfo>; backend: HeapBackend; attrs: Attrs }) => {
      const ins = Object.keys(inputs)
        .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
        .map((k) => inputs[k]);
      const outs = attrs.outputs.map((o) => backend.makeOutput(o.shape, o.dtype));
      const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer; // after the allocations, which may grow the heap
      const offsets = Float64Array.from([...ins, ...outs].map((t) => offsetOf(backend, t)));
      addon.elementwise(attrs.op, heap, offsets, Float64Array.from(attrs.dims), attrs.scalar);
      return outs;
    }) as unknown as tf.KernelFunc,
  });
}

export function unregisterNativeElementwise(): void {
  tf.unregisterKernel(KERNEL, 'wasm');
}

/** Runs one op; inputs in the order native_elementwise.c lists them. */
function run(op: number, inputs: tf.Tensor[], outputs: Attrs['outputs'], dims: number[], scalar = 0): tf.Tensor[] {
  for (const t of inputs) if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`native elementwise: ${t.dtype} input`);
  // Named i0, i1, ... so that the kernel sees them in this order.
  const named = Object.fromEntries(inputs.map((t, i) => [`i${i}`, t]));
  const out = tf.engine().runKernel(KERNEL, named, { op, dims, scalar, outputs } as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? (out as tf.Tensor[]) : [out as tf.Tensor];
}

const f32 = (shape: number[]) => ({ shape, dtype: 'float32' as tf.DataType });

function checkSame(what: string, ...ts: tf.Tensor[]): void {
  for (const t of ts) if (t.size !== ts[0].size) throw new Error(`${what}: operands of ${ts[0].size} and ${t.size} values`);
}

/** silu(g) * u. */
export function nativeSwiGlu(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  checkSame('swiGlu', g, u);
  return run(OP.swiGlu, [g, u], [f32(g.shape)], [g.size])[0];
}

/** [d gate, d up] of swiGlu for the upstream gradient dy. */
export function nativeSwiGluGrad(g: tf.Tensor, u: tf.Tensor, dy: tf.Tensor): [tf.Tensor, tf.Tensor] {
  checkSame('swiGlu gradient', g, u, dy);
  const [dg, du] = run(OP.swiGluGrad, [g, u, dy], [f32(g.shape), f32(g.shape)], [g.size]);
  return [dg, du];
}

/** RMSNorm of x [rows, cols] with weight w [cols]: [y, r] with r = 1 / sqrt(mean(x^2) + eps) as [rows, 1]. */
export function nativeRmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): [tf.Tensor2D, tf.Tensor2D] {
  const [rows, cols] = x.shape;
  if (w.size !== cols) throw new Error(`rmsNorm: weight of ${w.size} for ${cols} columns`);
  const [y, r] = run(OP.rmsNorm, [x, w], [f32([rows, cols]), f32([rows, 1])], [rows, cols], eps);
  return [y as tf.Tensor2D, r as tf.Tensor2D];
}

/** dx of RMSNorm (frozen weight) from x, the saved r [rows, 1], w and dy. */
export function nativeRmsNormGrad(x: tf.Tensor, r: tf.Tensor, w: tf.Tensor, dy: tf.Tensor): tf.Tensor2D {
  const [rows, cols] = x.shape;
  if (r.size !== rows || w.size !== cols) throw new Error('rmsNorm gradient: operand sizes');
  checkSame('rmsNorm gradient', x, dy);
  return run(OP.rmsNormGrad, [x, r, w, dy], [f32([rows, cols])], [rows, cols])[0] as tf.Tensor2D;
}

/**
 * Rotary embedding of x [B*T, heads*d] with cos/sin tables of T x d values: direction 1 is
 * x cos + rotate_half(x) sin, -1 its transpose (the gradient).
 */
export function nativeRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, B: number, T: number, heads: number, d: number, direction: 1 | -1): tf.Tensor {
  if (x.size !== B * T * heads * d || cos.size !== T * d || sin.size !== T * d) throw new Error('rotary: operand sizes');
  return run(OP.rotary, [x, cos, sin], [f32(x.shape)], [B, T, heads, d], direction)[0];
}

/** Softmax gradient along the last axis: p (dp - rowsum(dp p)). */
export function nativeSoftmaxGrad(p: tf.Tensor, dp: tf.Tensor): tf.Tensor {
  checkSame('softmax gradient', p, dp);
  const cols = p.shape[p.rank - 1];
  return run(OP.softmaxGrad, [p, dp], [f32(p.shape)], [p.size / cols, cols])[0];
}

/** Cross-entropy rows of logits [n, V] for int32 labels [n]: [loss [n], softmax [n, V]]. */
export function nativeCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): [tf.Tensor1D, tf.Tensor2D] {
  const [n, V] = logits.shape;
  if (labels.size !== n || labels.dtype !== 'int32') throw new Error('cross-entropy: labels');
  const [loss, probs] = run(OP.crossEntropy, [logits, labels], [f32([n]), f32([n, V])], [n, V]);
  return [loss as tf.Tensor1D, probs as tf.Tensor2D];
}
