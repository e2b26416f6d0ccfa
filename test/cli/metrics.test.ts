import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scoreMatrix } from '../../src/attribution/types';
import { runMetrics } from '../../src/cli/metrics';
import { bootstrapMeanCI } from '../../src/eval/bootstrap';
import { frameColumn } from '../../src/eval/frame';
import { perQueryColumns } from '../../src/eval/perQuery';
import { writeSafetensors } from '../../src/io/safetensors';
import { Rng } from '../../src/random';
import { bruteAp, bruteAuc, close, hitsWithTiebreak } from '../eval/reference';
import { tmpDir } from '../helpers/fixtures';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'tda-lab.js');

/** Runs the installed command line (bin -> dist), as a user would. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readCsv(file: string): { header: string[]; rows: number[][] } {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  return { header: lines[0].split(','), rows: lines.slice(1).map((l) => l.split(',').map(Number)) };
}

const N_TEST = 5;
const N_TRAIN = 14;

describe('tda-lab metrics (command line)', () => {
  let work: string;
  let scoresFile: string;
  let labelsFile: string;
  let data: Float32Array;
  // Query 2 has no positives; query 4 mixes ties.
  const positives = [[0, 3], [13], [], [1, 2, 5, 8, 11, 12], [4, 6]];

  before(() => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'metrics.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    work = tmpDir();
    const rng = new Rng(3);
    // Small integers: many ties, so the tie rules matter.
    data = Float32Array.from({ length: N_TEST * N_TRAIN }, () => rng.int(5) - 2);
    scoresFile = path.join(work, 'scores.safetensors');
    writeSafetensors(scoresFile, { scores: { shape: [N_TEST, N_TRAIN], data } }, { format: 'test' });
    labelsFile = path.join(work, 'labels.json');
    fs.writeFileSync(labelsFile, JSON.stringify({ positives }));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  function expectedRow(q: number, k: number): number[] {
    const row = Array.from(data.subarray(q * N_TRAIN, (q + 1) * N_TRAIN));
    const mask = row.map((_, i) => positives[q].includes(i));
    const nPos = positives[q].length;
    const identity = row.map((_, i) => i);
    return [q, bruteAuc(row, mask), bruteAp(row, mask), nPos ? hitsWithTiebreak(row, mask, k, identity) / nPos : NaN];
  }

  it('writes one CSV row per query equal to a direct computation, and prints the means', () => {
    const out = path.join(work, 'metrics.csv');
    const r = cli(['metrics', '--scores', scoresFile, '--labels', labelsFile, '--out', out, '--k', '3']);
    assert.equal(r.code, 0, r.stderr);
    const csv = readCsv(out);
    assert.deepEqual(csv.header, ['query', 'auc', 'ap', 'recall_at_k']);
    assert.equal(csv.rows.length, N_TEST);
    for (let q = 0; q < N_TEST; q++) {
      const want = expectedRow(q, 3);
      csv.rows[q].forEach((v, j) => assert.ok(close(v, want[j], 1e-12), `query ${q} column ${csv.header[j]}: ${v} vs ${want[j]}`));
    }
    assert.ok(csv.rows[2].slice(1).every(Number.isNaN), 'no positives: NaN');
    // Means over the 4 queries with positives, with the seed-0 bootstrap interval.
    const aucs = csv.rows.map((row) => row[1]);
    const ci = bootstrapMeanCI(aucs, { seed: 0 });
    const aucLine = r.stdout.split('\n').find((l) => l.trim().startsWith('auc'));
    assert.ok(aucLine, r.stdout);
    assert.deepEqual(aucLine.trim().split(/\s+/), ['auc', ci.mean.toFixed(4), ci.lo.toFixed(4), ci.hi.toFixed(4), '4']);
    assert.match(r.stdout, /ap\s/);
    assert.match(r.stdout, /recall_at_k\s/);
    assert.match(r.stdout, /pooled AUC/);
    assert.match(r.stdout, /1 query without positives/);
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp file left behind');
  });

  it('uses k = 10 by default', () => {
    const out = path.join(work, 'default-k.csv');
    const r = cli(['metrics', '--scores', scoresFile, '--labels', labelsFile, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const csv = readCsv(out);
    for (let q = 0; q < N_TEST; q++) assert.ok(close(csv.rows[q][3], expectedRow(q, 10)[3]), `query ${q}`);
    assert.match(r.stdout, /k = 10/);
  });

  it('runMetrics returns the per-query table and the means', () => {
    const out = path.join(work, 'lib.csv');
    const res = runMetrics({ scores: scoresFile, labels: labelsFile, out, k: 4, seed: 2 });
    const direct = perQueryColumns(scoreMatrix(N_TEST, N_TRAIN, data), positives, { k: 4 });
    assert.deepEqual(res.rows.columns, ['query', 'auc', 'ap', 'recall_at_k']);
    for (const c of ['auc', 'ap', 'recall_at_k'] as const) {
      frameColumn(res.rows, c).forEach((v, q) => assert.ok(close(v, direct[c][q]), `${c} ${q}`));
    }
    assert.deepEqual(res.means.columns, ['metric', 'mean', 'lo', 'hi', 'n']);
    const ci = bootstrapMeanCI(direct.recall_at_k, { seed: 2 });
    assert.deepEqual(frameColumn(res.means, 'lo')[2], ci.lo);
    assert.equal(res.k, 4);
    assert.equal(res.nTest, N_TEST);
    assert.ok(fs.existsSync(out));
  });

  it('fails with one line naming the file and field, exit code 1, and no output file', () => {
    const write = (name: string, tensors: Parameters<typeof writeSafetensors>[1]) => {
      const f = path.join(work, name);
      writeSafetensors(f, tensors);
      return f;
    };
    const noScores = write('noscores.safetensors', { other: { shape: [N_TEST, N_TRAIN], data } });
    const oneD = write('oned.safetensors', { scores: { shape: [N_TEST * N_TRAIN], data } });
    const nanData = data.slice();
    nanData[1 * N_TRAIN + 7] = NaN;
    const withNaN = write('nan.safetensors', { scores: { shape: [N_TEST, N_TRAIN], data: nanData } });
    const labels = (name: string, content: string) => {
      const f = path.join(work, name);
      fs.writeFileSync(f, content);
      return f;
    };
    const tooFew = labels('few.json', JSON.stringify({ positives: positives.slice(0, 4) }));
    const outOfRange = labels('range.json', JSON.stringify({ positives: [[0], [1], [], [N_TRAIN], [2]] }));
    const notInt = labels('float.json', JSON.stringify({ positives: [[0], [1], [2.5], [3], [2]] }));
    const noField = labels('nofield.json', JSON.stringify({ sources: [] }));
    const badJson = labels('bad.json', '{"positives": [[0],');

    const cases: { scores?: string; labels?: string; extra?: string[]; pattern: RegExp }[] = [
      { scores: noScores, pattern: /noscores\.safetensors: 'scores': no tensor named 'scores' \(it has other\)/ },
      { scores: oneD, pattern: /oned\.safetensors: 'scores': must be 2-D .*\[70\]/ },
      { scores: withNaN, pattern: /nan\.safetensors: 'scores': NaN at \[1, 7\] \(query 1, training example 7\)/ },
      { labels: tooFew, pattern: /few\.json: 'positives': has 4 entries but there are 5 queries/ },
      { labels: outOfRange, pattern: /range\.json: 'positives\[3\]': query 3: index 14 is out of range \[0, 14\)/ },
      { labels: notInt, pattern: /float\.json: 'positives\[2\]': query 2: index 2\.5 is not an integer/ },
      { labels: noField, pattern: /nofield\.json: 'positives'/ },
      { labels: badJson, pattern: /bad\.json: is not valid JSON/ },
      { labels: path.join(work, 'missing.json'), pattern: /missing\.json: cannot read/ },
      { scores: path.join(work, 'missing.safetensors'), pattern: /missing\.safetensors/ },
      { extra: ['--k', '0'], pattern: /'--k': must be a positive integer, got 0/ },
      { extra: ['--k', '2.5'], pattern: /'--k': must be a positive integer, got '2\.5'/ },
      { extra: ['--k', 'ten'], pattern: /'--k'.*'ten'/ },
      { extra: ['--seed', '-1'], pattern: /'--seed'/ },
    ];
    const out = path.join(work, 'never.csv');
    for (const c of cases) {
      const args = ['metrics', '--scores', c.scores ?? scoresFile, '--labels', c.labels ?? labelsFile, '--out', out, ...(c.extra ?? [])];
      const r = cli(args);
      assert.equal(r.code, 1, `expected failure for ${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
      assert.match(lines[0], /^tda-lab: /);
      assert.match(lines[0], c.pattern);
      assert.equal(r.stdout, '');
      assert.ok(!fs.existsSync(out), 'no output is written on failure');
    }
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp file left behind');
  });

  it('fails on an unwritable output path without leaving files', () => {
    const out = path.join(work, 'no-such-dir', 'm.csv');
    const r = cli(['metrics', '--scores', scoresFile, '--labels', labelsFile, '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^tda-lab: .*no-such-dir/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
