/**
 * A small worker_threads pool. The wasm backend has no threads in Node, so using more
 * than one core means one tfjs instance per worker thread: each worker is set up once
 * (e.g. loads a model) and then runs tasks one at a time; results come back as
 * transferable ArrayBuffers (moved, not copied).
 *
 * Entry scripts run from TypeScript sources under tsx (the worker is started with
 * `--require tsx/cjs`) or from the compiled `dist/` JavaScript, whichever this module is.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread, parentPort, Transferable, Worker } from 'node:worker_threads';
import { TdaError } from '../errors';

/** Cores this process may use. */
export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** A worker entry script next to this module (`name` without extension), with the Node flags it needs. */
export function workerEntry(name: string): { file: string; execArgv: string[] } {
  const fromSources = __filename.endsWith('.ts');
  const file = path.join(__dirname, `${name}${fromSources ? '.ts' : '.js'}`);
  return { file, execArgv: fromSources ? ['--require', require.resolve('tsx/cjs')] : [] };
}

interface WireError {
  message: string;
  name: string;
  file?: string;
  field?: string;
}

type ToWorker = { type: 'init'; data: unknown } | { type: 'task'; id: number; data: unknown };
type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; id: number; data: unknown }
  | { type: 'error'; id: number | null; error: WireError };

function toWire(e: unknown): WireError {
  if (e instanceof TdaError) return { message: e.message, name: e.name, file: e.file, field: e.field };
  if (e instanceof Error) return { message: e.message, name: e.name };
  return { message: String(e), name: 'Error' };
}

function fromWire(w: WireError): Error {
  if (w.name === 'TdaError') {
    // The message already names file and field; rebuild without prefixing them again.
    const e = new TdaError(w.message);
    Object.assign(e, { file: w.file, field: w.field });
    return e;
  }
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

/**
 * `count` workers running `entry`, each initialised with `init` (structured-cloned; share
 * big read-only data through SharedArrayBuffers). Tasks go to the first idle worker.
 */
export class WorkerPool<TTask, TResult> {
  private readonly pending = new Map<number, Pending>();
  private readonly queue: { id: number; data: TTask; transfer: Transferable[] }[] = [];
  private readonly assigned = new Map<number, Slot>();
  private nextId = 0;
  private failure: Error | null = null;
  private closed = false;

  private constructor(private readonly slots: Slot[]) {}

  static async start<TTask, TResult>(entry: string, count: number, init: unknown): Promise<WorkerPool<TTask, TResult>> {
    const { file, execArgv } = workerEntry(entry);
    const slots: Slot[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const worker = new Worker(file, { execArgv });
      slots.push({ worker, busy: false });
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: FromWorker) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'error') reject(fromWire(m.error));
            worker.off('message', onMessage);
          };
          worker.on('message', onMessage);
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`worker exited with code ${code} while starting`)));
        }),
      );
      worker.postMessage({ type: 'init', data: init } satisfies ToWorker);
    }
    const pool = new WorkerPool<TTask, TResult>(slots);
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    for (const slot of slots) pool.listen(slot);
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Runs one task on the next idle worker. `transfer` lists buffers to move rather than copy. */
  run(data: TTask, transfer: Transferable[] = []): Promise<TResult> {
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const promise = new Promise<TResult>((resolve, reject) => this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    this.queue.push({ id, data, transfer });
    this.dispatch();
    return promise;
  }

  /** Stops every worker; tasks still queued or running are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('the worker pool was closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private listen(slot: Slot): void {
    slot.worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') return;
      const id = m.id;
      if (id === null) return;
      slot.busy = false;
      this.assigned.delete(id);
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (p) {
        if (m.type === 'result') p.resolve(m.data);
        else p.reject(fromWire(m.error));
      }
      this.dispatch();
    });
    const die = (e: Error) => {
      if (this.closed) return;
      this.failure = e;
      this.failAll(e);
    };
    slot.worker.on('error', die);
    slot.worker.on('exit', (code) => die(new Error(`a gradient worker exited unexpectedly (code ${code})`)));
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy) continue;
      const task = this.queue.shift();
      if (!task) return;
      slot.busy = true;
      this.assigned.set(task.id, slot);
      slot.worker.postMessage({ type: 'task', id: task.id, data: task.data } satisfies ToWorker, task.transfer);
    }
  }

  private failAll(e: Error): void {
    this.queue.length = 0;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/**
 * The worker side: `setup` runs once with the pool's init data; `handle` runs each task and
 * returns its result and the buffers to transfer. Errors go back to the task's caller.
 */
export function serveWorker<TState, TTask>(
  setup: (init: unknown) => Promise<TState> | TState,
  handle: (state: TState, task: TTask) => { result: unknown; transfer?: Transferable[] },
): void {
  if (isMainThread || !parentPort) throw new Error('serveWorker must run in a worker thread');
  const port = parentPort;
  let state: TState | undefined;
  port.on('message', async (m: ToWorker) => {
    if (m.type === 'init') {
      try {
        state = await setup(m.data);
        port.postMessage({ type: 'ready' } satisfies FromWorker);
      } catch (e) {
        port.postMessage({ type: 'error', id: null, error: toWire(e) } satisfies FromWorker);
      }
      return;
    }
    try {
      const { result, transfer } = handle(state as TState, m.data as TTask);
      port.postMessage({ type: 'result', id: m.id, data: result } satisfies FromWorker, transfer ?? []);
    } catch (e) {
      port.postMessage({ type: 'error', id: m.id, error: toWire(e) } satisfies FromWorker);
    }
  });
}
