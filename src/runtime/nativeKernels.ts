/**
 * OpenBLAS matrix products in place of the wasm backend's BatchMatMul and _FusedMatMul
 * kernels (XNNPACK), computed directly on the wasm heap by the native addon.
 *
 * The heap is one ArrayBuffer that is replaced by a larger one when it grows, which can
 * happen in any allocation. So the output is allocated first, then the heap buffer and
 * every operand's byte offset (from the backend's dataIdMap) are read, and the addon is
 * called at once; nothing is kept across calls. The addon checks every matrix against the
 * buffer's bounds.
 *
 * Transposed operands cost nothing here (BLAS reads them in place), unlike on XNNPACK.
 * Backend internals used (tfjs-backend-wasm 4.22.0, pinned): `wasm.HEAPU8`, `dataIdMap`
 * entries' `memoryOffset`, `makeOutput`.
 */
import * as tf from '@tensorflow/tfjs';
import { NativeAddon, nativeAddon } from './nativeAddon';
import { registerExternalKernels, unregisterExternalKernels } from './externalWeights';
import { registerNativeElementwise, unregisterNativeElementwise } from './nativeElementwise';

interface HeapEntry {
  memoryOffset: number;
  shape: number[];
}

interface WasmBackendInternals {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): HeapEntry | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: WasmBackendInternals;
  attrs: Record<string, unknown>;
}

const KERNELS = ['BatchMatMul', '_FusedMatMul', 'Identity'] as const;
type KernelName = (typeof KERNELS)[number];

/** The wasm backend's own configs, restored by removeNativeMatMul. */
const originals = new Map<KernelName, tf.KernelConfig>();

/** Byte offset of a tensor's values in the wasm heap. */
function offsetOf(backend: WasmBackendInternals, t: tf.TensorInfo): number {
  const entry = backend.dataIdMap.get(t.dataId);
  if (!entry || typeof entry.memoryOffset !== 'number') throw new Error('native matmul: a tensor has no wasm heap storage');
  return entry.memoryOffset;
}

/**
 * Which matrix of a and of b each output matrix multiplies: numpy broadcasting of the
 * batch dimensions (everything but the last two), as BatchMatMul defines it.
 */
export function broadcastBatchIndices(outerA: number[], outerB: number[]): { outer: number[]; a: Int32Array; b: Int32Array } {
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const count = outer.reduce((p, d) => p * d, 1);
  const a = new Int32Array(count);
  const b = new Int32Array(count);
  const rank = outer.length;
  // Strides of a and b over the output's batch dimensions (0 where a dimension broadcasts).
  const stridesFor = (dims: number[]) => {
    const s = new Array<number>(rank).fill(0);
    let stride = 1;
    for (let i = dims.length - 1; i >= 0; i--) {
      const o = rank - dims.length + i;
      s[o] = dims[i] === 1 ? 0 : stride;
      stride *= dims[i];
    }
    return s;
  };
  const sa = stridesFor(outerA);
  const sb = stridesFor(outerB);
  for (let i = 0; i < count; i++) {
    let rest = i;
    let ia = 0;
    let ib = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rest % outer[d];
      rest = (rest - idx) / outer[d];
      ia += idx * sa[d];
      ib += idx * sb[d];
    }
    a[i] = ia;
    b[i] = ib;
  }
  return { outer, a, b };
}

/**
 * out = op(a) @ op(b) (+ bias along the last axis) on the wasm heap, or null when the
 * arguments are outside what the native path does (non-float32, empty), for the caller to
 * hand to the original kernel.
 */
function nativeProduct(addon: NativeAddon, args: KernelArgs, bias?: tf.TensorInfo): tf.TensorInfo | null {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const transposeA = args.attrs.transposeA === true;
  const transposeB = args.attrs.transposeB === true;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new Error(`Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
  }
  if (m === 0 || n === 0 || k === 0) return null;
  if (bias && !(bias.shape.length === 1 && (bias.shape[0] === n || bias.shape[0] === 1))) return null;
  const { outer, a: ia, b: ib } = broadcastBatchIndices(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const backend = args.backend;
  const out = backend.makeOutput([...outer, m, n], 'float32');
  // Only now, after the allocation that may have grown the heap: the buffer and offsets.
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const aBase = offsetOf(backend, a);
  const bBase = offsetOf(backend, b);
  const cBase = offsetOf(backend, out);
  const count = ia.length;
  const aOff = new Float64Array(count);
  const bOff = new Float64Array(count);
  const cOff = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    aOff[i] = aBase + 4 * ia[i] * m * k;
    bOff[i] = bBase + 4 * ib[i] * k * n;
    cOff[i] = cBase + 4 * i * m * n;
  }
  let beta = 0;
  if (bias) {
    // Every output row starts as the bias; the product is then added (beta = 1).
    const c = new Float32Array(heap, cBase, count * m * n);
    const bv = new Float32Array(heap, offsetOf(backend, bias), bias.shape[0]);
    if (bv.length === 1) c.fill(bv[0]);
    else for (let r = 0; r < count * m; r++) c.set(bv, r * n);
    beta = 1;
  }
  addon.sgemmBatch(heap, transposeA, transposeB, m, n, k, 1, beta, aOff, bOff, cOff);
  return out;
}

function batchMatMulKernel(addon: NativeAddon) {
  const original = originals.get('BatchMatMul')!;
  return (args: KernelArgs) => nativeProduct(addon, args) ?? original.kernelFunc(args as never);
}

/**
 * Identity (tf.clone, and every tensor a custom gradient saves) shares the input's storage,
 * as the cpu backend does, instead of copying it. Safe on this path: tensors are immutable,
 * and the one reason the wasm path copies, a fresh id so that XNNPACK's cache of packed
 * right operands is freed with the clone (runtime/ops.ts productUncached), does not arise
 * without XNNPACK.
 */
function identityKernel() {
  const original = originals.get('Identity')!;
  return (args: KernelArgs & { backend: { incRef(dataId: object): void } }) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return original.kernelFunc(args as never);
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/** _FusedMatMul: natively when there is no activation (a bias is fine); else the original kernel. */
function fusedMatMulKernel(addon: NativeAddon) {
  const original = originals.get('_FusedMatMul')!;
  return (args: KernelArgs) => {
    const activation = (args.attrs.activation as string | undefined) ?? 'linear';
    const native = activation === 'linear' && !args.inputs.preluActivationWeights ? nativeProduct(addon, args, args.inputs.bias) : null;
    return native ?? original.kernelFunc(args as never);
  };
}

/** Whether the wasm backend's matrix products currently run on OpenBLAS. */
export function nativeMatMulActive(): boolean {
  return originals.size > 0;
}

/**
 * Registers the native kernels on the wasm backend (which must be initialised, so that the
 * original kernels it falls back to are set up), with the fused elementwise kernels of
 * nativeElementwise.ts that the layer ops use on this path. One OpenBLAS thread per call: each worker
 * thread is its own tfjs instance and calls from several threads at once are safe with one
 * BLAS thread each (test/runtime/nativeKernels.test.ts checks it). Returns false when the
 * addon is unavailable.
 */
export function installNativeMatMul(): boolean {
  if (nativeMatMulActive()) return true;
  const addon = nativeAddon();
  if (!addon) return false;
  addon.setThreads(1);
  for (const name of KERNELS) originals.set(name, tf.getKernel(name, 'wasm'));
  const kernels: Record<KernelName, (args: never) => tf.TensorInfo | tf.TensorInfo[]> = {
    BatchMatMul: batchMatMulKernel(addon),
    _FusedMatMul: fusedMatMulKernel(addon),
    Identity: identityKernel(),
  };
  for (const name of KERNELS) {
    const original = originals.get(name)!;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      // The original kernel's set-up too: ours hands it the cases it does not cover.
      setupFunc: original.setupFunc,
      disposeFunc: original.disposeFunc,
      kernelFunc: kernels[name] as unknown as tf.KernelFunc,
    });
  }
  registerNativeElementwise(addon);
  registerExternalKernels(addon);
  return true;
}

/** Puts the wasm backend's own kernels back (and removes the fused elementwise ones). */
export function removeNativeMatMul(): void {
  if (originals.size > 0) {
    unregisterNativeElementwise();
    unregisterExternalKernels();
  }
  for (const [name, config] of originals) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
  originals.clear();
}
