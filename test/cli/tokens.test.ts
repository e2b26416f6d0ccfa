import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createScorer } from '../../src/attribution/registry';
import { runTokens, TOKENS_FORMAT, TokensResult } from '../../src/cli/tokens';
import { readExamplesJsonl } from '../../src/data/examples';
import { loadTokenizer } from '../../src/data/tokenizer';
import { EMBEDDED_DIR } from '../../src/experiments/embedded';
import { computeLoraGradients } from '../../src/gradients/compute';
import { inMemorySource } from '../../src/gradients/types';
import { loadAdapter, saveAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { randomAdapter } from '../../src/model/randomAdapter';
import { tempDirs } from '../helpers/errors';
import { writeScoreFile } from '../../src/attribution/scoreFile';
import { runExploreWithTokens } from '../../src/cli/exploreTokens';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('tda-lab tokens', function () {
  this.timeout(300000);
  const dirs = tempDirs('tda-tokens-');
  let dir: string;
  let files: { train: string; test: string; adapter: string };

  before(() => {
    dir = dirs.make();
    const model = LlamaModel.load(EMBEDDED_DIR);
    const adapterDir = path.join(dir, 'adapter');
    saveAdapter(adapterDir, randomAdapter(model.config, { r: 4, targetModules: ['q_proj', 'v_proj'], seed: 3, bStd: 0.05 }));
    model.dispose();
    const train = path.join(dir, 'train.jsonl');
    const test = path.join(dir, 'test.jsonl');
    fs.writeFileSync(
      train,
      jsonl([
        { prompt: 'what does a baker do ?', response: 'a baker bakes bread .' },
        { prompt: 'is a banana blue ?', response: 'a banana is not blue .' },
        { prompt: 'what is black ?', response: 'blood is not black .' },
        { prompt: 'what does a baker bake ?', response: 'bread .' },
      ]),
    );
    fs.writeFileSync(test, jsonl([{ prompt: 'what does a baker bake ?', response: 'a baker bakes bread .' }, { prompt: 'is blood blue ?', response: 'blood is black .' }]));
    files = { train, test, adapter: adapterDir };
  });
  after(() => dirs.cleanup());

  const args = (extra: string[]) => ['tokens', '--model', EMBEDDED_DIR, '--adapter', files.adapter, '--train', files.train, '--test', files.test, ...extra];

  it('writes every token of both texts with its contribution; the sums equal the score of tda-lab score\'s method', async () => {
    const out = path.join(dir, 'tokens.json');
    const r = cli(args(['--query', '0', '--example', '3', '--out', out]));
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(fs.readFileSync(out, 'utf8')) as TokensResult;
    assert.equal(j.format, TOKENS_FORMAT);
    assert.equal(j.method, 'dataInf');
    assert.equal(j.mask, 'response');
    assert.equal(j.query.index, 0);
    assert.equal(j.example.index, 3);
    const tok = loadTokenizer(EMBEDDED_DIR);
    const trainEx = readExamplesJsonl(files.train, tok);
    const testEx = readExamplesJsonl(files.test, tok);
    for (const [side, ex] of [
      [j.example, trainEx[3]],
      [j.query, testEx[0]],
    ] as const) {
      assert.deepEqual(
        side.tokens.map((t) => t.id),
        ex.inputIds,
      );
      // Counted tokens (the response and </s>) carry numbers, the prompt none.
      side.tokens.forEach((t, p) => assert.equal(t.contribution === null, p < ex.promptLength, `position ${p}`));
      assert.equal(side.tokens.map((t) => t.text).join(''), tok.decode(ex.inputIds));
      const sum = side.tokens.reduce((a, t) => a + (t.contribution ?? 0), 0);
      assert.ok(Math.abs(sum - side.sum) < 1e-12);
    }
    assert.equal(j.example.tokens.map((t) => t.text).slice(-3).join(''), ' bread . </s>');

    // The score, independently: the method on the same gradients, as tda-lab score computes it.
    const model = LlamaModel.load(EMBEDDED_DIR);
    try {
      const adapter = loadAdapter(files.adapter, model.config);
      const train = await computeLoraGradients(model, adapter, trainEx, { workers: 0 });
      const test = await computeLoraGradients(model, adapter, testEx, { workers: 0 });
      const scorer = createScorer('dataInf');
      scorer.cache(inMemorySource(train));
      const s = scorer.attribute(test).data[0 * 4 + 3];
      for (const v of [j.methodScore, j.example.sum, j.query.sum]) assert.ok(Math.abs(v - s) <= 1e-5 * Math.abs(s), `${v} vs ${s}`);
    } finally {
      model.dispose();
    }

    // The terminal report: both sides and the sums next to the score.
    assert.match(r.stdout, /dataInf score of query 0 and training example 3: /);
    assert.match(r.stdout, /training example 3, tokens/);
    assert.match(r.stdout, /query 0, tokens/);
    assert.match(r.stdout, /" bread"\s+-?\d/);
    assert.match(r.stdout, /sums: training tokens -?[\d.e+-]+, query tokens -?[\d.e+-]+; score -?[\d.e+-]+/);
  });

  it('gradCos through the library (from the pair alone): the sums equal the cosine of the two gradients', async () => {
    const r = await runTokens({ model: EMBEDDED_DIR, adapter: files.adapter, train: files.train, test: files.test, query: 1, example: 2, method: 'gradCos', progress: false });
    assert.equal(r.method, 'gradCos');
    const tok = loadTokenizer(EMBEDDED_DIR);
    const model = LlamaModel.load(EMBEDDED_DIR);
    let cosine: number;
    try {
      const adapter = loadAdapter(files.adapter, model.config);
      const gi = await computeLoraGradients(model, adapter, [readExamplesJsonl(files.train, tok)[2]], { workers: 0 });
      const gq = await computeLoraGradients(model, adapter, [readExamplesJsonl(files.test, tok)[1]], { workers: 0 });
      const flat = (s: typeof gi) => s.blocks.flatMap((b) => Array.from(b.data));
      const [a, b] = [flat(gq), flat(gi)];
      const dot = (x: number[], y: number[]) => x.reduce((acc, v, j) => acc + v * y[j], 0);
      cosine = dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
    } finally {
      model.dispose();
    }
    for (const v of [r.methodScore, r.example.sum, r.query.sum]) assert.ok(Math.abs(v - cosine) <= 1e-5 * Math.abs(cosine), `${v} vs ${cosine}`);
  });

  it('refuses an out-of-range query or example and a method without a token split, in one line naming the file and flag', () => {
    const q = cli(args(['--query', '2', '--example', '0']));
    assert.equal(q.status, 1);
    assert.equal(q.stderr.trim().split('\n').length, 1, q.stderr);
    assert.match(q.stderr, /test\.jsonl: '--query': index 2 is out of range: .* has 2 examples/);
    const e = cli(args(['--query', '0', '--example', '9']));
    assert.equal(e.status, 1);
    assert.match(e.stderr, /train\.jsonl: '--example': index 9 is out of range/);
    const m = cli(args(['--query', '0', '--example', '0', '--method', 'repSim']));
    assert.equal(m.status, 1);
    assert.equal(m.stderr.trim().split('\n').length, 1, m.stderr);
    assert.match(m.stderr, /'--method': 'repSim' has no per-token attribution \(methods that have: gradDot, gradCos, dataInf/);
    const o = cli(args(['--query', '0', '--example', '0', '--method', 'gradDot', '--damping-scale', '0.2']));
    assert.equal(o.status, 1);
    assert.match(o.stderr, /'--damping-scale': gradDot does not take this option/);
  });

  it('explore --tokens: the token method\'s top k per query shaded on its column\'s setting, the answers too; misuse refused in one line', async () => {
    const tok = loadTokenizer(EMBEDDED_DIR);
    const model = LlamaModel.load(EMBEDDED_DIR);
    const scoreFile = path.join(dir, 'gradDot.safetensors');
    let want: Float32Array;
    try {
      const adapter = loadAdapter(files.adapter, model.config);
      const train = await computeLoraGradients(model, adapter, readExamplesJsonl(files.train, tok), { workers: 0 });
      const test = await computeLoraGradients(model, adapter, readExamplesJsonl(files.test, tok), { workers: 0 });
      const gradDot = createScorer('gradDot');
      gradDot.cache(inMemorySource(train));
      writeScoreFile(scoreFile, gradDot.attribute(test), { method: 'gradDot', view: 'final' });
      const dataInf = createScorer('dataInf');
      dataInf.cache(inMemorySource(train));
      want = dataInf.attribute(test).data;
    } finally {
      model.dispose();
    }
    const out = path.join(dir, 'explorer.html');
    const data = await runExploreWithTokens({ scores: [scoreFile], train: files.train, test: files.test, out, k: 2, tokens: 'dataInf', model: EMBEDDED_DIR, adapter: files.adapter });
    assert.ok(fs.existsSync(out));
    assert.ok(data.notes.some((n) => n.includes('Token shading (setting final): dataInf')));
    data.queries.forEach((q, qi) => {
      assert.ok(q.answerTokens && q.answerTokens.tokens.join('').endsWith(' </s>'));
      const v = q.views.find((x) => x.view === 'final')!;
      // The shaded rows are dataInf's own top 2, each summing to its dataInf score.
      const row = Array.from(want.subarray(qi * 4, qi * 4 + 4));
      const top = [0, 1, 2, 3].sort((a, b) => row[b] - row[a]).slice(0, 2);
      const shaded = v.local.filter((_, r) => v.rowTokens?.[r]);
      assert.deepEqual([...shaded].sort(), [...top].sort());
      for (const i of top) {
        const t = v.rowTokens![v.local.indexOf(i)]!;
        const sum = t.weights.reduce((a, w) => a + w, 0);
        assert.ok(Math.abs(sum - row[i]) <= 2e-3 * Math.abs(row[i]), `query ${qi} row ${i}: ${sum} vs ${row[i]}`);
      }
    });
    await assert.rejects(runExploreWithTokens({ scores: [scoreFile], train: files.train, test: files.test, out, tokens: 'bm25', model: EMBEDDED_DIR, adapter: files.adapter }), /'--tokens': 'bm25' has no per-token attribution/);
    for (const [args, message] of [
      [['explore', '--scores', dir, '--tokens', 'dataInf', '--out', out], /^tda-lab: '--tokens': applies to score files/],
      [['explore', '--scores', scoreFile, '--train', files.train, '--test', files.test, '--model', EMBEDDED_DIR, '--out', out], /^tda-lab: '--model': --model and --adapter go with --tokens/],
    ] as const) {
      const r = cli([...args]);
      assert.equal(r.status, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, message);
    }
  });
});

