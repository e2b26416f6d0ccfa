/**
 * Disk full and read-only: on a small tmpfs (mounted by the test; it needs root, as CI has),
 * `grads --store` runs out of space in the middle of a shard (ENOSPC), then meets a read-only
 * file system (EROFS) and a directory it may not write (EACCES, the command run as `nobody`,
 * since root ignores permission bits). Each time: a one-line error naming the file and the
 * cause, every shard already recorded intact, no temp file left; once space is back the same
 * command resumes and ends with the bytes of an uninterrupted run. `score` on a full disk
 * keeps the previous output file untouched.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientStore } from '../../src/gradients/store';
import { hashFile } from '../../src/gradients/store/hash';
import { tmpDir } from '../helpers/fixtures';
import { ADAPTER, cli, cliArgs, MODEL, ROOT, visibleFiles, writeExamples } from './workload';

const lastLine = (s: string) => s.trim().split('\n').pop()!;

function mount(args: string[]): void {
  try {
    execFileSync('mount', args, { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`this test mounts a small tmpfs and needs root (mount ${args.join(' ')}): ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? e}`);
  }
}

describe('reliability: disk full and read-only', function () {
  this.timeout(300000);
  let work: string;
  let mnt: string;
  let mounted = false;
  let data: string;
  let refStore: string;
  const grads = (store: string) => ['grads', '--model', MODEL, '--adapter', ADAPTER, '--data', data, '--store', store, '--store-shard-size', '8', '--batch-size', '4'];

  before(() => {
    work = tmpDir('tda-diskfull-');
    fs.chmodSync(work, 0o755);
    mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    data = path.join(work, 'train.jsonl');
    writeExamples(data, 160, 5);
    refStore = path.join(work, 'ref-store');
    const r = cli(grads(refStore));
    assert.equal(r.status, 0, r.stderr);
    // Room for a few 58 kB shards of the 20: the fifth or so runs out of space mid-write.
    mount(['-t', 'tmpfs', '-o', 'size=300k,mode=0755', 'tmpfs', mnt]);
    mounted = true;
  });
  after(() => {
    if (mounted) execFileSync('umount', [mnt]);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('grads --store: ENOSPC, EROFS and EACCES each give a clear error and lose nothing; with space back it resumes to the same bits', () => {
    const ref = GradientStore.openExisting(refStore).manifest.shards.map((s) => s.sha256);
    const store = path.join(mnt, 'store');
    const manifest = path.join(store, 'manifest.json');
    /** Everything recorded is whole and equal to the uninterrupted run; nothing else is there. */
    const intact = () => {
      const recs = GradientStore.openExisting(store).manifest.shards;
      for (const rec of recs) assert.equal(hashFile(path.join(store, rec.file)), ref[rec.index], rec.file);
      assert.deepEqual(fs.readdirSync(store).sort(), ['manifest.json', ...recs.map((r) => r.file)].sort(), 'no temp or lock file left');
      return recs.length;
    };

    const full = cli(grads(store));
    assert.equal(full.status, 1);
    assert.match(lastLine(full.stderr), /^tda-lab: .*store\/shard-\d{5}\.safetensors: cannot write file: no space left on the device \(ENOSPC\); nothing was replaced \(files already written are intact\), run again once this is fixed$/);
    const kept = intact();
    assert.ok(kept >= 2 && kept < 20, `${kept} shards fitted`);
    const before = fs.readFileSync(manifest);

    mount(['-o', 'remount,ro', mnt]);
    const ro = cli(grads(store));
    mount(['-o', 'remount,rw', mnt]);
    assert.equal(ro.status, 1);
    assert.match(lastLine(ro.stderr), /^tda-lab: .*store\/\.lock: cannot create the lock file: EROFS: read-only file system/);
    assert.ok(fs.readFileSync(manifest).equals(before));

    // Root ignores permission bits: run as nobody, on the root-owned 0755 store.
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...cliArgs(grads(store))], { encoding: 'utf8', cwd: ROOT });
    assert.equal(asNobody.status, 1, asNobody.stderr);
    assert.match(lastLine(asNobody.stderr), /^tda-lab: .*store\/\.lock: cannot create the lock file: EACCES: permission denied/);
    assert.ok(fs.readFileSync(manifest).equals(before));
    assert.equal(intact(), kept);

    mount(['-o', 'remount,size=4m', mnt]);
    const resumed = cli(grads(store));
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`${20 - kept} shards computed, ${kept} reused`));
    assert.deepEqual(GradientStore.openExisting(store).manifest.shards.map((s) => s.sha256), ref);
    assert.equal(intact(), 20);
  });

  it('score: a full disk mid-write keeps the previous output file and leaves no temp file; with space back it writes the same bytes', () => {
    const test = path.join(work, 'test-grads.safetensors');
    const testData = path.join(work, 'test.jsonl');
    writeExamples(testData, 12, 6);
    assert.equal(cli(['grads', '--model', MODEL, '--adapter', ADAPTER, '--data', testData, '--out', test, '--batch-size', '4']).status, 0);
    const score = (out: string) => ['score', '--method', 'gradDot', '--train', refStore, '--test', test, '--out', out];
    const ref = path.join(work, 'scores.safetensors');
    assert.equal(cli(score(ref)).status, 0);
    const dir = path.join(mnt, 'out');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'scores.safetensors');
    fs.writeFileSync(out, 'previous results');
    // Leave one page free: the 7.7 kB score file fails part way.
    const filler = path.join(mnt, 'filler');
    const free = () => fs.statfsSync(mnt).bavail * fs.statfsSync(mnt).bsize;
    fs.writeFileSync(filler, Buffer.alloc(free() - 4096));
    const r = cli(score(out));
    assert.equal(r.status, 1);
    assert.match(lastLine(r.stderr), /^tda-lab: .*out\/scores\.safetensors: cannot write file: no space left on the device \(ENOSPC\)/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'previous results');
    assert.deepEqual(fs.readdirSync(dir), ['scores.safetensors']);
    fs.rmSync(filler);
    assert.equal(cli(score(out)).status, 0);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(ref)), "same inputs (recorded by absolute path), same bytes");
    assert.deepEqual(visibleFiles(dir), ['scores.safetensors']);
  });
});
