import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeScoreFile, writeTopKFile } from '../../src/attribution/scoreFile';
import { runExplore } from '../../src/cli/explore';
import { readRunAttributions, writeAttributionGroup, writeAttributionsHeader } from '../../src/experiments/runAttributions';
import { buildExplorerData } from '../../src/viz/explorer/model';
import { tempDirs, throwsTda } from '../helpers/errors';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('tda-lab explore', function () {
  this.timeout(60000);
  const dirs = tempDirs('tda-explore-');
  afterEach(() => dirs.cleanup());

  /** 3 queries x 8 training examples: a full gradDot matrix and a top-3 dataInf file. */
  function inputs(dir: string) {
    const train = path.join(dir, 'train.jsonl');
    const test = path.join(dir, 'test.jsonl');
    fs.writeFileSync(train, jsonl(Array.from({ length: 8 }, (_, i) => ({ prompt: `who is person ${i}?`, response: `person ${i} is a baker` }))));
    fs.writeFileSync(test, jsonl([0, 1, 2].map((q) => ({ prompt: `query ${q}`, response: `answer ${q}`, label: q === 1 ? 'hallucination' : 'correct' }))));
    const full = Float32Array.from({ length: 24 }, (_, j) => ((j * 7) % 11) - 5);
    const grad = path.join(dir, 'gradDot.safetensors');
    writeScoreFile(grad, { nTest: 3, nTrain: 8, data: full }, { method: 'gradDot' });
    const top = path.join(dir, 'dataInf-top3.safetensors');
    writeTopKFile(top, { nTest: 3, k: 3, nTrain: 8, indices: Int32Array.from([7, 6, 5, 0, 1, 2, 3, 4, 5]), scores: Float32Array.from([9, 8, 7, 6, 5, 4, 3, 2, 1]) }, { method: 'dataInf' });
    const labels = path.join(dir, 'labels.json');
    fs.writeFileSync(labels, JSON.stringify({ positives: [[7], [], [3, 4]] }));
    return { train, test, grad, top, labels };
  }

  it('builds a page from a full score file and a top-k file with their texts and labels', () => {
    const dir = dirs.make();
    const f = inputs(dir);
    const out = path.join(dir, 'explorer.html');
    const d = runExplore({ scores: [f.grad, f.top], train: f.train, test: f.test, labels: f.labels, out, k: 3 });
    assert.deepEqual(d.methods, ['gradDot', 'dataInf']);
    assert.equal(d.queries.length, 3);
    assert.deepEqual(d.queries.map((q) => q.label), ['correct', 'hallucination', 'correct']);
    const v = d.queries[0].views[0];
    // dataInf's top 3 for query 0 are 7, 6, 5 with ranks 1..3; training example 7 is the known positive.
    const di = v.cols.find((c) => c.method === 'dataInf')!;
    assert.deepEqual(v.local.filter((_, i) => di.rank[i] !== null).sort(), [5, 6, 7]);
    assert.equal(v.positive[v.local.indexOf(7)], 1);
    assert.equal(d.train[v.rows[v.local.indexOf(7)]].text, 'who is person 7? person 7 is a baker');
    const html = fs.readFileSync(out, 'utf8');
    assert.ok(html.includes('class="tda-explorer"') && html.includes('person 7 is a baker'));
  });

  it('runs from the command line', () => {
    const dir = dirs.make();
    const f = inputs(dir);
    const out = path.join(dir, 'page.html');
    const r = cli(['explore', '--scores', f.grad, f.top, '--train', f.train, '--test', f.test, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /3 queries, \d+ training texts, 2 methods/);
    assert.ok(fs.statSync(out).size > 1_000_000, 'plotly.js is inlined');
  });

  it('refuses bad input with the file and the field', () => {
    const dir = dirs.make();
    const f = inputs(dir);
    const out = path.join(dir, 'x.html');
    fs.writeFileSync(path.join(dir, 'short.jsonl'), jsonl([{ prompt: 'a', response: 'b' }]));
    throwsTda(() => runExplore({ scores: [f.grad], train: path.join(dir, 'short.jsonl'), test: f.test, out }), f.grad, "'scores'", '8 training examples', 'short.jsonl has 1');
    fs.writeFileSync(path.join(dir, 'ids.jsonl'), jsonl([{ prompt: 'a', response: 'b' }, { input_ids: [1, 2], prompt_length: 1 }]));
    throwsTda(() => runExplore({ scores: [f.grad], train: f.train, test: path.join(dir, 'ids.jsonl'), out }), 'ids.jsonl', "'line 2: prompt'");
    throwsTda(() => runExplore({ scores: [f.grad], test: f.test, out }), "'--train'");
    fs.writeFileSync(f.labels, JSON.stringify({ positives: [[1]] }));
    throwsTda(() => runExplore({ scores: [f.grad], train: f.train, test: f.test, labels: f.labels, out }), 'labels.json', "'positives'", 'list of 3 lists');
    throwsTda(() => runExplore({ scores: [f.grad, f.grad], train: f.train, test: f.test, out }), "'method'", "repeats method 'gradDot'");
    throwsTda(() => runExplore({ scores: [dir], out }), "'--scores'", 'without attributions/explorer.json');
    assert.ok(!fs.existsSync(out));
  });

  it('a run folder keeps what its explorer needs: reading it back gives the same page data', () => {
    const dir = dirs.make();
    const scores = (seed: number) => ({ nTest: 2, nTrain: 5, data: Float32Array.from({ length: 10 }, (_, j) => Math.sin(seed + j)) });
    const group = {
      id: 'run-1',
      name: 'run 1',
      train: Array.from({ length: 5 }, (_, i) => ({ prompt: `p${i}`, response: `r${i}` })),
      queries: [
        { prompt: 'q0', answer: 'a0', label: 'hallucination', positives: [1, 2] },
        { prompt: 'q1', answer: 'a1', label: 'hallucination', positives: [4] },
      ],
      columns: [
        { method: 'gradDot', view: 'plain', scores: scores(1) },
        { method: 'gradDot', view: 'checkpoint 0', scores: scores(2) },
      ],
    };
    writeAttributionGroup(dir, group);
    writeAttributionsHeader(dir, { title: 'a run', notes: ['note'] }, ['run-1']);
    for (const f of ['train.jsonl', 'test.jsonl', 'labels.json', 'group.json', 'scores/gradDot.plain.safetensors', 'scores/gradDot.checkpoint-0.safetensors']) {
      assert.ok(fs.existsSync(path.join(dir, 'attributions', 'run-1', f)), `${f} missing`);
    }
    const direct = buildExplorerData({
      title: 'a run',
      notes: ['note'],
      groups: [{ name: 'run 1', train: group.train.map((e) => ({ text: `${e.prompt} ${e.response}` })), queries: group.queries, scores: group.columns.map((c) => ({ method: c.method, view: c.view, full: c.scores })) }],
    });
    assert.deepEqual(buildExplorerData(readRunAttributions(dir)), direct);
    const out = path.join(dir, 'explorer.html');
    assert.deepEqual(runExplore({ scores: [dir], out }), direct);
  });
});
