/**
 * Frozen weights that stay in their checkpoint file, memory-mapped, instead of in the wasm
 * heap (native/external_weights.c). The heap holds at most 4 GB; a 7B model's weights are
 * 13.5 GB in BF16. Mapped, they take no heap at all, stay in their stored dtype (BF16 and
 * F16 are widened block by block inside the product), are read lazily by the operating
 * system, and are shared by every worker thread of the process (one mapping per file).
 *
 * Two wasm kernels read them: a linear layer's product in both directions (forward x @ W^T,
 * backward dy @ W; the weight itself gets no gradient) and the embedding's row gather. They
 * exist only on the native path; without the addon, weights are loaded into the heap.
 */
import * as tf from '@tensorflow/tfjs';
import { NativeAddon, nativeAddon } from './nativeAddon';

/** Storage dtypes read in place, with native/half.h's codes. */
export const EXTERNAL_DTYPES = { F32: 0, BF16: 1, F16: 2 } as const;
export type ExternalDtype = keyof typeof EXTERNAL_DTYPES;

/** A [rows, cols] row-major matrix at `byteOffset` of a mapped file. */
export interface ExternalMatrix {
  file: string;
  /** The addon's id of the file's mapping (process-wide: valid in every worker thread). */
  mapId: number;
  byteOffset: number;
  dtype: ExternalDtype;
  rows: number;
  cols: number;
  /** Tensor name in the checkpoint, for messages. */
  name: string;
}

interface HeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

const LINEAR_KERNEL = 'TdaExternalLinear';
const ROWS_KERNEL = 'TdaExternalRows';

function offsetOf(backend: HeapBackend, t: tf.TensorInfo): number {
  const entry = backend.dataIdMap.get(t.dataId);
  if (!entry || typeof entry.memoryOffset !== 'number') throw new Error('external weights: a tensor has no wasm heap storage');
  return entry.memoryOffset;
}

let registeredFor: NativeAddon | null = null;

/** Registers the two kernels on the wasm backend (with the native products, runtime/nativeKernels.ts). */
export function registerExternalKernels(addon: NativeAddon): void {
  if (registeredFor) return;
  tf.registerKernel({
    kernelName: LINEAR_KERNEL,
    backendName: 'wasm',
    kernelFunc: (({ inputs, backend, attrs }: { inputs: { x: tf.TensorInfo }; backend: HeapBackend; attrs: { matrix: ExternalMatrix; transpose: boolean } }) => {
      const { x } = inputs;
      const m = attrs.matrix;
      const [rows, cols] = x.shape;
      const want = attrs.transpose ? m.rows : m.cols;
      if (x.shape.length !== 2 || cols !== want) throw new Error(`external linear '${m.name}': input shape [${x.shape}] does not match the weight [${m.rows}, ${m.cols}]`);
      const out = backend.makeOutput([rows, attrs.transpose ? m.cols : m.rows], 'float32');
      const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer; // after the allocation, which may grow the heap
      addon.externalLinear(heap, offsetOf(backend, x), offsetOf(backend, out), rows, m.mapId, m.byteOffset, EXTERNAL_DTYPES[m.dtype], m.rows, m.cols, attrs.transpose);
      return out;
    }) as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: ROWS_KERNEL,
    backendName: 'wasm',
    kernelFunc: (({ inputs, backend, attrs }: { inputs: { ids: tf.TensorInfo }; backend: HeapBackend; attrs: { matrix: ExternalMatrix } }) => {
      const { ids } = inputs;
      const m = attrs.matrix;
      const count = ids.shape[0];
      const out = backend.makeOutput([count, m.cols], 'float32');
      const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
      addon.externalRows(heap, offsetOf(backend, ids), count, offsetOf(backend, out), m.mapId, m.byteOffset, EXTERNAL_DTYPES[m.dtype], m.rows, m.cols);
      return out;
    }) as unknown as tf.KernelFunc,
  });
  registeredFor = addon;
}

export function unregisterExternalKernels(): void {
  if (!registeredFor) return;
  tf.unregisterKernel(LINEAR_KERNEL, 'wasm');
  tf.unregisterKernel(ROWS_KERNEL, 'wasm');
  registeredFor = null;
}

/** Whether external weights can be used now (wasm backend with the native kernels). */
export function externalWeightsAvailable(): boolean {
  return registeredFor !== null && tf.getBackend() === 'wasm';
}

function addonOrThrow(): NativeAddon {
  const addon = nativeAddon();
  if (!addon) throw new Error('external weights need the native addon');
  return addon;
}

/** Maps a file (one mapping per file per process, reference-counted); release with unmapFile. */
export function mapFile(file: string): number {
  return addonOrThrow().mapFile(file);
}

export function unmapFile(mapId: number): void {
  addonOrThrow().unmapFile(mapId);
}

/** x @ W^T, or x @ W when `transpose`, for an external W [out, in]; untaped. */
export function externalProduct(x: tf.Tensor, m: ExternalMatrix, transpose: boolean): tf.Tensor2D {
  return tf.engine().runKernel(LINEAR_KERNEL, { x }, { matrix: m, transpose } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** y = x @ W^T for an external W [out, in]; x [rows, in] receives the gradient dy @ W. */
export function externalLinear(x: tf.Tensor2D, m: ExternalMatrix): tf.Tensor2D {
  const run = (input: tf.Tensor, transpose: boolean) => externalProduct(input, m, transpose);
  const f = tf.customGrad(((xIn: tf.Tensor) => ({ value: run(xIn, false), gradFunc: (dy: tf.Tensor) => run(dy, true) })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (f as unknown as (x: tf.Tensor) => tf.Tensor2D)(x);
}

/** Rows `ids` of an external table (the embedding lookup; the table gets no gradient). */
export function externalRows(m: ExternalMatrix, ids: tf.Tensor1D): tf.Tensor2D {
  if (ids.dtype !== 'int32') throw new Error('externalRows: ids must be int32');
  return tf.engine().runKernel(ROWS_KERNEL, { ids }, { matrix: m } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
