import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

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

/**
 * Starts a tfjs backend. `auto` picks tfjs-node if installed, else wasm, else cpu.
 * An explicitly requested backend that fails to start is an error, because tfjs
 * otherwise falls back silently to a backend 30x slower.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendName> {
  tf.enableProdMode();
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
