import * as assert from 'node:assert/strict';
import { ScoreMatrix, scoreMatrix } from '../../src/attribution/types';
import { classAccCover } from '../../src/eval/classMetrics';
import { cycleTo, splitGenerations, zeroBAdapter } from '../../src/experiments/ddaReadings';
import { ddaDifference, ddaDifferenceRows, DdaQueryRecord, ddaResultLines, ddaSummaryRows } from '../../src/experiments/ddaSummary';
import { pairedRunDifferences } from '../../src/eval/runBootstrap';
import { parseResultLines } from '../../src/experiments/resultLines';
import { initAdapter, parseLoraConfig } from '../../src/model/adapter';
import { llamaConfig } from '../../src/model/synthetic';
import { Rng } from '../../src/random';

describe('DDA readings: the reference models and the run-level summary', () => {
  it('zeroBAdapter keeps each A and zeroes each B, without touching the original', () => {
    const config = llamaConfig({ hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 2, vocabSize: 20 });
    const a = initAdapter(config, parseLoraConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] }, 't'), 1);
    a.modules.forEach((m) => m.B.fill(0.5));
    const z = zeroBAdapter(a);
    z.modules.forEach((m, i) => {
      assert.deepEqual(m.A, a.modules[i].A);
      assert.ok(m.B.every((v) => v === 0));
      assert.ok(a.modules[i].B.every((v) => v === 0.5));
    });
  });

  it('cycleTo repeats a set in order to a fixed length (equal steps for error and ground models)', () => {
    assert.deepEqual(cycleTo(['a', 'b', 'c'], 7), ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    assert.deepEqual(cycleTo([], 4), []);
  });

  it('splitGenerations: target word = hallucinated, source word = correct, other answers left out', () => {
    const s = splitGenerations(['lives in vonia', 'lives in shenia', 'a teacher', 'vonia shenia', 'vonian'], 'vonia', 'shenia');
    assert.deepEqual(s, { hallucinated: [0, 3], correct: [1] });
  });

  it('summary and paired differences resample runs; the result lines carry them', () => {
    const rng = new Rng(2);
    const records: DdaQueryRecord[] = [];
    for (let run = 1; run <= 4; run++) {
      const nq = 2 + run;
      for (let q = 0; q < nq; q++) {
        const plain = 0.6 + 0.1 * rng.normal();
        for (const [variant, auc] of [['plain', plain], ['denoise', plain + 0.05], ['debias', plain - 0.2 + 0.3 * rng.normal()]] as [string, number][]) {
          records.push({ run, pair: run, regime: 'fine-tuning-only', seed: 1, query: q, method: 'gradDot', variant, auc, recall: 0.5 });
        }
      }
    }
    const rows = ddaSummaryRows(records, ['gradDot'], ['plain', 'denoise', 'debias'], ['fine-tuning-only', 'base-bias']);
    assert.equal(rows.length, 3);
    assert.deepEqual([rows[0].runs, rows[0].queries], [4, 3 + 4 + 5 + 6]);
    const diffs = ddaDifferenceRows(records, ['gradDot'], ['fine-tuning-only']);
    const dn = diffs.find((d) => d.comparison === 'denoise - plain')!;
    assert.ok(Math.abs(dn.difference - 0.05) < 1e-9 && Math.abs(dn.lo - 0.05) < 1e-9, JSON.stringify(dn));
    assert.equal(dn.verdict, 'helps');
    // The same numbers from the run-level bootstrap on the records grouped by hand.
    const runs = [1, 2, 3, 4];
    const pick = (v: string) => runs.map((r) => records.filter((x) => x.run === r && x.variant === v).map((x) => x.auc));
    const want = pairedRunDifferences(pick('plain'), pick('debias'), { seed: 0, resamples: 2000 });
    const got = ddaDifference(records, 'gradDot', 'fine-tuning-only', 'debias', 'plain')!;
    assert.deepEqual(got, want);
    assert.equal(diffs.length, 2, 'only comparisons whose variants exist');
    const lines = parseResultLines(ddaResultLines(rows, diffs).join('\n'));
    assert.match(lines.get('dda/denoise - plain gradDot ft')!, /: helps \(\+0\.050, 95% CI \+0\.050 to \+0\.050; 4 runs, 18 queries\)$/);
    assert.ok(lines.has('dda/auc gradDot plain ft'));
  });

  it('the verdict needs both the bootstrap over runs and a t interval over run means to exclude 0 (3 runs are few)', () => {
    // One query per run; differences 0.01, 0.02, 0.2: every resample of runs has a positive mean,
    // but t(2) over the three run means reaches below 0.
    const records: DdaQueryRecord[] = [0.01, 0.02, 0.2].flatMap((d, i) => [
      { run: i + 1, pair: 0, regime: 'base-bias', seed: i + 1, query: 0, method: 'dataInf', variant: 'plain', auc: 0.5, recall: 0 },
      { run: i + 1, pair: 0, regime: 'base-bias', seed: i + 1, query: 0, method: 'dataInf', variant: 'denoise', auc: 0.5 + d, recall: 0 },
    ]);
    const [row] = ddaDifferenceRows(records, ['dataInf'], ['base-bias']);
    assert.ok(row.lo > 0, `bootstrap lo ${row.lo}`);
    const m = (0.01 + 0.02 + 0.2) / 3;
    const sd = Math.sqrt(([0.01, 0.02, 0.2].reduce((a, x) => a + (x - m) ** 2, 0)) / 2);
    assert.ok(Math.abs(row.t_lo - (m - 4.302652729911275 * sd / Math.sqrt(3))) < 1e-6, `t_lo ${row.t_lo}`);
    assert.equal(row.verdict, 'no clear difference');
  });
});

/** check_acc_cov of the IF-on-LLMs code (utils.py), transcribed: k = int(nTrain / classes); top k by score; Acc from the top one. */
function officialAccCover(scores: ScoreMatrix, train: string[], test: string[]): { acc: number; cover: number } {
  const covCnt = Math.floor(train.length / new Set(train).size);
  let acc = 0;
  let cov = 0;
  for (let i = 0; i < scores.nTest; i++) {
    const row = Array.from(scores.data.subarray(i * scores.nTrain, (i + 1) * scores.nTrain));
    const top = row.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, covCnt).map((x) => x[1]);
    if (train[top[0]] === test[i]) acc++;
    for (const j of top) if (train[j] === test[i]) cov++;
  }
  return { acc: acc / scores.nTest, cover: cov / (scores.nTest * covCnt) };
}

describe('IF-on-LLMs: Cover as the official code computes it for backdoor and harmful data', () => {
  it('classAccCover on the class labels (trigger / clean) equals the transcription of check_acc_cov', () => {
    const rng = new Rng(5);
    const train = Array.from({ length: 41 }, (_, i) => (i % 7 === 0 ? 'trigger' : 'clean'));
    const scores = scoreMatrix(6, 41, Float32Array.from({ length: 6 * 41 }, (_, k) => rng.normal() + (train[k % 41] === 'trigger' ? 1 : 0)));
    const test = Array(6).fill('trigger');
    const got = classAccCover(scores, test, train);
    const want = officialAccCover(scores, train, test);
    assert.equal(got.k, 20);
    assert.ok(Math.abs(got.acc - want.acc) < 1e-12 && Math.abs(got.cover - want.cover) < 1e-12, JSON.stringify({ got, want }));
    // A perfect ranking: every trigger example first; Cover is capped at positives / k.
    const perfect = scoreMatrix(1, 41, Float32Array.from(train, (c) => (c === 'trigger' ? 1 : 0)));
    assert.equal(classAccCover(perfect, ['trigger'], train).cover, 6 / 20);
  });
});
