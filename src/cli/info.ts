/**
 * `tda-lab info`: the compute path in use, i.e. which tfjs backend, whether matrix
 * products run on native OpenBLAS or on the wasm backend's XNNPACK (and why), how many
 * worker threads the parallel stages use, and the wasm heap's limits.
 */
import * as tf from '@tensorflow/tfjs';
import { BOTH_LAYOUTS_MAX_BYTES } from '../model/baseWeights';
import { WASM_HEAP_BYTES } from '../model/memoryBudget';
import { nativeActive } from '../runtime/backend';
import { NATIVE_INSTALL_HINT, nativeAddon, nativeAddonError } from '../runtime/nativeAddon';
import { availableCores } from '../runtime/workers';

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

/** One line per fact, `name: value`. Call after initBackend. */
export async function computePathLines(): Promise<string[]> {
  const backend = tf.getBackend();
  const lines = [`backend: ${backend} (tfjs ${tf.version.tfjs})`];
  if (backend === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const addon = nativeAddon();
    if (nativeActive() && addon) {
      const blas = addon.info();
      lines.push(`matrix products: native BLAS, ${blas.config.trim()}`);
      lines.push(`native BLAS: core ${blas.corename}, ${blas.threads} thread per call (one per worker thread), ${blas.library}`);
    } else {
      const why = addon ? 'switched off (--native off or TDA_LAB_NATIVE=0)' : `not available: ${nativeAddonError()}; to enable: ${NATIVE_INSTALL_HINT}`;
      lines.push(`matrix products: XNNPACK (wasm${simd ? ' SIMD' : ''}); native BLAS ${why}`);
    }
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength;
    const layouts = nativeActive()
      ? 'frozen weights memory-mapped from the checkpoint files in their stored dtype (F32/BF16/F16), outside the heap and shared by worker threads (--weights heap: float32 in the heap)'
      : `frozen weights in the heap as float32, in two layouts up to ${mb(BOTH_LAYOUTS_MAX_BYTES)} of weights, one above (at most ~0.9B parameters)`;
    lines.push(`wasm heap: ${heap === undefined ? 'unknown' : mb(heap)} now, at most ${mb(WASM_HEAP_BYTES)} per thread; ${layouts}`);
  } else {
    lines.push('matrix products: the backend\'s own (native BLAS kernels apply to the wasm backend only)');
  }
  const cores = availableCores();
  const scoring = nativeActive() ? 'scoring in this thread' : 'the same for large scoring jobs';
  lines.push(`worker threads: ${Math.max(0, cores - 1)} by default for per-example gradients of larger datasets (one per core besides this thread, which computes batches too; each its own tfjs instance and heap); ${scoring}`);
  lines.push(`node: ${process.version}, ${cores} cores available`);
  return lines;
}
