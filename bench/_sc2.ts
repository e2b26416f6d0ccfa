import { SyncWorkerPool } from '../src/runtime/workers';
import { initBackend } from '../src/runtime/backend';
import { StreamedProducts } from '../src/attribution/linalg';
async function main() {
  await initBackend('wasm');
  const dim = 100000, m = 500, nT = 100;
  const V = new Float32Array(new SharedArrayBuffer(nT * dim * 4)); for (let i = 0; i < V.length; i++) V[i] = Math.random() - 0.5;
  const chunks = Array.from({ length: 4 }, () => Float32Array.from({ length: m * dim }, () => Math.random() - 0.5));
  let t0 = performance.now();
  const pool = SyncWorkerPool.start<any, any>('scoringWorker', 2, { backend: 'wasm' });
  console.log('start', (performance.now() - t0).toFixed(0));
  for (const slab of [1024, 2048, 4096]) {
  t0 = performance.now();
  pool.broadcast({ op: 'load', blocks: [{ data: V, rows: nT, dim }], slab });
  console.log('slab', slab, 'load', (performance.now() - t0).toFixed(0));
  for (let rep = 0; rep < 2; rep++) {
    t0 = performance.now();
    let tCopy = 0;
    const tasks = function* () { for (const c of chunks) { const c0 = performance.now(); const d = new Float32Array(c.length); d.set(c); tCopy += performance.now() - c0; yield { data: { op: 'dot', m, chunk: [d] }, transfer: [d.buffer] }; } };
    pool.runAll(tasks(), () => undefined);
    console.log(`4 chunks on 2 workers ${(performance.now() - t0).toFixed(0)} ms (copies ${tCopy.toFixed(0)})`);
  }
  }
  pool.close();
  for (const slab of [1024, 2048, 4096]) {
  const p = new StreamedProducts([{ data: V, rows: nT, dim }], slab);
  for (let rep = 0; rep < 2; rep++) {
    t0 = performance.now();
    for (const c of chunks) p.dot([c], m);
    console.log(`slab ${slab} 4 chunks in-process ${(performance.now() - t0).toFixed(0)} ms`);
  }
  p.dispose();
  }
}
main();
