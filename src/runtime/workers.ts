/**
 * worker_threads pools. The wasm backend has no threads in Node, so using more than one
 * core means one tfjs instance per worker thread: each worker is set up once (loads a
 * model, or a test-gradient matrix) and then runs tasks one at a time; results come back
 * as transferable ArrayBuffers (moved, not copied).
 *
 * Two front ends over one wire protocol (a MessageChannel per worker plus a shared counter
 * the worker bumps after each reply):
 *  - WorkerPool: promise-based, for async APIs (per-example gradients);
 *  - SyncWorkerPool: blocks the calling thread (Atomics.wait, receiveMessageOnPort) so that
 *    synchronous APIs (the attributors' cache/attribute) can use every core.
 *
 * The caller names its worker script (`require.resolve('./worker')`, which is the `.ts`
 * source under tsx and the compiled `.js` in `dist/`), so each worker lives next to the
 * code it serves; a TypeScript script is started with `--require tsx/cjs`.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, MessagePort, receiveMessageOnPort, Transferable, Worker, workerData } from 'node:worker_threads';
import { TdaError } from '../errors';

/** Cores this process may use. */
export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** A worker script (an absolute path, `.ts` or `.js`) with the Node flags it needs. */
export function workerEntry(script: string): { file: string; execArgv: string[] } {
  if (!path.isAbsolute(script)) throw new Error(`worker script must be an absolute path, got '${script}'`);
  return { file: script, execArgv: script.endsWith('.ts') ? ['--require', require.resolve('tsx/cjs')] : [] };
}

interface WireError {
  message: string;
  name: string;
  file?: string;
  field?: string;
}

type ToWorker = { type: 'init'; data: unknown } | { type: 'task'; id: number; data: unknown };
type FromWorker = { type: 'ready' } | { type: 'result'; id: number; data: unknown } | { type: 'error'; id: number | null; error: WireError } | { type: 'exit' };

function toWire(e: unknown): WireError {
  if (e instanceof TdaError) return { message: e.message, name: e.name, file: e.file, field: e.field };
  if (e instanceof Error) return { message: e.message, name: e.name };
  return { message: String(e), name: 'Error' };
}

function fromWire(w: WireError): Error {
  if (w.name === 'TdaError') {
    // The message already names file and field; keep it as it is.
    const e = new TdaError(w.message);
    Object.assign(e, { file: w.file, field: w.field });
    return e;
  }
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}

interface Slot {
  worker: Worker;
  port: MessagePort;
  /** Tasks sent to the worker and not answered yet (it runs them one at a time, in order). */
  inFlight: number;
}

/**
 * The worker to give the next task: the first of those holding the fewest, if that is below
 * `depth`. Tasks thus spread over the workers before any gets a second one.
 */
function freeSlot(slots: Slot[], depth: number): Slot | undefined {
  let best: Slot | undefined;
  for (const s of slots) if (s.inFlight < depth && (!best || s.inFlight < best.inFlight)) best = s;
  return best;
}

function spawn(script: string, signal: Int32Array, init: unknown): Slot {
  const { file, execArgv } = workerEntry(script);
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(file, { execArgv, workerData: { port: port2, signal }, transferList: [port2] });
  port1.postMessage({ type: 'init', data: init } satisfies ToWorker);
  return { worker, port: port1, inFlight: 0 };
}

/**
 * `count` workers running `script`, each initialised with `init` (structured-cloned; share
 * big read-only data through SharedArrayBuffers). Tasks go to the first worker holding
 * fewer than `depth` of them: with a depth of 2 a worker has its next task in hand when it
 * finishes one, even while this thread is too busy to answer at once.
 */
export class WorkerPool<TTask, TResult> {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly queue: { id: number; data: TTask; transfer: Transferable[] }[] = [];
  private nextId = 0;
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly slots: Slot[],
    private readonly depth: number,
  ) {}

  static async start<TTask, TResult>(script: string, count: number, init: unknown, depth = 1): Promise<WorkerPool<TTask, TResult>> {
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const slots = Array.from({ length: count }, () => spawn(script, signal, init));
    const pool = new WorkerPool<TTask, TResult>(slots, depth);
    const ready = slots.map(
      (slot) =>
        new Promise<void>((resolve, reject) => {
          slot.port.on('message', (m: FromWorker) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'error' && m.id === null) reject(fromWire(m.error));
            else pool.onMessage(slot, m);
          });
          slot.worker.on('error', (e) => {
            reject(e);
            pool.die(e);
          });
          slot.worker.on('exit', (code) => {
            const e = new Error(`a worker exited unexpectedly (code ${code})`);
            reject(e);
            pool.die(e);
          });
        }),
    );
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
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
    for (const s of this.slots) s.port.close();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type !== 'result' && m.type !== 'error') return;
    slot.inFlight--;
    const p = m.id === null ? undefined : this.pending.get(m.id);
    if (m.id !== null) this.pending.delete(m.id);
    if (p) {
      if (m.type === 'result') p.resolve(m.data);
      else p.reject(fromWire(m.error));
    }
    this.dispatch();
  }

  private die(e: Error): void {
    if (this.closed) return;
    this.failure = e;
    this.failAll(e);
  }

  private dispatch(): void {
    for (let slot = freeSlot(this.slots, this.depth); slot && this.queue.length > 0; slot = freeSlot(this.slots, this.depth)) {
      const task = this.queue.shift()!;
      slot.inFlight++;
      slot.port.postMessage({ type: 'task', id: task.id, data: task.data } satisfies ToWorker, task.transfer);
    }
  }

  private failAll(e: Error): void {
    this.queue.length = 0;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** How long a blocked caller waits for a worker before checking that the workers are alive. */
const WAIT_SLICE_MS = 1000;

/**
 * The same pool for synchronous callers: every call blocks until its tasks are done. The
 * workers reply on their MessagePorts and bump a shared counter; the caller sleeps on the
 * counter (Atomics.wait) and reads replies with receiveMessageOnPort, so no event loop turn
 * is needed. A worker that dies is reported by the worker itself (see serveWorker).
 */
export class SyncWorkerPool<TTask, TResult> {
  private closed = false;

  private constructor(
    private readonly slots: Slot[],
    private readonly signal: Int32Array,
  ) {}

  /** Starts `count` workers and blocks until each has run its set-up. */
  static start<TTask, TResult>(script: string, count: number, init: unknown): SyncWorkerPool<TTask, TResult> {
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const slots = Array.from({ length: count }, () => spawn(script, signal, init));
    for (const s of slots) s.worker.unref();
    const pool = new SyncWorkerPool<TTask, TResult>(slots, signal);
    try {
      let ready = 0;
      pool.pump(() => ready < count, (slot, m) => {
        if (m.type === 'ready') ready++;
        else if (m.type === 'error') throw fromWire(m.error);
        else if (m.type === 'exit') throw new Error('a worker exited while starting');
        void slot;
      });
    } catch (e) {
      pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * Runs every task of `tasks` (drawn lazily, at most `depth` per worker in flight, so a
   * streaming source is never read far ahead), calling `onResult` with the task's index as
   * results arrive, in completion order. Blocks until all are done; the first error stops
   * the run (and the pool) and is thrown.
   */
  runAll(tasks: Iterable<{ data: TTask; transfer?: Transferable[] }>, onResult: (index: number, result: TResult) => void, depth = 2): void {
    const it = tasks[Symbol.iterator]();
    let next = 0;
    let exhausted = false;
    let inFlight = 0;
    // Up to `depth` tasks per worker: the next one is prepared (read, copied) and waiting in
    // the worker's port while the current one runs.
    const feed = () => {
      for (let slot = freeSlot(this.slots, depth); slot && !exhausted; slot = freeSlot(this.slots, depth)) {
        const r = it.next();
        if (r.done) {
          exhausted = true;
          return;
        }
        slot.inFlight++;
        inFlight++;
        slot.port.postMessage({ type: 'task', id: next++, data: r.value.data } satisfies ToWorker, r.value.transfer ?? []);
      }
    };
    feed();
    this.pump(
      () => inFlight > 0,
      (slot, m) => {
        if (m.type === 'exit') throw new Error('a worker exited unexpectedly');
        if (m.type === 'ready') return;
        slot.inFlight--;
        inFlight--;
        if (m.type === 'error') throw fromWire(m.error);
        onResult(m.id, m.data as TResult);
        feed();
      },
    );
  }

  /** Runs the same task once on every worker (e.g. to load new data) and returns each result. */
  broadcast(data: TTask): TResult[] {
    const results: TResult[] = new Array(this.slots.length);
    let left = this.slots.length;
    this.slots.forEach((slot, i) => {
      slot.inFlight++;
      slot.port.postMessage({ type: 'task', id: i, data } satisfies ToWorker);
    });
    this.pump(
      () => left > 0,
      (slot, m) => {
        if (m.type === 'exit') throw new Error('a worker exited unexpectedly');
        if (m.type === 'ready') return;
        slot.inFlight--;
        left--;
        if (m.type === 'error') throw fromWire(m.error);
        results[m.id] = m.data as TResult;
      },
    );
    return results;
  }

  /** Stops the workers (they finish exiting in the background). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.slots) {
      s.port.close();
      void s.worker.terminate();
    }
  }

  /** Handles replies until `more()` is false, sleeping on the shared counter in between. */
  private pump(more: () => boolean, handle: (slot: Slot, m: FromWorker) => void): void {
    if (this.closed) throw new Error('the worker pool is closed');
    try {
      while (more()) {
        const seen = Atomics.load(this.signal, 0);
        let got = false;
        for (const slot of this.slots) {
          for (let r = receiveMessageOnPort(slot.port); r; r = receiveMessageOnPort(slot.port)) {
            got = true;
            handle(slot, r.message as FromWorker);
            if (!more()) return;
          }
        }
        if (!got) Atomics.wait(this.signal, 0, seen, WAIT_SLICE_MS);
      }
    } catch (e) {
      // A failed run leaves workers mid-task: this pool cannot be used again.
      this.close();
      throw e;
    }
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
  const wd = workerData as { port?: MessagePort; signal?: Int32Array } | null;
  if (!wd?.port || !wd.signal) throw new Error('serveWorker must run in a worker started by a WorkerPool');
  const port = wd.port;
  const signal = wd.signal;
  const reply = (m: FromWorker, transfer: Transferable[] = []) => {
    port.postMessage(m, transfer);
    Atomics.add(signal, 0, 1);
    Atomics.notify(signal, 0);
  };
  process.on('exit', () => reply({ type: 'exit' }));
  let state: TState | undefined;
  port.on('message', async (m: ToWorker) => {
    if (m.type === 'init') {
      try {
        state = await setup(m.data);
        reply({ type: 'ready' });
      } catch (e) {
        reply({ type: 'error', id: null, error: toWire(e) });
      }
      return;
    }
    try {
      const { result, transfer } = handle(state as TState, m.data as TTask);
      reply({ type: 'result', id: m.id, data: result }, transfer);
    } catch (e) {
      reply({ type: 'error', id: m.id, error: toWire(e) });
    }
  });
}
