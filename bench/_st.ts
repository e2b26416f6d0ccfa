import { SyncWorkerPool } from '../src/runtime/workers';
import { initBackend } from '../src/runtime/backend';
async function main() {
  await initBackend('wasm');
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const p = SyncWorkerPool.start('scoringWorker', 2, { backend: 'wasm' });
    console.log('start', (performance.now() - t0).toFixed(0), 'ms');
    p.close();
  }
}
main();
