import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createScorer } from '../../src/attribution/registry';
import { loadTokenizer } from '../../src/data/tokenizer';
import { EMBEDDED_DIR } from '../../src/experiments/embedded';
import { encodeExample } from '../../src/experiments/pipeline';
import { readRunAttributions, writeAttributionGroup, writeAttributionsHeader } from '../../src/experiments/runAttributions';
import { groupTokens, GroupTokens, topIndices } from '../../src/experiments/runTokens';
import { computeLoraGradients } from '../../src/gradients/compute';
import { inMemorySource } from '../../src/gradients/types';
import { LlamaModel } from '../../src/model/llama';
import { randomAdapter } from '../../src/model/randomAdapter';
import { buildExplorerData } from '../../src/viz/explorer/model';
import { tempDirs, throwsTda } from '../helpers/errors';

describe('per-token heatmaps of a run group', function () {
  this.timeout(120000);
  const dirs = tempDirs('tda-run-tokens-');
  after(() => dirs.cleanup());
  const train = [
    { prompt: 'what does a baker do ?', response: 'a baker bakes bread .' },
    { prompt: 'is a banana blue ?', response: 'a banana is blue .' },
    { prompt: 'what is black ?', response: 'blood is black .' },
    { prompt: 'what is blue ?', response: 'a banana .' },
  ];
  const queries = [
    { prompt: 'is blood blue ?', answer: 'blood is black .' },
    { prompt: 'what does a baker do ?', answer: 'a baker bakes bread .' },
  ];
  let tokens: GroupTokens;
  let scores: Float32Array;

  before(async () => {
    const model = LlamaModel.load(EMBEDDED_DIR);
    const tokenizer = loadTokenizer(EMBEDDED_DIR);
    try {
      const adapter = randomAdapter(model.config, { r: 4, targetModules: ['q_proj', 'v_proj'], seed: 5, bStd: 0.05 });
      const trainSeqs = train.map((e) => encodeExample(tokenizer, e));
      const querySeqs = queries.map((q) => encodeExample(tokenizer, { prompt: q.prompt, response: q.answer }));
      // The scores as an experiment computes them, independently of the token split.
      const scorer = createScorer('dataInf');
      scorer.cache(inMemorySource(await computeLoraGradients(model, adapter, trainSeqs, { workers: 0 })));
      const s = scorer.attribute(await computeLoraGradients(model, adapter, querySeqs, { workers: 0 }));
      scores = s.data;
      tokens = await groupTokens(model, adapter, tokenizer, trainSeqs, querySeqs, s, { k: 2 });
    } finally {
      model.dispose();
    }
  });

  it("shades each query's top k: a row's weights sum to its score, the answer's to the sum of the top k", () => {
    assert.equal(tokens.method, 'dataInf');
    assert.equal(tokens.view, 'plain');
    assert.equal(tokens.queries.length, 2);
    const close = (a: number, b: number) => Math.abs(a - b) <= 2e-3 * Math.abs(b); // weights are kept to 4 digits
    tokens.queries.forEach((q, qi) => {
      const top = topIndices({ nTest: 2, nTrain: 4, data: scores }, qi, 2);
      assert.deepEqual(Object.keys(q.rows).map(Number).sort(), [...top].sort());
      let topSum = 0;
      for (const i of top) {
        const s = scores[qi * 4 + i];
        topSum += s;
        const row = q.rows[String(i)];
        assert.equal(row.tokens.join(''), `${train[i].prompt} ${train[i].response} </s>`);
        const sum = row.weights.reduce((a, w) => a + w, 0);
        assert.ok(close(sum, s), `query ${qi} row ${i}: ${sum} vs ${s}`);
      }
      assert.equal(q.answer.tokens.join(''), `${queries[qi].answer} </s>`);
      const answerSum = q.answer.weights.reduce((a, w) => a + w, 0);
      assert.ok(close(answerSum, topSum), `query ${qi} answer: ${answerSum} vs ${topSum}`);
    });
  });

  it('a run folder keeps them and the explorer shows them on the plain rows and the answer; a bad file is refused naming the field', () => {
    const dir = dirs.make();
    const full = { nTest: 2, nTrain: 4, data: scores };
    writeAttributionGroup(dir, { id: 'run-1', name: 'run 1', train, queries: queries.map((q) => ({ ...q, label: 'hallucination', positives: [0] })), columns: [{ method: 'dataInf', view: 'plain', scores: full }, { method: 'dataInf', view: 'DDA', scores: full }], tokens });
    writeAttributionsHeader(dir, { title: 't' }, ['run-1']);
    const data = buildExplorerData({ ...readRunAttributions(dir), k: 2 });
    data.queries.forEach((q, qi) => {
      assert.deepEqual(q.answerTokens, tokens.queries[qi].answer);
      const plain = q.views.find((v) => v.view === 'plain')!;
      plain.local.forEach((i, r) => assert.deepEqual(plain.rowTokens![r], tokens.queries[qi].rows[String(i)] ?? null));
      assert.equal(q.views.find((v) => v.view === 'DDA')!.rowTokens, undefined);
    });
    const file = path.join(dir, 'attributions', 'run-1', 'tokens.json');
    const bad = JSON.parse(fs.readFileSync(file, 'utf8'));
    bad.queries[1].rows['9'] = { tokens: ['x'], weights: [1] };
    fs.writeFileSync(file, JSON.stringify(bad));
    throwsTda(() => readRunAttributions(dir), 'tokens.json', "'queries[1].rows'", "'9' is not a training index below 4");
    bad.queries[1].rows = { 0: { tokens: ['x', 'y'], weights: [1] } };
    fs.writeFileSync(file, JSON.stringify(bad));
    throwsTda(() => readRunAttributions(dir), "'queries[1].rows.0'", 'equal length');
  });
});
