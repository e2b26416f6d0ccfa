import * as fs from 'node:fs';
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
 * Create `path` atomically: `write` fills a temp file next to it, which is then renamed over
 * `path`, so readers never see a half-written checkpoint. The temp file is removed on failure.
 */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
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
    throw new TdaError(`cannot write file: ${(e as Error).message}`, { file: path });
  }
}
