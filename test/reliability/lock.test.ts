/**
 * Concurrency: one writer per gradient store or output file. A second writer is refused with
 * a message naming the holder; a lock whose holder died is taken over (also when several
 * processes find it at once: exactly one wins); a reader polling a store while it is written
 * never sees a half-written shard or a temp file.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GradientStore } from '../../src/gradients/store';
import { hashFile } from '../../src/gradients/store/hash';
import { acquireLock, outputLockFile } from '../../src/io/lock';
import { tmpDir } from '../helpers/fixtures';
import { ADAPTER, cli, MODEL, ROOT, sleep, startCli, visibleFiles, writeExamples } from './workload';

const HOLDER = path.join(__dirname, 'lockHolder.ts');

/** Starts a process holding the lock `file` for `ms`; resolves once it reports. */
function holdLock(file: string, ms: number) {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', HOLDER, file, String(ms)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const reported = new Promise<string>((resolve) => child.stdout.on('data', (d) => ((out += d), out.includes('\n') && resolve(out.trim()))));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, reported, exited };
}

describe('reliability: locks and concurrent writers', function () {
  this.timeout(300000); // about 70 s of CPU; several times that on a shared machine
  let work: string;
  before(() => (work = tmpDir('tda-lock-')));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('refuses a second holder, naming pid, host and start time; released locks can be taken again', async () => {
    const file = path.join(work, 'a.lock');
    const h = holdLock(file, 60000);
    assert.equal(await h.reported, 'held');
    try {
      assert.throws(
        () => acquireLock(file, 'the test resource'),
        (e: Error) => {
          assert.equal(e.name, 'TdaError');
          assert.ok(!e.message.includes('\n'));
          assert.match(e.message, new RegExp(`a\\.lock: the test resource is being written by another process \\(pid ${h.child.pid} on ${os.hostname()}, started \\d{4}-\\d\\d-\\d\\dT`));
          return true;
        },
      );
    } finally {
      h.child.kill('SIGTERM');
      await h.exited;
    }
    // SIGTERM without a handler: the holder died holding it; the lock is stale and taken over.
    assert.ok(fs.existsSync(file));
    const mine = acquireLock(file, 'the test resource');
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
    // Held by this process: a second acquire here is refused too.
    assert.throws(() => acquireLock(file, 'the test resource'), /another process \(pid \d+/);
    mine.release();
    assert.ok(!fs.existsSync(file));
    mine.release(); // twice is harmless
    const again = acquireLock(file, 'the test resource');
    again.release();
  });

  it('takes over a lock left by a killed holder, and one left by an earlier process with this pid', async () => {
    const file = path.join(work, 'b.lock');
    const h = holdLock(file, 60000);
    assert.equal(await h.reported, 'held');
    h.child.kill('SIGKILL');
    await h.exited;
    acquireLock(file, 'x').release();
    // A container restarted may give a new process the pid of the one that left the lock.
    fs.writeFileSync(file, JSON.stringify({ pid: process.pid, host: os.hostname(), started: '2020-01-01T00:00:00.000Z', command: 'old' }));
    acquireLock(file, 'x').release();
    assert.ok(!fs.existsSync(file));
  });

  it('never takes over a lock from another host, and says how to clear it', () => {
    const file = path.join(work, 'c.lock');
    fs.writeFileSync(file, JSON.stringify({ pid: 1, host: 'other-node-17', started: '2026-01-01T00:00:00.000Z', command: 'tda-lab grads' }));
    assert.throws(() => acquireLock(file, 'the gradient store'), /pid 1 on other-node-17, started 2026-01-01T00:00:00\.000Z, command 'tda-lab grads'\); wait for it to finish; if that process is no longer running on other-node-17, delete the lock file/);
  });

  it('of several processes finding the same stale lock at once, exactly one takes it', async () => {
    const file = path.join(work, 'd.lock');
    fs.writeFileSync(file, JSON.stringify({ pid: 2147483646, host: os.hostname(), started: '2020-01-01T00:00:00.000Z', command: 'dead' }));
    const racers = Array.from({ length: 4 }, () => holdLock(file, 1500));
    const reports = await Promise.all(racers.map((r) => r.reported));
    await Promise.all(racers.map((r) => r.exited));
    assert.equal(reports.filter((r) => r === 'held').length, 1, reports.join(' | '));
    for (const r of reports.filter((x) => x !== 'held')) assert.match(r, /^refused: .*being written by another process \(pid \d+/);
    assert.ok(!fs.existsSync(file));
  });

  it('a second grads --store on the same store is refused naming the first; a reader polling meanwhile sees only whole shards', async () => {
    const data = path.join(work, 'train.jsonl');
    // Enough work that the second process starts while the first still writes (60 shards).
    writeExamples(data, 1920, 11);
    const store = path.join(work, 'store');
    const args = ['grads', '--model', MODEL, '--adapter', ADAPTER, '--data', data, '--store', store, '--store-shard-size', '32', '--batch-size', '4'];
    const first = startCli(args);
    // Wait until the first writer holds the store, then start the second.
    while (!fs.existsSync(path.join(store, 'manifest.json'))) await sleep(20);
    const second = startCli(args);
    let polls = 0;
    let shardsSeen = 0;
    let secondDone: { code: number | null; stderr: string } | null = null;
    second.exited.then((r) => (secondDone = r));
    let firstDone: { code: number | null; stderr: string } | null = null;
    first.exited.then((r) => (firstDone = r));
    while (firstDone === null) {
      // A reader: whatever the manifest records must be there whole, and nothing half-written is visible.
      const reader = GradientStore.openExisting(store);
      for (const rec of reader.manifest.shards) {
        assert.equal(hashFile(reader.shardFile(rec.index)), rec.sha256, `shard ${rec.index} as recorded`);
        assert.equal(reader.readShard(rec.index).n, rec.count);
      }
      shardsSeen = Math.max(shardsSeen, reader.manifest.shards.length);
      for (const f of visibleFiles(store)) assert.match(f, /^(manifest\.json|shard-\d{5}\.safetensors)$/);
      polls++;
      await sleep(5);
    }
    while (secondDone === null) await sleep(20);
    const f = firstDone as { code: number | null; stderr: string };
    const s = secondDone as { code: number | null; stderr: string };
    assert.equal(f.code, 0, f.stderr);
    assert.equal(s.code, 1);
    assert.match(s.stderr, new RegExp(`store/\\.lock: the gradient store is being written by another process \\(pid ${first.child.pid} on ${os.hostname()}, started \\d{4}-`));
    assert.ok(polls >= 3 && shardsSeen > 0, `the reader polled ${polls} times and saw ${shardsSeen} shards while the writer ran`);
    assert.ok(GradientStore.openExisting(store).isComplete());
    assert.deepEqual(fs.readdirSync(store).sort(), ['manifest.json', ...Array.from({ length: 60 }, (_, i) => `shard-${String(i).padStart(5, '0')}.safetensors`)]);
  });

  it('score, merge and grads --out refuse an output another process is writing', async () => {
    const out = path.join(work, 'scores.safetensors');
    const h = holdLock(outputLockFile(out), 60000);
    assert.equal(await h.reported, 'held');
    try {
      const r = cli(['merge', '--out', out, path.join(work, 'none.safetensors')]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`\\.scores\\.safetensors\\.lock: output .*scores\\.safetensors is being written by another process \\(pid ${h.child.pid} on `));
    } finally {
      h.child.kill('SIGKILL');
      await h.exited;
    }
  });
});
