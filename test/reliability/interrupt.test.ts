/**
 * Interruptions: SIGKILL and SIGTERM at seeded random points of `grads --store`, `score`
 * (full matrix and --top-k) and `merge`. After every kill the output directory shows only
 * finished files (temp files are hidden), whatever a store records is whole, and re-running
 * the command ends with the same bytes as an uninterrupted run. `grads --store` resumes
 * (finished shards are kept); score and merge write one file atomically, so a rerun redoes
 * them. A kill in the middle of a file write leaves only a hidden temp file, which the next
 * write of that file removes.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientStore } from '../../src/gradients/store';
import { hashFile } from '../../src/gradients/store/hash';
import { writeFileAtomic, writeFully } from '../../src/io/fsutil';
import { Rng } from '../../src/random';
import { tmpDir } from '../helpers/fixtures';
import { ADAPTER, cli, MODEL, ROOT, startCli, visibleFiles, writeExamples } from './workload';

const bytes = (f: string) => fs.readFileSync(f);

interface Killed {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs `args`, sends `signal` after `ms` (unless it ended first), and waits for the exit. */
async function killAfter(args: string[], ms: number, signal: NodeJS.Signals): Promise<Killed> {
  const run = startCli(args);
  const timer = setTimeout(() => run.child.kill(signal), ms);
  const r = await run.exited;
  clearTimeout(timer);
  return r;
}

/** The exit of a killed command: killed by the signal, finished, or (SIGTERM on grads --store) stopped cleanly with the given message. */
function assertStopped(r: Killed, signal: NodeJS.Signals, clean?: RegExp): void {
  if (r.signal !== null) return assert.equal(r.signal, signal, r.stderr);
  if (r.code === 0) return;
  assert.ok(clean && signal === 'SIGTERM', `exit ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim().split('\n').pop()!, clean);
}

describe('reliability: interrupted commands resume to the same bits', function () {
  this.timeout(600000);
  const rng = new Rng(2026);
  let work: string;
  let train: string;
  let test: string;
  let refStore: string;
  let testGrads: string;
  // Enough work that random kill points land inside the computation, not only in start-up,
  // with the native kernels too: 1,280 examples in 40 shards.
  const grads = (data: string, store: string) => ['grads', '--model', MODEL, '--adapter', ADAPTER, '--data', data, '--store', store, '--store-shard-size', '32', '--batch-size', '4'];
  const score = (out: string, extra: string[] = []) => ['score', '--method', 'dataInf', '--train', refStore, '--test', testGrads, '--out', out, ...extra];
  /** Wall time of an uninterrupted run: kill points are drawn over it. */
  const timed = (args: string[]) => {
    const t0 = Date.now();
    const r = cli(args);
    assert.equal(r.status, 0, r.stderr);
    return Date.now() - t0;
  };
  const signalFor = () => (rng.next() < 0.5 ? 'SIGKILL' : 'SIGTERM') as NodeJS.Signals;

  before(() => {
    work = tmpDir('tda-interrupt-');
    train = path.join(work, 'train.jsonl');
    test = path.join(work, 'test.jsonl');
    writeExamples(train, 1280, 5);
    writeExamples(test, 12, 6);
    refStore = path.join(work, 'ref-store');
    testGrads = path.join(work, 'test-grads.safetensors');
    assert.equal(cli(['grads', '--model', MODEL, '--adapter', ADAPTER, '--data', test, '--out', testGrads, '--batch-size', '4']).status, 0);
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('grads --store: 8 random kills, then a rerun gives the uninterrupted store bit for bit', async () => {
    const full = timed(grads(train, refStore));
    const ref = GradientStore.openExisting(refStore).manifest.shards.map((s) => s.sha256);
    const dir = path.join(work, 'store');
    let partial = 0;
    for (let i = 0; i < 8; i++) {
      const signal = signalFor();
      const r = await killAfter(grads(train, dir), rng.uniform(0.3, 1.1) * full, signal);
      assertStopped(r, signal, /interrupted: \d+ of 40 shards are complete; run the same command again to resume$/);
      if (!fs.existsSync(dir)) continue;
      for (const f of visibleFiles(dir)) assert.match(f, /^(manifest\.json|shard-\d{5}\.safetensors)$/, `after kill ${i} (${signal})`);
      if (!fs.existsSync(path.join(dir, 'manifest.json'))) continue;
      // Whatever the manifest records is there, whole.
      const store = GradientStore.openExisting(dir);
      for (const rec of store.manifest.shards) assert.equal(hashFile(store.shardFile(rec.index)), ref[rec.index], `shard ${rec.index} after kill ${i}`);
      if (!store.isComplete() && store.manifest.shards.length > 0) partial++;
    }
    assert.ok(partial >= 1, 'at least one kill landed in the middle of the computation');
    const before = fs.existsSync(path.join(dir, 'manifest.json')) ? GradientStore.openExisting(dir).manifest.shards.length : 0;
    const done = cli(grads(train, dir));
    assert.equal(done.status, 0, done.stderr);
    assert.match(done.stderr, new RegExp(`${40 - before} shards computed, ${before} reused`));
    assert.deepEqual(GradientStore.openExisting(dir).manifest.shards.map((s) => s.sha256), ref);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no lock or temp file left after a finished run');
  });

  for (const topK of [false, true]) {
    it(`score${topK ? ' --top-k 5' : ''}: ${topK ? 5 : 6} random kills leave no visible partial file; the rerun's file equals the uninterrupted one`, async () => {
      const extra = topK ? ['--top-k', '5'] : [];
      const ref = path.join(work, `ref-scores${topK ? '-top5' : ''}.safetensors`);
      const full = timed(score(ref, extra));
      const dir = path.join(work, `score${topK ? '-top5' : ''}`);
      fs.mkdirSync(dir);
      const out = path.join(dir, 'scores.safetensors');
      for (let i = 0; i < (topK ? 5 : 6); i++) {
        fs.rmSync(out, { force: true });
        const signal = signalFor();
        assertStopped(await killAfter(score(out, extra), rng.uniform(0.3, 1.1) * full, signal), signal);
        const seen = visibleFiles(dir);
        assert.ok(seen.length === 0 || (seen.length === 1 && seen[0] === 'scores.safetensors'), seen.join(', '));
        if (seen.length) assert.ok(bytes(out).equals(bytes(ref)), 'a finished file is the whole file');
      }
      assert.equal(cli(score(out, extra)).status, 0);
      // Same bits, except the recorded training path, which is the same store here.
      assert.ok(bytes(out).equals(bytes(ref)));
      assert.deepEqual(fs.readdirSync(dir), ['scores.safetensors'], 'hidden temp and lock files of killed runs are gone');
    });
  }

  it('merge: 5 random kills leave no visible partial file; the rerun equals the uninterrupted merge', async () => {
    const shards = [0, 1, 2].map((i) => path.join(work, `scores-${i}.safetensors`));
    shards.forEach((f, i) => assert.equal(cli(score(f, ['--shard', `${i}/3`])).status, 0));
    const ref = path.join(work, 'ref-merged.safetensors');
    const full = timed(['merge', '--out', ref, ...shards]);
    const dir = path.join(work, 'merge');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'merged.safetensors');
    for (let i = 0; i < 5; i++) {
      fs.rmSync(out, { force: true });
      const signal = signalFor();
      assertStopped(await killAfter(['merge', '--out', out, ...shards], rng.uniform(0.3, 1.1) * full, signal), signal);
      const seen = visibleFiles(dir);
      assert.ok(seen.length === 0 || (seen.length === 1 && seen[0] === 'merged.safetensors'), seen.join(', '));
      if (seen.length) assert.ok(bytes(out).equals(bytes(ref)));
    }
    assert.equal(cli(['merge', '--out', out, ...shards]).status, 0);
    assert.ok(bytes(out).equals(bytes(ref)));
    assert.deepEqual(fs.readdirSync(dir), ['merged.safetensors']);
  });

  it('a kill in the middle of writing a file leaves only a hidden temp file, which the next write removes', async () => {
    const dir = path.join(work, 'atomic');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, 'previous version');
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'slowWriter.ts'), file, '4000'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const names = fs.readdirSync(dir).sort();
    assert.equal(names.length, 2, names.join(', '));
    assert.equal(names[1], 'big.bin');
    assert.match(names[0], /^\.big\.bin\.tmp-\d+-[0-9a-f]{12}$/);
    assert.ok(fs.statSync(path.join(dir, names[0])).size > 0, 'the write had begun');
    assert.equal(fs.readFileSync(file, 'utf8'), 'previous version', 'the file is untouched until the rename');
    writeFileAtomic(file, (fd) => writeFully(fd, Buffer.from('next version')));
    assert.deepEqual(fs.readdirSync(dir), ['big.bin']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'next version');
  });
});
