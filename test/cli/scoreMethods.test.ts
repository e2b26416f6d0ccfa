/**
 * `tda-lab score` over the method registry: every method is reachable from the command line
 * (embedding methods from `tda-lab embed` files, text methods from JSONL), flags come from
 * the descriptors, and every score file carries the resolved settings that merge checks.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readScoreFile } from '../../src/attribution/scoreFile';
import { METHODS } from '../../src/attribution/registry';
import { optionFlag } from '../../src/attribution/method';
import { writeSafetensors, TensorToWrite } from '../../src/io/safetensors';
import { Rng } from '../../src/random';
import { FIXTURE_DIR, fixtureSequences, tmpDir } from '../helpers/fixtures';
import { readEmbeddingFile } from '../../src/cli/embed';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

describe('tda-lab score: every method of the registry from the command line', function () {
  this.timeout(300000);
  let work: string;
  const p = (f: string) => path.join(work, f);
  before(() => {
    work = tmpDir();
    const seqs = fixtureSequences();
    fs.writeFileSync(p('ids.jsonl'), seqs.map((s) => JSON.stringify({ input_ids: s.inputIds, prompt_length: s.promptLength })).join('\n') + '\n');
    const texts = [
      { prompt: 'Where does Ana live?', response: 'Ana lives in Porto.' },
      { prompt: 'Name a baker.', response: 'Bo bakes bread.' },
      { prompt: 'Where is Lima?', response: 'Lima is in Peru.' },
    ];
    fs.writeFileSync(p('train.jsonl'), texts.map((t) => JSON.stringify(t)).join('\n') + '\n');
    fs.writeFileSync(p('test.jsonl'), JSON.stringify({ prompt: 'Who lives in Porto?', response: 'Ana does.' }) + '\n');
    const rng = new Rng(5);
    const grads = (n: number): Record<string, TensorToWrite> => ({
      'x.lora_A.weight': { shape: [n, 2, 3], data: Float32Array.from({ length: n * 6 }, () => rng.normal()) },
      'x.lora_B.weight': { shape: [n, 3, 2], data: Float32Array.from({ length: n * 6 }, () => rng.normal()) },
    });
    writeSafetensors(p('train-grads.safetensors'), grads(6), { mask: 'response' });
    writeSafetensors(p('test-grads.safetensors'), grads(4), { mask: 'response' });
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('the help lists every method with its summary, and every option flag once', () => {
    const r = cli(['score', '--help']);
    assert.equal(r.status, 0, r.stderr);
    for (const m of METHODS) assert.ok(r.stdout.includes(m.name) && r.stdout.includes(m.summary.slice(0, 30)), m.name);
    for (const key of new Set(METHODS.flatMap((m) => m.options.map((o) => o.key)))) {
      assert.equal(r.stdout.split(`${optionFlag(key)} <value>`).length - 1, 1, optionFlag(key));
    }
  });

  it('embed + repSim: the score file is the cosine of the embedded rows', () => {
    for (const f of ['train', 'test']) {
      const r = cli(['embed', '--model', FIXTURE_DIR, '--adapter', path.join(FIXTURE_DIR, 'adapter'), '--data', p('ids.jsonl'), '--out', p(`${f}-emb.safetensors`)]);
      assert.equal(r.status, 0, r.stderr);
    }
    const r = cli(['score', '--method', 'repSim', '--train', p('train-emb.safetensors'), '--test', p('test-emb.safetensors'), '--out', p('repsim.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    const train = readEmbeddingFile(p('train-emb.safetensors')).set;
    const got = readScoreFile(p('repsim.safetensors'));
    assert.equal(got.scores.nTrain, 3);
    for (let q = 0; q < 3; q++) {
      for (let i = 0; i < 3; i++) {
        const want = cosine(train.data.subarray(q * train.dim, (q + 1) * train.dim), train.data.subarray(i * train.dim, (i + 1) * train.dim));
        assert.ok(Math.abs(got.scores.data[q * 3 + i] - want) < 1e-6, `[${q}, ${i}]`);
      }
    }
    assert.deepEqual(JSON.parse(got.metadata.settings), { method: 'repSim', kind: 'cosine', inputs: { mask: 'none', pool: 'last' } });
  });

  it('embed --pool last-prompt embeds the last prompt token: the prompts alone, pooled at their last token, give the same rows', () => {
    const seqs = fixtureSequences();
    // The prompts alone (a file line needs a response; `last` pooling ignores the split).
    fs.writeFileSync(p('prompts.jsonl'), seqs.map((s) => JSON.stringify({ input_ids: s.inputIds.slice(0, s.promptLength), prompt_length: 0 })).join('\n') + '\n');
    const embed = (data: string, pool: string, out: string) => {
      const r = cli(['embed', '--model', FIXTURE_DIR, '--adapter', path.join(FIXTURE_DIR, 'adapter'), '--data', p(data), '--pool', pool, '--out', p(out)]);
      assert.equal(r.status, 0, r.stderr);
      return readEmbeddingFile(p(out));
    };
    const got = embed('ids.jsonl', 'last-prompt', 'lp-emb.safetensors');
    const want = embed('prompts.jsonl', 'last', 'prompts-emb.safetensors');
    assert.equal(got.metadata.pool, 'last-prompt');
    const diff = Math.max(...Array.from(got.set.data, (v, i) => Math.abs(v - want.set.data[i])));
    assert.ok(diff < 1e-4 * Math.max(...Array.from(want.set.data, Math.abs)), `largest difference ${diff}`);
    const bad = cli(['embed', '--model', FIXTURE_DIR, '--data', p('ids.jsonl'), '--pool', 'first', '--out', p('never.safetensors')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /must be one of last-prompt, last, mean/);
  });

  it('density scores are Gaussian log-kernels with the given bandwidth', () => {
    const r = cli(['score', '--method', 'density', '--bandwidth', '2', '--train', p('train-emb.safetensors'), '--test', p('test-emb.safetensors'), '--out', p('kde.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    const e = readEmbeddingFile(p('train-emb.safetensors')).set;
    const s = readScoreFile(p('kde.safetensors')).scores;
    // The log-kernel of the pair, without the normalising constant: -|x_q - x_i|^2 / (2 h^2).
    let d2 = 0;
    for (let j = 0; j < e.dim; j++) d2 += (e.data[j] - e.data[e.dim + j]) ** 2;
    const want = -d2 / 8;
    assert.ok(Math.abs(s.data[1] - want) < 1e-3 * Math.abs(want), `${s.data[1]} vs ${want}`);
  });

  it('bm25 reads JSONL texts; the query that shares words with one training text ranks it first', () => {
    const r = cli(['score', '--method', 'bm25', '--k1', '1.2', '--train', p('train.jsonl'), '--test', p('test.jsonl'), '--out', p('bm25.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    const got = readScoreFile(p('bm25.safetensors'));
    const row = Array.from(got.scores.data);
    assert.equal(row.indexOf(Math.max(...row)), 0);
    assert.equal(row[1], 0, 'no shared word, no score');
    assert.deepEqual(JSON.parse(got.metadata.settings), { method: 'bm25', k1: 1.2, b: 0.75, inputs: {} });
  });

  it('records the resolved settings of a gradient method (damping per block, iterations) and refuses flags the method does not take', () => {
    const base = ['--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors')];
    const r = cli(['score', '--method', 'lissa', '--iterations', '30', ...base, '--out', p('lissa.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    const settings = JSON.parse(readScoreFile(p('lissa.safetensors')).metadata.settings);
    assert.equal(settings.method, 'lissa');
    assert.equal(settings.iterations, 30);
    assert.equal(settings.dampingScale, 0.1);
    assert.deepEqual(Object.keys(settings.damping).sort(), ['x.lora_A.weight', 'x.lora_B.weight']);
    assert.deepEqual(Object.keys(settings.convergence).sort(), ['x.lora_A.weight', 'x.lora_B.weight']);
    assert.equal(settings.maxIterations, undefined, 'a fixed count has no cap');
    assert.deepEqual(settings.inputs, { mask: 'response', projection: null });
    const bad = cli(['score', '--method', 'gradDot', '--iterations', '30', ...base, '--out', p('never.safetensors')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--iterations.*gradDot does not take this option \(it takes --workers\)/);
    const bad2 = cli(['score', '--method', 'dataInf', '--damping-scale', '-1', ...base, '--out', p('never.safetensors')]);
    assert.match(bad2.stderr, /--damping-scale.*must be > 0, got -1/);
    assert.ok(!fs.existsSync(p('never.safetensors')));
  });

  it('cg takes --tolerance and --max-iterations, records what each block reached, agrees with exact, and its shards merge with the worst residual', () => {
    const base = ['--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors')];
    const r = cli(['score', '--method', 'cg', '--tolerance', '1e-4', '--max-iterations', '500', ...base, '--out', p('cg.safetensors')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.includes('did not reach'), false, r.stderr);
    const got = readScoreFile(p('cg.safetensors'));
    const settings = JSON.parse(got.metadata.settings);
    assert.equal(settings.method, 'cg');
    assert.equal(settings.tolerance, 1e-4);
    assert.equal(settings.maxIterations, 500);
    assert.equal(settings.unconverged, 'warn');
    for (const block of ['x.lora_A.weight', 'x.lora_B.weight']) {
      const c = settings.convergence[block];
      assert.ok(c.converged && c.relativeResidual <= 1e-4 && c.iterations >= 1 && c.iterations <= 500, JSON.stringify(c));
    }
    assert.equal(cli(['score', '--method', 'exact', ...base, '--out', p('exact.safetensors')]).status, 0);
    const exact = Array.from(readScoreFile(p('exact.safetensors')).scores.data);
    const diff = Math.max(...Array.from(got.scores.data, (v, i) => Math.abs(v - exact[i])));
    assert.ok(diff < 1e-3 * Math.max(...exact.map(Math.abs)), `cg vs exact: ${diff}`);

    for (const i of [0, 1]) assert.equal(cli(['score', '--method', 'cg', '--tolerance', '1e-4', '--max-iterations', '500', ...base, '--out', p(`cg${i}.safetensors`), '--shard', `${i}/2`]).status, 0);
    const m = cli(['merge', '--out', p('cg-merged.safetensors'), p('cg0.safetensors'), p('cg1.safetensors')]);
    assert.equal(m.status, 0, m.stderr);
    const parts = [0, 1].map((i) => JSON.parse(readScoreFile(p(`cg${i}.safetensors`)).metadata.settings).convergence);
    const merged = JSON.parse(readScoreFile(p('cg-merged.safetensors')).metadata.settings).convergence;
    for (const block of ['x.lora_A.weight', 'x.lora_B.weight']) {
      assert.equal(merged[block].relativeResidual, Math.max(parts[0][block].relativeResidual, parts[1][block].relativeResidual));
      assert.equal(merged[block].iterations, Math.max(parts[0][block].iterations, parts[1][block].iterations));
    }
    const unconverged = cli(['score', '--method', 'cg', '--max-iterations', '1', '--unconverged', 'fail', ...base, '--out', p('never.safetensors')]);
    assert.equal(unconverged.status, 1);
    assert.match(unconverged.stderr, /'x\.lora_[AB]\.weight': cg: \d of 2 LoRA tensors did not reach relative residual 0\.001/);
    assert.ok(!fs.existsSync(p('never.safetensors')));
  });

  it('refuses test and training gradients taken at different checkpoints (adapters)', () => {
    const rng = new Rng(9);
    const at = (adapter: string, n: number, file: string) =>
      writeSafetensors(p(file), { 'x.lora_A.weight': { shape: [n, 2, 3], data: Float32Array.from({ length: n * 6 }, () => rng.normal()) } }, { mask: 'response', adapter });
    at('/runs/lora/checkpoint-2', 5, 'ck2.safetensors');
    at('/runs/lora/checkpoint-3', 2, 'ck3.safetensors');
    const r = cli(['score', '--method', 'gradDot', '--train', p('ck2.safetensors'), '--test', p('ck3.safetensors'), '--out', p('never.safetensors')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ck3\.safetensors: 'adapter': gradients were taken at adapter \/runs\/lora\/checkpoint-3 but the training gradients at \/runs\/lora\/checkpoint-2/);
    at('/runs/lora/checkpoint-2', 2, 'ck2-test.safetensors');
    const ok = cli(['score', '--method', 'gradDot', '--train', p('ck2.safetensors'), '--test', p('ck2-test.safetensors'), '--out', p('ck2-scores.safetensors')]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(readScoreFile(p('ck2-scores.safetensors')).metadata.settings).inputs.checkpoint, '/runs/lora/checkpoint-2');
  });

  it("refuses the methods that need each checkpoint's optimizer state (less, trackStar), pointing at the library", () => {
    for (const method of ['less', 'trackStar']) {
      const r = cli(['score', '--method', method, '--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors'), '--out', p(`${method}.safetensors`)]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /'--method'.*optimizer state.*createScorer/);
      assert.ok(!fs.existsSync(p(`${method}.safetensors`)));
    }
  });

  it('merge refuses score shards made with different settings, naming the setting', () => {
    const base = ['--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors')];
    assert.equal(cli(['score', '--method', 'dataInf', ...base, '--shard', '0/2', '--out', p('s0.safetensors')]).status, 0);
    assert.equal(cli(['score', '--method', 'dataInf', '--damping-scale', '0.2', ...base, '--shard', '1/2', '--out', p('s1.safetensors')]).status, 0);
    const r = cli(['merge', '--out', p('merged.safetensors'), p('s0.safetensors'), p('s1.safetensors')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /s1\.safetensors.*settings\.damping/);
  });
});
