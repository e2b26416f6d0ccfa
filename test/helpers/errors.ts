/** Shared test helpers: temp dirs and TdaError assertions. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TdaError } from '../../src/errors';

export { FIXTURE_DIR as FIXTURE } from './fixtures';

/** A fresh temp dir per test; call cleanup() in afterEach. */
export function tempDirs(prefix = 'tda-test-') {
  const dirs: string[] = [];
  return {
    make(): string {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    cleanup(): void {
      while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
    },
  };
}

export function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 1));
}

/** fn must throw a TdaError whose message contains every given fragment. */
export function throwsTda(fn: () => unknown, ...fragments: string[]): TdaError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TdaError, `expected a TdaError, got ${caught === undefined ? 'no error' : String(caught)}`);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
  return caught;
}
