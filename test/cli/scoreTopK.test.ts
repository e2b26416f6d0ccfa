import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readGradientFile } from '../../src/gradients/file';
import { GradientStore, Projector, sha256Hex } from '../../src/gradients/store';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../../src/io/safetensors';
import { Rng } from '../../src/random';
import { assertAllClose, tmpDir } from '../helpers/fixtures';
import { dot, maxRelativeError, row } from '../attribution/helpers';
import { sortedTopK } from '../attribution/topKHelpers';
import { readScoreFile, readTopKFile } from '../../src/attribution/scoreFile';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });

// Adapter order (A before B, q before v), which is not the sorted order a grads file uses.
const KEYS: [string, number[]][] = [
  ['base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', [2, 4]],
  ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [3, 2]],
];

function randomBlocks(n: number, seed: number): { name: string; shape: number[]; dim: number; data: Float32Array }[] {
  const rng = new Rng(seed);
  return KEYS.map(([name, shape]) => {
    const dim = shape[0] * shape[1];
    return { name, shape, dim, data: Float32Array.from({ length: n * dim }, () => rng.normal()) };
  });
}

/** The same gradients as a grads file and as a gradient store of `shardSize`-example shards. */
function writeBoth(file: string, dir: string, n: number, seed: number, shardSize: number): void {
  const blocks = randomBlocks(n, seed);
  const tensors: Record<string, TensorToWrite> = { loss: { shape: [n], data: new Float32Array(n) } };
  for (const b of blocks) tensors[b.name] = { shape: [n, ...b.shape], data: b.data };
  writeSafetensors(file, tensors, { mask: 'response' });
  const store = GradientStore.open(dir, { modelHash: sha256Hex('m'), adapterHash: sha256Hex('a'), datasetHash: sha256Hex(`d${seed}`), n, mask: 'response', shardSize });
  for (let i = 0; i < store.shardCount; i++) {
    const start = i * shardSize;
    const m = Math.min(shardSize, n - start);
    store.importShard(i, { n: m, losses: new Float32Array(m), blocks: blocks.map((b) => ({ ...b, data: b.data.slice(start * b.dim, (start + m) * b.dim) })) });
  }
}

function tensorsOf(file: string): Map<string, { dtype: string; bytes: Buffer }> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.names().map((n) => [n, { dtype: f.info(n).dtype, bytes: Buffer.from(f.readRaw(n)) }]));
  } finally {
    f.close();
  }
}

describe('tda-lab score --top-k and gradient store directories (command line)', function () {
  this.timeout(300000);
  let work: string;
  const p = (f: string) => path.join(work, f);
  before(() => {
    work = tmpDir();
    writeBoth(p('train.safetensors'), p('train-store'), 37, 1, 8);
    writeBoth(p('test.safetensors'), p('test-store'), 5, 2, 2);
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  const score = (method: string, train: string, test: string, out: string, extra: string[] = []) => {
    const r = cli(['score', '--method', method, '--train', p(train), '--test', p(test), '--out', p(out), '--workers', '0', ...extra]);
    assert.equal(r.status, 0, r.stderr);
    return r;
  };

  it('a store directory as --train streams to the same scores as the grads file; --top-k keeps the sorted best k', () => {
    score('gradDot', 'train.safetensors', 'test.safetensors', 'full.safetensors');
    score('gradDot', 'train-store', 'test.safetensors', 'full-store.safetensors');
    const full = readScoreFile(p('full.safetensors')).scores;
    const fromStore = readScoreFile(p('full-store.safetensors')).scores;
    assert.deepEqual([fromStore.nTest, fromStore.nTrain], [full.nTest, full.nTrain]);
    // The store streams other chunk shapes than the file: equal to float rounding.
    assertAllClose(fromStore.data, full.data, 'store vs file');

    const r = score('gradDot', 'train-store', 'test-store', 'top.safetensors', ['--top-k', '4']);
    assert.match(r.stderr, /top 4 of 37 training examples for 5 queries/);
    const { topK, metadata } = readTopKFile(p('top.safetensors'));
    assert.deepEqual([topK.nTest, topK.k, topK.nTrain], [5, 4, 37]);
    const want = sortedTopK(full.data, 5, 37, 4);
    assert.deepEqual(Array.from(topK.indices), want.indices.flat());
    assertAllClose(Array.from(topK.scores), want.scores.flat(), 'top-k scores');
    assert.equal(metadata.format, 'tda-lab.topk');
    assert.equal(metadata.method, 'gradDot');
    assert.equal(metadata.mask, 'response');
    assert.match(metadata.sign, /positive = the training example helps/);
    assert.equal(metadata.k, '4');
    assert.equal(metadata.n_train, '37');
    const t = tensorsOf(p('top.safetensors'));
    assert.deepEqual([t.get('indices')!.dtype, t.get('scores')!.dtype], ['I32', 'F32']);
  });

  it('DataInf --top-k equals the top-k of its full matrix and records the damping', () => {
    score('dataInf', 'train-store', 'test.safetensors', 'di-full.safetensors');
    score('dataInf', 'train-store', 'test.safetensors', 'di-top.safetensors', ['--top-k', '6']);
    const full = readScoreFile(p('di-full.safetensors'));
    const { topK, metadata } = readTopKFile(p('di-top.safetensors'));
    const want = sortedTopK(full.scores.data, 5, 37, 6);
    assert.deepEqual(Array.from(topK.indices), want.indices.flat());
    assert.deepEqual(Array.from(topK.scores), want.scores.flat());
    assert.equal(metadata.damping, full.metadata.damping);
  });

  it('--top-k with --shard i/n, merged, equals the single run exactly (indices stay I32)', () => {
    score('gradCos', 'train-store', 'test.safetensors', 'cos.safetensors', ['--top-k', '3']);
    for (const i of [0, 1]) score('gradCos', 'train-store', 'test.safetensors', `cos${i}.safetensors`, ['--top-k', '3', '--shard', `${i}/2`]);
    const r = cli(['merge', '--out', p('cos-merged.safetensors'), p('cos1.safetensors'), p('cos0.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(tensorsOf(p('cos-merged.safetensors')), tensorsOf(p('cos.safetensors')));
    const merged = readTopKFile(p('cos-merged.safetensors'));
    assert.equal(merged.metadata.format, 'tda-lab.topk');
    assert.equal(merged.metadata.merged_from_shards, '2');
    // A top-k shard does not merge with a full-matrix shard.
    score('gradCos', 'train-store', 'test.safetensors', 'cosfull1.safetensors', ['--shard', '1/2']);
    const bad = cli(['merge', '--out', p('never.safetensors'), p('cos0.safetensors'), p('cosfull1.safetensors')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /cosfull1\.safetensors: 'format': 'format' is "tda-lab\.scores" but "tda-lab\.topk"/);
  });

  it('a projected training store: test gradients from a file are projected the same way', () => {
    const spec = { kind: 'gaussian' as const, dim: 3, seed: 5 };
    const store = GradientStore.open(p('proj-store'), { modelHash: sha256Hex('m'), adapterHash: sha256Hex('a'), datasetHash: sha256Hex('p'), n: 12, mask: 'response', projection: spec, shardSize: 5 });
    const blocks = randomBlocks(12, 7);
    for (let i = 0; i < store.shardCount; i++) {
      const m = Math.min(5, 12 - i * 5);
      store.importShard(i, { n: m, losses: new Float32Array(m), blocks: blocks.map((b) => ({ ...b, data: b.data.slice(i * 5 * b.dim, (i * 5 + m) * b.dim) })) });
    }
    score('gradDot', 'proj-store', 'test.safetensors', 'proj.safetensors', ['--top-k', '4']);
    // Reference: the test file's gradients projected with the same spec, dotted in float64 with the stored ones.
    const trainP = store.readAll();
    const file = readGradientFile(p('test.safetensors')).set;
    const projector = new Projector(spec);
    const testP = projector.projectSet({ n: 5, blocks: KEYS.map(([name]) => file.blocks.find((b) => b.name === name)!) });
    projector.dispose();
    const full: number[] = [];
    for (let q = 0; q < 5; q++) for (let i = 0; i < 12; i++) full.push(trainP.blocks.reduce((a, _, l) => a + dot(row(testP, l, q), row(trainP, l, i)), 0));
    const want = sortedTopK(full, 5, 12, 4);
    const { topK } = readTopKFile(p('proj.safetensors'));
    assert.deepEqual(Array.from(topK.indices), want.indices.flat());
    assert.ok(maxRelativeError(topK.scores, want.scores.flat()) < 1e-5);
  });

  it('k above nTrain is clamped to every training example, and says so', () => {
    const r = score('gradDot', 'train.safetensors', 'test.safetensors', 'all.safetensors', ['--top-k', '100']);
    assert.match(r.stderr, /top 37 of 37 .*--top-k 100 clamped to the 37 training examples/);
    const { topK } = readTopKFile(p('all.safetensors'));
    assert.equal(topK.k, 37);
  });

  it('metrics and the score reader refuse a top-k file, naming it and the field', () => {
    fs.writeFileSync(p('labels.json'), JSON.stringify({ positives: [[0], [1], [2], [3], [4]] }));
    const r = cli(['metrics', '--scores', p('top.safetensors'), '--labels', p('labels.json'), '--out', p('m.csv')]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /top\.safetensors: 'format': is a top-k file .*metrics needs the full \[nTest, nTrain\] score matrix/);
    assert.ok(!fs.existsSync(p('m.csv')));
    assert.throws(() => readScoreFile(p('top.safetensors')), /'format': is a top-k file/);
  });

  it('bad inputs: an incomplete store, a directory that is not a store, a bad k; one line each, nothing written', () => {
    const partial = p('partial-store');
    const store = GradientStore.open(partial, { modelHash: sha256Hex('m'), adapterHash: sha256Hex('a'), datasetHash: sha256Hex('x'), n: 10, mask: 'response', shardSize: 4 });
    store.importShard(0, { n: 4, losses: new Float32Array(4), blocks: randomBlocks(4, 9) });
    fs.mkdirSync(p('empty-dir'));
    const cases: [string[], RegExp][] = [
      [['--train', partial], /partial-store: gradient store is incomplete: 2 of 3 shards missing \(1, 2\)/],
      [['--train', p('empty-dir')], /empty-dir.*manifest\.json.*not a gradient store/],
      [['--test', partial], /partial-store: gradient store is incomplete/],
    ];
    for (const [override, pattern] of cases) {
      const args: Record<string, string> = { '--method': 'gradDot', '--train': p('train-store'), '--test': p('test.safetensors'), '--out': p('never.safetensors'), '--top-k': '3' };
      for (let k = 0; k < override.length; k += 2) args[override[k]] = override[k + 1];
      const r = cli(['score', ...Object.entries(args).flat()]);
      assert.equal(r.status, 1, `expected failure: ${override.join(' ')}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
      assert.ok(!fs.existsSync(p('never.safetensors')));
    }
    // Option parsing errors come from the parser (the message, then the usage).
    const r = cli(['score', '--method', 'gradDot', '--train', p('train-store'), '--test', p('test.safetensors'), '--out', p('never.safetensors'), '--top-k', '0']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /option '--top-k <k>' argument '0' is invalid\. must be a whole number >= 1/);
    assert.ok(!fs.existsSync(p('never.safetensors')));
  });
});
