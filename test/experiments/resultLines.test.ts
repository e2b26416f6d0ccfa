import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkQuotedResults, committedSummaries, parseResultLines, resultLine } from '../../src/experiments/resultLines';
import { tmpDir } from '../helpers/fixtures';
import { throwsTda } from '../helpers/errors';

const SUMMARY = [
  resultLine('dda', 'denoise - plain dataInf ft', 'no clear difference (+0.011, 95% CI \u22120.003 to +0.025; 6 runs, 42 queries)'),
  resultLine('dda', 'auc dataInf plain ft', '0.874 (95% CI 0.820 to 0.921; 6 runs, 42 queries)'),
].join('\n');

describe('experiments: README lines quoted from a committed run summary', () => {
  it('accepts a README that quotes summary lines word for word (in a code block or indented)', () => {
    const readme = ['# Results', '', '```', SUMMARY.split('\n')[0], '```', '  ' + SUMMARY.split('\n')[1], 'A sentence about RESULT lines that is not one.'].join('\n');
    assert.deepEqual(checkQuotedResults(readme, [SUMMARY]), []);
  });

  it('finds a quoted number that differs from the summary, and a quote no summary has', () => {
    const edited = SUMMARY.split('\n')[0].replace('+0.011', '+0.014');
    const problems = checkQuotedResults(`${edited}\nRESULT dda/debias - plain gradDot ft: helps (+0.1)`, [SUMMARY]);
    assert.equal(problems.length, 2);
    assert.match(problems[0], /\+0\.014[\s\S]*\+0\.011/);
    assert.match(problems[1], /'dda\/debias - plain gradDot ft', which no committed summary has/);
  });

  it('parses lines by id and refuses keys that would not round-trip', () => {
    const ids = [...parseResultLines(SUMMARY).keys()];
    assert.deepEqual(ids, ['dda/denoise - plain dataInf ft', 'dda/auc dataInf plain ft']);
    throwsTda(() => resultLine('dda', 'a: b', 'x'), "'key'");
    throwsTda(() => resultLine('DDA', 'a', 'x'), "'experiment'");
    throwsTda(() => resultLine('dda', 'a', 'x\ny'), "'text'");
  });

  it('reads committed summaries from docs/results/*-summary.txt', () => {
    const root = tmpDir('tda-results-');
    try {
      assert.deepEqual(committedSummaries(root), []);
      fs.mkdirSync(path.join(root, 'docs', 'results'), { recursive: true });
      fs.writeFileSync(path.join(root, 'docs', 'results', 'dda-summary.txt'), SUMMARY + '\n');
      fs.writeFileSync(path.join(root, 'docs', 'results', 'notes.txt'), 'RESULT dda/x: y\n');
      const got = committedSummaries(root);
      assert.equal(got.length, 1);
      assert.deepEqual(checkQuotedResults(SUMMARY, got), []);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('the README quotes only committed run summaries', () => {
  it('every RESULT line in README.md and src/dda/README.md is in docs/results/*-summary.txt, word for word', () => {
    const root = path.join(__dirname, '..', '..');
    const summaries = committedSummaries(root);
    for (const readme of ['README.md', path.join('src', 'dda', 'README.md')]) {
      assert.deepEqual(checkQuotedResults(fs.readFileSync(path.join(root, readme), 'utf8'), summaries, readme), []);
    }
  });
});
