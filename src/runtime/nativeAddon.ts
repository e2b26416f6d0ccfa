/**
 * Loads the native BLAS addon (native/tda_native.c), built by `npm install` where a C
 * compiler and OpenBLAS exist. Absent or broken, it is reported once, with what to install,
 * and tda-lab runs on the wasm backend's own kernels (XNNPACK).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BlasInfo {
  /** openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... MAX_THREADS=64". */
  config: string;
  /** openblas_get_corename(): the kernel set chosen for this CPU. */
  corename: string;
  /** OpenBLAS threads per call (process-wide). */
  threads: number;
  /** The shared library cblas_sgemm resolved to. */
  library: string;
}

/** The addon's exports (native/tda_native.c and native/scoring.c document them). */
export interface NativeAddon {
  /** C_i = alpha op(A_i) op(B_i) + beta C_i at byte offsets of `memory`, packed row-major matrices; bounds-checked. */
  sgemmBatch(
    memory: ArrayBuffer,
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    beta: number,
    aOffsets: Float64Array,
    bOffsets: Float64Array,
    cOffsets: Float64Array,
  ): void;
  /** C = alpha op(A) op(B) + beta C on Float32Arrays (packed row-major; lengths checked). */
  sgemmArrays(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array): void;
  /**
   * C = alpha op(A) op(B) + beta C on sub-matrices of Float32Arrays: row-major with leading
   * dimensions (elements per row) lda, ldb, ldc, starting at element offsets; bounds-checked.
   * `threads` > 1 splits a large product by columns of C over that many threads (the split
   * depends only on n and threads: the same call gives the same bits).
   */
  sgemmStrided(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    A: Float32Array,
    aOffset: number,
    lda: number,
    B: Float32Array,
    bOffset: number,
    ldb: number,
    beta: number,
    C: Float32Array,
    cOffset: number,
    ldc: number,
    threads?: number,
  ): void;
  /** out[i] = src[i] widened to float32: src BF16 (dtype 1) or F16 (dtype 2) bit patterns, or float32 (dtype 0). */
  widenHalf(src: Uint16Array | Float32Array, dtype: 0 | 1 | 2, out: Float32Array): void;
  /** The second half of out's bytes holds out.length BF16 (1) or F16 (2) values; they become out's float32 values in place. */
  widenHalfInPlace(out: Float32Array, dtype: 1 | 2): void;
  /**
   * Starts reading, for each i, targets[i].byteLength bytes of the open file `fd` from byte
   * positions[i] into targets[i], in order on a thread of its own, and returns a read id at
   * once. Until readFinish(id), the arrays must not be read and their buffers must not be
   * transferred.
   */
  readStart(fd: number, positions: Float64Array, targets: ArrayBufferView[]): number;
  /** Waits for a read begun by readStart; the bytes read over all targets (fewer at the end of the file). Throws if the read failed. */
  readFinish(id: number): number;
  /** out[i] = squared L2 norm of row i of A [rows, cols], accumulated in double. */
  rowSquaredNorms(A: Float32Array, rows: number, cols: number, out: Float64Array): void;
  /** One fused elementwise kernel (native/native_elementwise.c lists the op codes), bounds-checked. */
  elementwise(op: number, memory: ArrayBuffer, offsets: Float64Array, dims: Float64Array, scalar: number): void;
  /** Factors the n x n symmetric matrix `a` in place (LAPACK dpotrf); 0, or k > 0 when its leading minor of order k is not positive definite. */
  choleskyFactor(a: Float64Array, n: number): number;
  /** Solves A x = b in place for nrhs right-hand sides stored one after the other in b ([nrhs, n]), with a factor from choleskyFactor (LAPACK dpotrs). */
  choleskySolve(l: Float64Array, n: number, b: Float64Array, nrhs: number): void;
  setThreads(n: number): void;
  info(): BlasInfo;
  /** Maps a file read-only (one mapping per file per process, reference-counted); returns its id. */
  mapFile(file: string): number;
  unmapFile(id: number): void;
  /** out = x @ W^T (or x @ W with `transpose`), W [outF, inF] of `dtype` (0 F32, 1 BF16, 2 F16) at `wOffset` of mapping `id`. */
  externalLinear(memory: ArrayBuffer, xOffset: number, outOffset: number, rows: number, id: number, wOffset: number, dtype: number, outFeatures: number, inFeatures: number, transpose: boolean): void;
  /** out [count, cols] = rows ids[i] (int32 at idsOffset) of the [tableRows, cols] table at wOffset of mapping `id`. */
  externalRows(memory: ArrayBuffer, idsOffset: number, count: number, outOffset: number, id: number, wOffset: number, dtype: number, tableRows: number, cols: number): void;
}

/** What to do where the addon is missing. */
export const NATIVE_INSTALL_HINT = 'apt-get install gcc libopenblas-dev, then npm install (or node native/build.js)';

/** The built addon: native/build/ at the package root (this file is in src/runtime or dist/runtime). */
export function nativeAddonPath(): string {
  return process.env.TDA_LAB_NATIVE_ADDON ?? path.join(__dirname, '..', '..', 'native', 'build', 'tda_native.node');
}

let loaded: { addon: NativeAddon | null; error: string | null } | null = null;

function load(): { addon: NativeAddon | null; error: string | null } {
  if (loaded) return loaded;
  const file = nativeAddonPath();
  if (!fs.existsSync(file)) {
    loaded = { addon: null, error: `${file} was not built` };
  } else {
    try {
      loaded = { addon: require(file) as NativeAddon, error: null };
    } catch (e) {
      loaded = { addon: null, error: `${file} does not load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}` };
    }
  }
  return loaded;
}

/** The addon, or null where it is not built or does not load. */
export function nativeAddon(): NativeAddon | null {
  return load().addon;
}

/** Why the addon is unavailable, or null when it loaded. */
export function nativeAddonError(): string | null {
  return load().error;
}
