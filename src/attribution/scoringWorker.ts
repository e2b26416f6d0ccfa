/** Result of a `dot` task (`scores`) or a `dataInf` task (`updates`, one [nTest, dim_l] per block). */
export interface ChunkResult {
  scores?: Float32Array;
  updates?: Float32Array[];
  spent: ArrayBuffer[];
}

/**
 * Worker entry for gradient scoring (see attribution/gradientAttributor.ts): holds the
 * test-side matrices of a StreamedProducts and runs chunks of training gradients against
 * them. Tasks: `load` (new test-side blocks), `dot` (scores of a chunk), `dataInf` (a chunk's
 * DataInf update, which the caller sums in chunk order: the same bits with any number of
 * workers).
 */
import { FixedBlock, StreamedProducts } from './linalg';
import { BackendName, initBackend } from '../runtime/backend';
import { serveWorker } from '../runtime/workers';

export type ScoringTask =
  | { op: 'load'; blocks: FixedBlock[]; slab: number }
  | { op: 'dot'; m: number; chunk: Float32Array[] }
  | { op: 'dataInf'; m: number; chunk: Float32Array[]; lambdas: number[] };

interface State {
  products: StreamedProducts | null;
}

serveWorker<State, ScoringTask>(
  async (init) => {
    await initBackend((init as { backend: BackendName }).backend);
    return { products: null };
  },
  (state, task) => {
    if (task.op === 'load') {
      state.products?.dispose();
      state.products = new StreamedProducts(task.blocks, task.slab);
      return { result: null };
    }
    const products = state.products;
    if (!products) throw new Error('scoring worker: no test-side blocks loaded');
    // The chunk's buffers go back with the result, for the caller to reuse: fresh buffers
    // of hundreds of MB cost more in page faults than the copy itself.
    const spent = task.chunk.map((c) => c.buffer as ArrayBuffer);
    if (task.op === 'dot') {
      const scores = products.dot(task.chunk, task.m);
      return { result: { scores, spent }, transfer: [scores.buffer as ArrayBuffer, ...spent] };
    }
    products.accumulateDataInf(task.chunk, task.m, task.lambdas);
    const updates = products.takeUpdates();
    return { result: { updates, spent }, transfer: [...updates.map((u) => u.buffer as ArrayBuffer), ...spent] };
  },
);
