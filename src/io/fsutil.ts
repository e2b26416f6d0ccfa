import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TdaError } from '../errors';

// fs.readSync / writeSync take at most ~2 GiB per call and may transfer fewer bytes than asked.
const CHUNK = 1 << 30;

/** Fill `buf` from `fd` starting at absolute file `position`; fails if the file ends first. */
export function readFully(fd: number, buf: Uint8Array, position: number, file: string, field?: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, Math.min(CHUNK, buf.length - done), position + done);
    if (n === 0) {
      throw new TdaError(
        `unexpected end of file at byte ${position + done} (wanted ${buf.length} bytes from ${position}); did the file change after it was opened?`,
        { file, field },
      );
    }
    done += n;
  }
}

/** Write all of `bytes` at the current file position. */
export function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(CHUNK, bytes.length - done));
  }
}

/**
 * Temp files are hidden (`.name.tmp-<pid>-<random>` beside `name`), so a killed writer never
 * leaves a visible partial file; the next write of the same file removes them.
 */
export function tempFileFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

const TEMP_SUFFIX_RE = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+$/;

/** The pid of the process that made a temp file (null if `name` is not one), and which file it was for. */
export function parseTempName(name: string): { target: string; pid: number } | null {
  const m = TEMP_SUFFIX_RE.exec(name);
  return m ? { target: m[1], pid: Number(m[2]) } : null;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files of `file` left by writers that no longer run (killed mid-write). */
export function removeStaleTemps(file: string): void {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const t = parseTempName(name);
    if (!t || t.target !== base || (t.pid !== process.pid && processAlive(t.pid))) continue;
    fs.rmSync(path.join(dir, name), { force: true, recursive: true });
  }
}

/** A write error as one clear line: what went wrong and that the target is untouched. */
export function describeWriteError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const hint: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'the file system is read-only',
  };
  const what = code && hint[code] ? `${hint[code]} (${code})` : (e as Error).message;
  return `cannot write file: ${what}; nothing was replaced (files already written are intact), run again once this is fixed`;
}

/**
 * Create `path` atomically: `write` fills a hidden temp file next to it, which is then
 * renamed over `path`, so readers never see a half-written file. The temp file is removed on
 * failure, and temp files of earlier writers that were killed are removed first.
 */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  removeStaleTemps(file);
  const tmp = tempFileFor(file);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing; keep the original error */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* temp file may never have been created */
    }
    if (e instanceof TdaError) throw e;
    throw new TdaError(describeWriteError(e), { file });
  }
}

/** Writes a whole text file atomically (hidden temp file, then rename). */
export function writeTextAtomic(file: string, text: string): void {
  writeFileAtomic(file, (fd) => writeFully(fd, Buffer.from(text, 'utf8')));
}
