/**
 * A small workload for the reliability tests: the reference checkpoint (test/fixtures/llama-tiny)
 * and n seeded examples in its vocabulary, long enough that a run can be interrupted mid-way.
 */
import { spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/random';
import { FIXTURE_DIR } from '../helpers/fixtures';

export const ROOT = path.join(__dirname, '..', '..');
export const LAUNCHER = path.join(ROOT, 'test', 'cli', 'tdaLabFromSources.ts');
export const MODEL = FIXTURE_DIR;
export const ADAPTER = path.join(FIXTURE_DIR, 'adapter');

/** Writes n examples of 12-24 tokens (vocabulary 97), the last third of each the response. */
export function writeExamples(file: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 12 + Math.floor(rng.next() * 13);
    const ids = Array.from({ length: len }, () => 1 + Math.floor(rng.next() * 96));
    lines.push(JSON.stringify({ input_ids: ids, prompt_length: Math.floor((2 * len) / 3) }));
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

export const cliArgs = (args: string[]) => ['--require', 'tsx/cjs', LAUNCHER, '--backend', 'wasm', ...args];

/** Runs the command line to the end. */
export function cli(args: string[], env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, cliArgs(args), { encoding: 'utf8', cwd: ROOT, env });
}

/** Starts the command line; resolves with its exit once it ends. */
export function startCli(args: string[]) {
  const child = spawn(process.execPath, cliArgs(args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, exited, stderr: () => stderr };
}

/** Every file name in `dir` (recursively) that is not hidden: what a user sees. */
export function visibleFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    out.push(e.name);
    if (e.isDirectory()) out.push(...visibleFiles(path.join(dir, e.name)).map((f) => `${e.name}/${f}`));
  }
  return out.sort();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
