// Worker thread for nativeKernels.test.ts: starts the wasm backend as the library's workers
// do (no explicit native choice) and reports which matmul path it got.
import { parentPort } from 'node:worker_threads';
import { initBackend, nativeActive } from '../../src/runtime/backend';

initBackend('wasm').then(
  () => parentPort!.postMessage({ native: nativeActive() }),
  (e: Error) => parentPort!.postMessage({ error: e.message }),
);
