import * as assert from 'node:assert/strict';
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientStore, Projector, readManifest, storeSettings, StoreSettings } from '../../src/gradients/store';
import { TdaError } from '../../src/errors';
import { SafetensorsFile } from '../../src/io/safetensors';
import { LoraAdapter, loadAdapter } from '../../src/model/adapter';
import { computeLoraGradients } from '../../src/gradients/compute';
import { LlamaModel } from '../../src/model/llama';
import { tempDirs, throwsTda } from '../helpers/errors';
import { assertAllClose } from '../helpers/fixtures';
import { StoreFixture, writeStoreFixture } from './storeFixture';
import { WorkerJob } from './storeWorker';
import { blockByName, ComputedGradients, GradientSet } from '../../src/gradients/types';

const ROOT = path.resolve(__dirname, '..', '..');
const WORKER = path.join(__dirname, 'storeWorker.ts');

/** Direct gradients as one [n, dim] array per adapter key, in the store's block order. */
function flatDirect(g: ComputedGradients, names: string[]): Float32Array[] {
  return names.map((name) => blockByName(g, name).data);
}

function assertSetEquals(set: GradientSet, direct: ComputedGradients): void {
  assert.equal(set.n, direct.losses.length);
  assert.deepEqual(set.losses, direct.losses);
  assert.deepEqual(
    set.blocks.map((b) => b.name),
    direct.blocks.map((b) => b.name),
  );
  const want = flatDirect(direct, set.blocks.map((b) => b.name));
  set.blocks.forEach((b, i) => {
    assert.deepEqual(b.shape, blockByName(direct, b.name).shape, b.name);
    assert.equal(b.data.length, set.n * b.dim);
    assert.ok(b.data.every((v, j) => Object.is(v, want[i][j])), `${b.name} differs from computeLoraGradients`);
  });
}

describe('attribution/store: GradientStore', function () {
  const tmp = tempDirs('tda-store-');
  let root: string;
  let fx: StoreFixture;
  let model: LlamaModel;
  let adapter: LoraAdapter;
  /** computeLoraGradients with batch size 4 and with batch size 2 (response mask). */
  let direct4: ComputedGradients;
  let direct2: ComputedGradients;

  const settings = (over: Partial<Parameters<typeof storeSettings>[0]> = {}): StoreSettings =>
    storeSettings({ modelDir: fx.modelDir, adapterDir: fx.adapterDir, examples: fx.examples, shardSize: 8, ...over });

  before(async function () {
    root = tmp.make();
    fx = writeStoreFixture(root);
    model = LlamaModel.load(fx.modelDir);
    adapter = loadAdapter(fx.adapterDir, model.config);
    direct4 = await computeLoraGradients(model, adapter, fx.examples, { batchSize: 4 });
    direct2 = await computeLoraGradients(model, adapter, fx.examples, { batchSize: 2 });
    // Non-zero gradients in every block, or the comparisons below would prove little.
    for (const { name, data } of direct4.blocks) assert.ok(data.some((v) => v !== 0), `${name} is all zeros`);
  });
  after(() => {
    model.dispose();
    tmp.cleanup();
  });

  const storeDir = () => fs.mkdtempSync(path.join(root, 'store-'));

  it('stores exactly what computeLoraGradients computes (F32), streamed shard by shard in order', async () => {
    const dir = storeDir();
    const store = GradientStore.open(dir, settings());
    assert.equal(store.isComplete(), false);
    assert.deepEqual(store.missingShards(), [0, 1, 2]);
    const progress: number[] = [];
    const report = await store.compute(model, adapter, fx.examples, { batchSize: 4, onProgress: (d, t) => (assert.equal(t, 20), progress.push(d)) });
    assert.deepEqual(report, { computed: [0, 1, 2], reused: [], invalid: [] });
    assert.deepEqual(progress, [0, 4, 8, 12, 16, 20]);
    assert.ok(store.isComplete());

    const shards = [...store.iterateShards()];
    assert.deepEqual(
      shards.map((s) => [s.index, s.start, s.set.n]),
      [
        [0, 0, 8],
        [1, 8, 8],
        [2, 16, 4],
      ],
    );
    const all = store.readAll();
    assertSetEquals(all, direct4);
    // readAll is the concatenation of the shards.
    for (const { start, set } of shards) {
      set.blocks.forEach((b, i) => assert.deepEqual(b.data, all.blocks[i].data.subarray(start * b.dim, (start + set.n) * b.dim)));
      assert.deepEqual(set.losses, all.losses!.subarray(start, start + set.n));
    }

    // Files: shard-0000i.safetensors with [m, ...shape] tensors plus loss, and a manifest of everything.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['manifest.json', 'shard-00000.safetensors', 'shard-00001.safetensors', 'shard-00002.safetensors']);
    const st = SafetensorsFile.open(path.join(dir, 'shard-00002.safetensors'));
    try {
      const key = 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight';
      assert.deepEqual(st.info(key).shape, [4, 16, 4]);
      assert.equal(st.info(key).dtype, 'F32');
      assert.deepEqual(st.info('loss').shape, [4]);
      assert.equal(st.names().length, 9);
    } finally {
      st.close();
    }
    const m = readManifest(dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    assert.equal(m.tdaLabVersion, pkg.version);
    assert.equal(m.version, 1);
    assert.ok(Math.abs(Date.parse(m.created) - Date.now()) < 60_000);
    assert.deepEqual(m.settings, { ...settings(), dtype: 'F32', projection: null, shardSize: 8, mask: 'response' });
    assert.equal(m.blocks!.length, 8);
    assert.deepEqual(m.blocks![0], { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', shape: [4, 32], dim: 128 });
    assert.deepEqual(
      m.shards.map((s) => [s.index, s.start, s.count, s.file]),
      [
        [0, 0, 8, 'shard-00000.safetensors'],
        [1, 8, 8, 'shard-00001.safetensors'],
        [2, 16, 4, 'shard-00002.safetensors'],
      ],
    );

    // A re-run has nothing to do and rewrites nothing.
    const mtimes = m.shards.map((s) => fs.statSync(path.join(dir, s.file)).mtimeMs);
    const again = await GradientStore.open(dir, settings()).compute(model, adapter, fx.examples, { batchSize: 4 });
    assert.deepEqual(again, { computed: [], reused: [0, 1, 2], invalid: [] });
    assert.deepEqual(
      m.shards.map((s) => fs.statSync(path.join(dir, s.file)).mtimeMs),
      mtimes,
    );

    // Readers that only consume.
    const reader = GradientStore.openExisting(dir);
    assert.ok(reader.isComplete());
    assertSetEquals(reader.readAll(), direct4);
    assert.equal(reader.projector(), null);
  });

  it('stores F16 and BF16 within their rounding error (losses stay F32)', async () => {
    const direct = flatDirect(direct4, direct4.blocks.map((b) => b.name));
    // Round-to-nearest: F16 has 11 significant bits (relative error <= 2^-11) down to 2^-14,
    // below that subnormals with spacing 2^-24 (absolute error <= 2^-25). BF16 keeps 8 bits.
    const bound = { F16: (x: number) => Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), BF16: (x: number) => Math.abs(x) * 2 ** -8 };
    let f32Bytes = 0;
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = storeDir();
      const store = GradientStore.open(dir, settings({ dtype }));
      await store.compute(model, adapter, fx.examples, { batchSize: 4 });
      const all = store.readAll();
      assert.deepEqual(all.losses, direct4.losses);
      let worst = 0;
      let changed = 0;
      all.blocks.forEach((b, i) => {
        b.data.forEach((v, j) => {
          const x = direct[i][j];
          const err = Math.abs(v - x);
          if (err > 0) changed++;
          worst = Math.max(worst, err / bound[dtype](x));
        });
      });
      assert.ok(worst <= 1, `${dtype}: error reaches ${worst} x the rounding bound`);
      assert.ok(changed > 0, `${dtype}: nothing was rounded?`);
      const st = SafetensorsFile.open(path.join(dir, 'shard-00000.safetensors'));
      try {
        assert.equal(st.info(all.blocks[0].name).dtype, dtype);
        assert.equal(st.info('loss').dtype, 'F32');
        f32Bytes = f32Bytes || st.info(all.blocks[0].name).byteLength * 2;
        assert.equal(st.info(all.blocks[0].name).byteLength * 2, f32Bytes);
      } finally {
        st.close();
      }
    }
  });

  it('stores projected gradients equal to projecting the direct gradients (train and test alike)', async () => {
    const spec = { kind: 'rademacher' as const, dim: 48, seed: 5 };
    const dir = storeDir();
    const store = GradientStore.open(dir, settings({ projection: spec }));
    await store.compute(model, adapter, fx.examples, { batchSize: 4 });
    const all = store.readAll();
    assert.ok(all.blocks.every((b) => b.dim === 48 && b.shape.join() === '48'));
    assert.deepEqual(store.blocks!.map((b) => b.dim), Array(8).fill(48));

    const directSet: GradientSet = {
      n: 20,
      losses: direct4.losses,
      blocks: direct4.blocks,
    };
    // "Test" gradients projected by a separate projector with the store's spec: the same numbers
    // (to float rounding: the products have other shapes than the store's shards).
    for (const projector of [store.projector()!, new Projector(spec, { cacheBytes: 0 })]) {
      assert.deepEqual(projector.spec, spec);
      const projected = projector.projectSet(directSet);
      projector.dispose();
      projected.blocks.forEach((b, i) => assertAllClose(all.blocks[i].data, b.data, b.name));
    }
    assert.deepEqual(readManifest(dir).settings.projection, spec);
  });

  it('refuses to reopen a store with different settings, naming each one and the directory', async () => {
    const dir = storeDir();
    GradientStore.open(dir, settings());
    const again = (over: Parameters<typeof settings>[0]) => () => GradientStore.open(dir, settings(over));
    throwsTda(again({ mask: 'full' }), dir, "label mask: stored 'response', requested 'full'");
    throwsTda(again({ projection: { kind: 'gaussian', dim: 16, seed: 1 } }), dir, 'projection: stored none, requested gaussian(dim=16, seed=1)');
    const fewer = throwsTda(again({ examples: fx.examples.slice(0, 19) }), dir, 'dataset hash: stored', 'dataset size: stored 20, requested 19');
    assert.ok(!fewer.message.includes('label mask'), 'only the differing settings are named');
    const shuffled = [...fx.examples.slice(1), fx.examples[0]];
    throwsTda(again({ examples: shuffled }), 'dataset hash: stored');
    const otherAdapter = storeSettings({ modelDir: fx.modelDir, adapterDir: fx.adapter2Dir, examples: fx.examples, shardSize: 8 });
    const e = throwsTda(() => GradientStore.open(dir, otherAdapter), dir, 'adapter hash: stored');
    assert.ok(e.message.includes(otherAdapter.adapterHash) && e.message.includes(settings().adapterHash));
    const several = throwsTda(again({ mask: 'full', dtype: 'BF16', shardSize: 4 }), dir, 'label mask', "storage dtype: stored 'F32', requested 'BF16'", 'shard size: stored 8, requested 4');
    assert.ok(!several.message.includes('adapter hash'));
    // Same settings: fine.
    GradientStore.open(dir, settings());

    // compute() checks the examples and an adapter loaded from a directory against the manifest.
    const store = GradientStore.open(dir, settings());
    await assert.rejects(store.compute(model, adapter, fx.examples.slice(0, 19)), (err: Error) => err instanceof TdaError && err.message.includes('not the dataset'));
    const adapter2 = loadAdapter(fx.adapter2Dir, model.config);
    await assert.rejects(store.compute(model, adapter2, fx.examples), (err: Error) => err instanceof TdaError && err.message.includes('adapter hash'));
  });

  it('refuses a non-empty directory that is not a store; openExisting needs a manifest', () => {
    const dir = storeDir();
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    throwsTda(() => GradientStore.open(dir, settings()), dir, 'notes.txt', 'no manifest.json');
    throwsTda(() => GradientStore.openExisting(dir), path.join(dir, 'manifest.json'), 'not a gradient store');
  });

  it('detects corrupt shards: an error naming the file on read, recomputed on resume', async () => {
    const dir = storeDir();
    const s = settings({ shardSize: 4 });
    await GradientStore.open(dir, s).compute(model, adapter, fx.examples, { batchSize: 4 });
    const file = (i: number) => path.join(dir, `shard-0000${i}.safetensors`);
    const mtime3 = fs.statSync(file(3)).mtimeMs;

    // Shard 1 truncated.
    fs.truncateSync(file(1), Math.floor(fs.statSync(file(1)).size / 2));
    const reader = GradientStore.openExisting(dir);
    throwsTda(() => reader.readShard(1), file(1), 'corrupt');
    throwsTda(() => reader.readAll(), file(1), 'recompute');
    const it = reader.iterateShards();
    assert.equal(it.next().value!.index, 0); // streaming: shard 0 is fine
    throwsTda(() => it.next(), file(1));
    // Shard 0: same size, one byte flipped in the data (only the recorded sha256 can tell).
    const bytes = fs.readFileSync(file(0));
    bytes[bytes.length - 100] ^= 0x55;
    fs.writeFileSync(file(0), bytes);
    // Shard 2: a file present but not recorded in the manifest (killed between the two writes).
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    m.shards = m.shards.filter((r: { index: number }) => r.index !== 2);
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
    fs.writeFileSync(file(2), 'garbage');
    // A stale temp file of a dead writer.
    const stale = path.join(dir, `.${path.basename(file(3))}.tmp-999999999-abcdef`);
    fs.writeFileSync(stale, 'partial');

    const store = GradientStore.open(dir, s);
    assert.deepEqual(store.missingShards(), [2]);
    const report = await store.compute(model, adapter, fx.examples, { batchSize: 4 });
    assert.deepEqual(report.computed, [0, 1, 2]);
    assert.deepEqual(report.reused, [3, 4]);
    assert.deepEqual(
      report.invalid.map((x) => x.index),
      [0, 1],
    );
    assert.match(report.invalid[0].reason, /sha256/);
    assert.match(report.invalid[1].reason, /bytes/);
    assert.equal(fs.statSync(file(3)).mtimeMs, mtime3);
    assert.ok(!fs.existsSync(stale));
    assertSetEquals(GradientStore.openExisting(dir).readAll(), direct4);
  });

  it('stops on an abort signal between batches and resumes from the recorded shards', async () => {
    const dir = storeDir();
    const s = settings({ shardSize: 4 });
    const ctl = new AbortController();
    await assert.rejects(
      GradientStore.open(dir, s).compute(model, adapter, fx.examples, { batchSize: 2, signal: ctl.signal, onShard: () => ctl.abort() }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(
      readManifest(dir).shards.map((r) => r.index),
      [0],
    );
    const store = GradientStore.open(dir, s);
    throwsTda(() => store.readAll(), dir, 'incomplete', '4 of 5 shards missing');
    const report = await store.compute(model, adapter, fx.examples, { batchSize: 2 });
    assert.deepEqual(report, { computed: [1, 2, 3, 4], reused: [0], invalid: [] });
    assertSetEquals(store.readAll(), direct2);
  });

  it('resumes after the computing process is SIGKILLed, without recomputing finished shards', async function () {
    this.timeout(60_000);
    const dir = path.join(storeDir(), 'cache'); // created by the child
    const s = settings({ shardSize: 2 });
    const job: WorkerJob = {
      storeDir: dir,
      modelDir: fx.modelDir,
      adapterDir: fx.adapterDir,
      examplesFile: path.join(root, 'examples.json'),
      settings: s,
      batchSize: 2,
      pauseMs: 300,
    };
    const child = fork(WORKER, [JSON.stringify(job)], { cwd: ROOT, execArgv: ['--require', 'tsx/cjs'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ? null : code)));
    try {
      await pollUntil(
        () => {
          if (child.exitCode !== null) throw new Error(`worker exited early (${child.exitCode}): ${stderr}`);
          try {
            return readManifest(dir).shards.length >= 1;
          } catch {
            return false; // not created yet
          }
        },
        30_000,
        () => `no shard recorded in time; worker stderr: ${stderr}`,
      );
    } finally {
      killChild(child);
    }
    assert.equal(await exited, null, 'the worker was killed, not finished');

    const before = readManifest(dir).shards;
    assert.ok(before.length >= 1 && before.length < 10, `${before.length} shards recorded at the kill`);
    const stamps = before.map((r) => {
      const st = fs.statSync(path.join(dir, r.file));
      return [r.index, st.mtimeMs, st.ino];
    });

    const store = GradientStore.open(dir, s);
    const recorded: number[] = [];
    const report = await store.compute(model, adapter, fx.examples, { batchSize: 2, onShard: (r) => recorded.push(r.index) });
    const done = before.map((r) => r.index);
    const rest = Array.from({ length: 10 }, (_, i) => i).filter((i) => !done.includes(i));
    assert.deepEqual(report, { computed: rest, reused: done, invalid: [] });
    assert.deepEqual(recorded, rest);
    for (const [index, mtime, ino] of stamps) {
      const st = fs.statSync(path.join(dir, `shard-0000${index}.safetensors`));
      assert.equal(st.mtimeMs, mtime, `shard ${index} was rewritten`);
      assert.equal(st.ino, ino, `shard ${index} was replaced`);
    }
    assert.ok(!fs.readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temp files left');
    // Same numbers as one uninterrupted run.
    assertSetEquals(store.readAll(), direct2);
  });
});

async function pollUntil(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const t0 = Date.now();
  while (!done()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(what());
    await new Promise((r) => setTimeout(r, 20));
  }
}

function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
