/**
 * A lock file that lets one process at a time write a gradient store or an output file.
 *
 * The lock is a small JSON file (pid, host, start time, command) created with O_EXCL, so
 * of two processes exactly one creates it. A second writer is refused with a message naming
 * the holder. A lock whose holder is gone (same host, pid no longer running) is taken over:
 * a crashed or killed writer never leaves a directory stuck. Takeovers are serialised by a
 * second O_EXCL file, so two processes finding the same stale lock cannot both take it.
 * A lock from another host (a shared file system) cannot be checked and is never taken over.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TdaError } from '../errors';
import { processAlive } from './fsutil';

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO 8601, when the holder took the lock. */
  started: string;
  command: string;
}

export interface Lock {
  readonly file: string;
  readonly holder: LockHolder;
  /** Removes the lock file if it is still ours. Safe to call twice. */
  release(): void;
}

/** Lock files held by this process: a pid found in a lock but not here is a previous process's (pids are reused). */
const held = new Set<string>();

function me(): LockHolder {
  return { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command: process.argv.slice(1).map((a) => path.basename(a)).join(' ').slice(0, 200) };
}

/** The holder recorded in a lock file, or null when the file is gone or unreadable (being written). */
function readHolder(file: string): LockHolder | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (Number.isSafeInteger(v.pid) && typeof v.host === 'string' && typeof v.started === 'string') {
      return { pid: v.pid!, host: v.host, started: v.started, command: typeof v.command === 'string' ? v.command : '' };
    }
  } catch {
    /* fall through: a torn or foreign file */
  }
  return null;
}

function isStale(file: string, h: LockHolder): boolean {
  if (h.host !== os.hostname()) return false;
  if (h.pid === process.pid) return !held.has(file);
  return !processAlive(h.pid);
}

/** Creates `file` with `holder` if it does not exist; false if it does. */
function tryCreate(file: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new TdaError(`cannot create the lock file: ${(e as Error).message}`, { file });
  }
  try {
    fs.writeSync(fd, JSON.stringify(holder) + '\n');
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw new TdaError(`cannot write the lock file: ${(e as Error).message}`, { file });
  }
  fs.closeSync(fd);
  return true;
}

/** Removes `file` if it still records exactly the stale holder `h`; at most one process does this at a time. */
function takeOver(file: string, h: LockHolder): void {
  const guard = `${file}.takeover`;
  if (!tryCreate(guard, me())) {
    // Another process is taking over right now, or one died doing so (a window of microseconds).
    const g = readHolder(guard);
    if (g && isStale(guard, g)) fs.rmSync(guard, { force: true });
    return;
  }
  try {
    const now = readHolder(file);
    if (now && now.pid === h.pid && now.host === h.host && now.started === h.started) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

function describe(h: LockHolder): string {
  return `pid ${h.pid} on ${h.host}, started ${h.started}${h.command ? `, command '${h.command}'` : ''}`;
}

/**
 * Takes the lock `file` for `what` (e.g. "the gradient store"), or throws a TdaError naming
 * the holder. A stale lock (its holder is no longer running on this host) is taken over.
 */
export function acquireLock(file: string, what: string): Lock {
  const holder = me();
  // A few rounds: a takeover by another process, or a lock file caught half-written, resolves in one or two.
  for (let attempt = 0; attempt < 50; attempt++) {
    if (tryCreate(file, holder)) {
      held.add(file);
      let released = false;
      return {
        file,
        holder,
        release() {
          if (released) return;
          released = true;
          held.delete(file);
          const now = readHolder(file);
          if (now && now.pid === holder.pid && now.started === holder.started) fs.rmSync(file, { force: true });
        },
      };
    }
    const h = readHolder(file);
    if (h === null) {
      // Just created and not yet written, or removed meanwhile: look again shortly. A file that stays unreadable is foreign.
      if (attempt >= 20 && fs.existsSync(file)) {
        throw new TdaError(`${what} is locked by a lock file tda-lab cannot read; if no tda-lab process is writing it, delete the lock file`, { file });
      }
      sleep(10);
      continue;
    }
    if (!isStale(file, h)) {
      const elsewhere = h.host !== os.hostname() ? `; if that process is no longer running on ${h.host}, delete the lock file` : '';
      throw new TdaError(`${what} is being written by another process (${describe(h)}); wait for it to finish${elsewhere}`, { file });
    }
    takeOver(file, h);
  }
  throw new TdaError(`${what}: could not take the lock after 50 attempts (other processes keep taking it)`, { file });
}

/** Runs `fn` holding the lock `file`; the lock is released however `fn` ends. */
export async function withLock<T>(file: string, what: string, fn: () => Promise<T> | T): Promise<T> {
  const lock = acquireLock(file, what);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** The hidden lock file beside an output file: `dir/.name.lock`. */
export function outputLockFile(out: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.lock`);
}

/** Runs the synchronous `fn` holding the lock of the output file `out` (one writer per output). */
export function withOutputLock<T>(out: string, fn: () => T): T {
  const lock = acquireLock(outputLockFile(out), `output ${out}`);
  try {
    return fn();
  } finally {
    lock.release();
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
