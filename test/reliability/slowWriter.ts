/**
 * Child process for the interruption tests: writes `argv[2]` through writeFileAtomic slowly
 * (1 KiB every 5 ms for `argv[3]` KiB), printing "writing" once the temp file is open, so the
 * test can kill it in the middle of the write.
 */
import { writeFileAtomic, writeFully } from '../../src/io/fsutil';

const [file, kib] = process.argv.slice(2);
const chunk = new Uint8Array(1024).fill(7);
writeFileAtomic(file, (fd) => {
  process.stdout.write('writing\n');
  for (let i = 0; i < Number(kib); i++) {
    writeFully(fd, chunk);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
});
