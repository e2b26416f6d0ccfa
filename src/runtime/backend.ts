import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { installFrugalBackprop } from './frugalBackprop';
import { NATIVE_INSTALL_HINT, nativeAddonError } from './nativeAddon';
import { installNativeMatMul, nativeMatMulActive, removeNativeMatMul } from './nativeKernels';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';
/** Native OpenBLAS matrix products on the wasm backend: 'auto' = when the addon is built. */
export type NativeChoice = 'auto' | 'on' | 'off';

/** Environment switch for the native path, read by initBackend (also in worker threads). */
export const NATIVE_ENV = 'TDA_LAB_NATIVE';

export interface BackendOptions {
  /** Default: the environment variable TDA_LAB_NATIVE (0/off, 1/on, auto), else 'auto'. */
  native?: NativeChoice;
}

let registered = false;

/** Registers the optional backends that are installed. tfjs-node is used only if present. */
function registerBackends(): BackendName[] {
  const available: BackendName[] = [];
  if (!registered) {
    try {
      // Present only if the user installed it; it cannot be installed offline.
      require('@tensorflow/tfjs-node');
    } catch {
      /* not installed: fine */
    }
    require('@tensorflow/tfjs-backend-wasm');
    registered = true;
  }
  const engineRegistry = tf.engine().registryFactory;
  for (const name of ['tensorflow', 'wasm', 'cpu'] as BackendName[]) {
    if (name in engineRegistry) available.push(name);
  }
  return available;
}

/** The native choice from the environment (unset: 'auto'). */
function nativeChoiceFromEnv(): NativeChoice {
  const v = (process.env[NATIVE_ENV] ?? '').trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === '1' || v === 'on') return 'on';
  if (v === '0' || v === 'off') return 'off';
  throw new TdaError(`must be 0, 1, on, off or auto, not '${process.env[NATIVE_ENV]}'`, { file: 'environment', field: NATIVE_ENV });
}

/**
 * Puts the wasm backend's matrix products on OpenBLAS or on XNNPACK, and records the
 * outcome in the environment, which worker threads started afterwards inherit: they take
 * the same path as this thread. Other backends leave the wasm kernels as they are.
 */
function applyNativeChoice(backend: BackendName, choice: NativeChoice): void {
  if (backend !== 'wasm') {
    if (choice === 'on') throw new TdaError(`native kernels run on the wasm backend, not '${backend}'`, { field: 'native' });
    return;
  }
  let active = false;
  if (choice !== 'off') {
    active = installNativeMatMul();
    if (!active && choice === 'on') {
      throw new TdaError(`native BLAS kernels are not available (${nativeAddonError()}): ${NATIVE_INSTALL_HINT}`, { field: 'native' });
    }
  } else if (nativeMatMulActive()) {
    removeNativeMatMul();
  }
  process.env[NATIVE_ENV] = active ? '1' : '0';
}

/**
 * Starts a tfjs backend. `auto` picks tfjs-node if installed, else wasm, else cpu.
 * An explicitly requested backend that fails to start is an error, because tfjs
 * otherwise falls back silently to a backend 30x slower. On wasm, matrix products run on
 * OpenBLAS when the native addon is built (see `opts.native`), else on XNNPACK.
 */
export async function initBackend(choice: BackendChoice = 'auto', opts: BackendOptions = {}): Promise<BackendName> {
  const name = await startBackend(choice);
  // The environment's choice (which this function also sets, for worker threads) concerns
  // the wasm backend only; an explicit 'on' for another backend is an error.
  applyNativeChoice(name, opts.native ?? (name === 'wasm' ? nativeChoiceFromEnv() : 'auto'));
  return name;
}

async function startBackend(choice: BackendChoice): Promise<BackendName> {
  tf.enableProdMode();
  installFrugalBackprop();
  const available = registerBackends();
  const wanted: BackendName[] = choice === 'auto' ? available : [choice];
  for (const name of wanted) {
    if (!available.includes(name)) {
      throw new TdaError(`backend '${name}' is not available (available: ${available.join(', ')})`, { field: 'backend' });
    }
    if (tf.getBackend() === name) return name;
    const ok = await tf.setBackend(name);
    await tf.ready();
    if (ok && tf.getBackend() === name) return name;
    if (choice !== 'auto') {
      throw new TdaError(`backend '${name}' failed to start (tfjs is on '${tf.getBackend()}')`, { field: 'backend' });
    }
  }
  throw new TdaError(`no tfjs backend could be started (tried ${wanted.join(', ')})`, { field: 'backend' });
}

/** Backend name for logs and result manifests. */
export function currentBackend(): string {
  return tf.getBackend();
}

/** Whether matrix products run on native OpenBLAS (wasm backend only). */
export function nativeActive(): boolean {
  return tf.getBackend() === 'wasm' && nativeMatMulActive();
}
