/**
 * `reproduce lds` in a configuration smaller than --quick (same code): the run folder has
 * every file, and the LDS and leave-one-out correlations recomputed from those files by an
 * independent transcription (safetensors parsed by hand, Spearman by counting) equal the
 * tables it wrote.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { reproduceLds } from '../../src/cli/reproduceLds';
import { EmbeddedDefault, loadEmbeddedDefault } from '../../src/experiments/embedded';
import { encodeExample } from '../../src/experiments/pipeline';
import { loadAdapter } from '../../src/model/adapter';
import { listCheckpoints } from '../../src/model/checkpoints';
import { computeLosses } from '../../src/model/loss';
import { tmpDir } from '../helpers/fixtures';
import { bruteLds, bruteSpearman } from '../eval/ldsReference';

/** `scores` of a score file, parsed from the safetensors layout directly. */
function readScoresByHand(file: string): number[][] {
  const buf = fs.readFileSync(file);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8'));
  const t = header.scores;
  assert.equal(t.dtype, 'F32');
  const [rows, cols] = t.shape;
  const start = 8 + headerLength + t.data_offsets[0];
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) out.push(Array.from({ length: cols }, (_, c) => buf.readFloatLE(start + 4 * (r * cols + c))));
  return out;
}

function readCsv(file: string): Record<string, string>[] {
  const [head, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n');
  const cols = head.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 || (Number.isNaN(a) && Number.isNaN(b)), `${what}: ${a} vs ${b}`);

describe('reproduce lds (a configuration smaller than --quick)', function () {
  this.timeout(400000);
  let env: EmbeddedDefault;
  let work: string;
  before(() => {
    env = loadEmbeddedDefault();
    work = tmpDir('tda-lds-');
  });
  after(() => {
    env.model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('writes lds.csv, subsets.json, outcomes.csv and scores/, and the LDS recomputed from them equals lds.csv', async () => {
    const dir = path.join(work, 'run');
    fs.mkdirSync(dir);
    const nTrain = 64;
    const M = 6;
    const settings = { nTrain, epochs: 2, looExamples: 3, brittleQueries: 1, brittleKs: [16], gradientMethods: ['gradDot', 'dataInf'] };
    const { result } = await reproduceLds(
      env,
      dir,
      {
        seeds: [5],
        subsets: M,
        fraction: 0.5,
        workers: 2,
        experiment: settings,
        log: () => undefined,
        progress: () => undefined,
      },
      { test: true },
    );
    const expectedMethods = ['bm25', 'repSim', 'gradDot', 'dataInf', 'tracinCP', 'less', 'trackStar', ...['repSim', 'gradDot', 'dataInf'].flatMap((m) => ['debias', 'denoise', 'DDA'].map((v) => `${m}.${v}`))];
    const lds = readCsv(path.join(dir, 'lds.csv'));
    assert.equal(fs.readFileSync(path.join(dir, 'lds.csv'), 'utf8').split('\n')[0], 'method,lds,lds_lo,lds_hi');
    assert.deepEqual(lds.map((r) => r.method).sort(), [...expectedMethods].sort());

    const run = path.join(dir, 'seed-5');
    const subsets: number[][] = JSON.parse(fs.readFileSync(path.join(run, 'subsets.json'), 'utf8')).subsets;
    assert.equal(subsets.length, M);
    for (const s of subsets) {
      assert.equal(s.length, nTrain / 2);
      assert.equal(new Set(s).size, s.length);
      assert.ok(s.every((i) => Number.isInteger(i) && i >= 0 && i < nTrain));
    }
    assert.notDeepEqual(subsets[0], subsets[1], 'subsets are drawn independently');
    const outcomes = readCsv(path.join(run, 'outcomes.csv'));
    const nQuery = result.runs[0].queries.length;
    assert.equal(outcomes.length, M * nQuery);
    const loss = Array.from({ length: M }, () => new Array<number>(nQuery).fill(NaN));
    for (const o of outcomes) loss[Number(o.subset)][Number(o.query)] = Number(o.loss);
    assert.ok(loss.flat().every((v) => Number.isFinite(v) && v > 0), 'one positive loss per subset and query');

    const looRows = readCsv(path.join(run, 'loo.csv'));
    const full = looRows.filter((r) => r.example === '-1').map((r) => Number(r.loss));
    const looExamples = [...new Set(looRows.map((r) => Number(r.example)).filter((e) => e >= 0))];
    assert.equal(looExamples.length, 3);
    const looOverall = readCsv(path.join(dir, 'loo.csv'));
    for (const row of lds) {
      const scores = readScoresByHand(path.join(run, 'scores', `${row.method}.safetensors`));
      assert.equal(scores.length, nQuery);
      assert.equal(scores[0].length, nTrain);
      const want = bruteLds(scores, subsets, loss);
      close(Number(row.lds), want.mean, `${row.method} LDS`);
      assert.ok(Number(row.lds_lo) <= Number(row.lds) && Number(row.lds) <= Number(row.lds_hi), `${row.method}: interval around the estimate`);
      // Leave-one-out: Spearman over the left-out examples of score against the loss increase, mean over queries.
      const perQuery = scores.map((r, q) =>
        bruteSpearman(
          looExamples.map((i) => r[i]),
          looExamples.map((i) => Number(looRows.find((x) => Number(x.example) === i && Number(x.query) === q)!.loss) - full[q]),
        ),
      );
      const ok = perQuery.filter((v) => !Number.isNaN(v));
      close(Number(looOverall.find((r) => r.method === row.method)!.loo), ok.reduce((a, b) => a + b, 0) / ok.length, `${row.method} LOO`);
    }
    // A retraining on a worker reproduces the full-set run: the leave-one-out baseline (all
    // examples kept) gives the queries the losses of the saved final checkpoint, computed here.
    const queries = fs.readFileSync(path.join(run, 'queries.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const last = listCheckpoints(path.join(dir, 'checkpoints', 'seed-5')).slice(-1)[0];
    const here = computeLosses(env.model, loadAdapter(last.dir, env.model.config), queries.map((q) => encodeExample(env.tokenizer, q)), { padId: env.tokenizer.padId ?? 0 });
    here.forEach((l, q) => assert.ok(Math.abs(l - full[q]) < 1e-4, `query ${q}: ${l} here, ${full[q]} retrained`));
    const train = fs.readFileSync(path.join(run, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(train.filter((t) => t.label === 'canary').length, 16);
    assert.ok(queries.some((q) => q.label === 'hallucination'), "some queries answer the canaries' country");

    const brittle = readCsv(path.join(dir, 'brittleness.csv'));
    const tested = new Set(brittle.map((b) => b.query));
    assert.ok(tested.size <= 1);
    for (const q of tested) {
      const methods = brittle.filter((b) => b.query === q).map((b) => b.method).sort();
      assert.deepEqual(methods, ['bm25', 'dataInf', 'gradDot', 'less', 'random', 'repSim', 'tracinCP', 'trackStar']);
      for (const b of brittle) assert.ok(b.k_flip === '' || b.k_flip === '16', `k_flip ${b.k_flip}`);
    }
    assert.ok(fs.existsSync(path.join(dir, 'report.html')));

    // Resuming the folder reuses the complete seed (nothing is retrained) and writes the same tables;
    // resuming with other settings is refused, naming the run file and the setting.
    const before = fs.readFileSync(path.join(dir, 'lds.csv'), 'utf8');
    const lines: string[] = [];
    const resumeWith = (subsetsPerRun: number) =>
      reproduceLds(env, dir, { seeds: [5], subsets: subsetsPerRun, fraction: 0.5, workers: 2, resume: true, experiment: settings, log: (l) => lines.push(l), progress: () => undefined }, { test: true });
    const again = await resumeWith(M);
    assert.ok(lines.some((l) => /seed 5: complete in the run folder, reused/.test(l)), lines.join('\n'));
    assert.equal(again.result.runs.length, 1);
    assert.equal(fs.readFileSync(path.join(dir, 'lds.csv'), 'utf8'), before);
    await assert.rejects(resumeWith(M + 1), (e: Error) => e.name === 'TdaError' && /seed-5\/run\.json/.test(e.message) && /settings\.subsets/.test(e.message));
  });

  it('refuses a fraction outside (0, 1) on the command line', () => {
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, '..', 'cli', 'tdaLabFromSources.ts'), 'reproduce', 'lds', '--fraction', '1.5'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /fraction/);
    assert.match(r.stderr, /\(0, 1\)/);
  });
});
