/**
 * Child process for the lock tests: takes the lock `argv[2]`, prints "held" (or the refusal
 * as "refused: <message>"), holds it for `argv[3]` ms, then releases it and exits.
 */
import { acquireLock } from '../../src/io/lock';

const [file, holdMs] = process.argv.slice(2);
try {
  const lock = acquireLock(file, 'the test resource');
  process.stdout.write('held\n');
  setTimeout(() => {
    lock.release();
    process.exit(0);
  }, Number(holdMs));
} catch (e) {
  process.stdout.write(`refused: ${(e as Error).message}\n`);
  process.exit(3);
}
