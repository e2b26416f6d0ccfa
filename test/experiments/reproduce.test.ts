/**
 * The three experiments in --quick mode on the embedded default model: structure and
 * sanity of the outputs, plus one behavioural check each that could fail.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { frameRows } from '../../src/eval/frame';
import { DdaExperimentResult, runDdaExperiment } from '../../src/experiments/dda';
import { parseResultLines } from '../../src/experiments/resultLines';
import { EmbeddedDefault, loadEmbeddedDefault } from '../../src/experiments/embedded';
import { runIfLlmExperiment } from '../../src/experiments/ifLlm';
import { runLmd3Experiment } from '../../src/experiments/lmd3';
import { runReproduce } from '../../src/cli/reproduce';
import { Figure, isFigure } from '../../src/viz/figures';
import { coloredPixelShare, screenshot } from '../helpers/chromium';
import { tmpDir } from '../helpers/fixtures';
import { openPage } from '../helpers/browser';
import { readRunAttributions } from '../../src/experiments/runAttributions';

/** Plotly JSON that survives a round trip and has drawable traces. */
function assertValidFigure(f: Figure): void {
  assert.ok(isFigure(f));
  const back = JSON.parse(JSON.stringify(f));
  assert.ok(back.data.length > 0, `figure '${JSON.stringify(f.layout.title)}' has no traces`);
  for (const t of back.data) assert.equal(typeof t.type, 'string');
}

/**
 * The explorer `reproduce dda` wrote: saved attributions for every hallucinated query, and a
 * page that lists them in Chromium with their canaries marked.
 */
async function checkDdaExplorer(dir: string, summary: { method: string; variant: string; queries: number }[]): Promise<void> {
  assert.ok(fs.existsSync(path.join(dir, 'explorer.html')), 'explorer.html missing');
  const saved = readRunAttributions(dir);
  const nQueries = saved.groups.reduce((n, g) => n + g.queries.length, 0);
  const expected = summary.filter((x) => x.method === 'gradDot' && x.variant === 'plain').reduce((n, x) => n + x.queries, 0);
  assert.equal(nQueries, expected, 'every hallucinated query is saved');
  const views = new Set(saved.groups.flatMap((g) => g.scores.map((s) => s.view)));
  for (const v of ['plain', 'debias', 'denoise', 'DDA', 'checkpoint 0']) assert.ok(views.has(v), `setting ${v} missing`);
  // Per-token heatmaps: every answer, and DataInf's top 10 of every query in the plain setting.
  for (const q of saved.groups.flatMap((g) => g.queries)) {
    assert.ok(q.answerTokens && q.answerTokens.tokens.length > 0 && q.answerTokens.weights.some((w) => w !== 0), 'answer tokens missing');
    assert.equal(Object.keys(q.trainTokens?.plain ?? {}).length, 10, 'plain rows without token weights');
  }
  const { page, errors, close } = await openPage(path.join(dir, 'explorer.html'));
  try {
    await page.waitForSelector('.tda-explorer[data-ready="1"]', { timeout: 60000 });
    assert.equal(await page.textContent('.tdx-count'), `${nQueries} of ${nQueries} queries`);
    assert.ok((await page.$$('tr.tdx-posrow')).length > 0, 'the canaries of the first query are marked');
    assert.ok((await page.$$('.tdx-answer-text .tdx-tok')).length > 0, 'the answer is shaded token by token');
    assert.ok((await page.$$('.tdx-train-text .tdx-tok')).length >= 10, 'the top training examples are shaded token by token');
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
}

describe('experiments on the embedded default model (--quick)', function () {
  this.timeout(900000);
  let env: EmbeddedDefault;
  let work: string;
  before(() => {
    env = loadEmbeddedDefault();
    work = tmpDir('tda-exp-');
  });
  after(() => {
    env.model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('dda: every method and variant reported, AUCs in [0, 1], canaries found above chance by gradDot; the run folder has its explorer', async () => {
    const run = await runReproduce({ experiment: 'dda', quick: true, out: path.join(work, 'runs'), progress: false, log: () => undefined });
    const r = run.result as DdaExperimentResult;
    const rows = frameRows(r.summary) as { method: string; variant: string; regime: string; auc: number; queries: number }[];
    for (const m of ['bm25', 'repSim', 'gradDot', 'gradCos', 'dataInf', 'lissa', 'kronGrad', 'exact', 'tracinCP']) assert.ok(rows.some((x) => x.method === m), `method ${m} missing`);
    for (const v of ['plain', 'debias', 'denoise', 'DDA']) assert.ok(rows.some((x) => x.method === 'gradDot' && x.variant === v), `variant ${v} missing`);
    for (const x of rows) assert.ok(x.auc >= 0 && x.auc <= 1, `${x.method} ${x.variant}: AUC ${x.auc}`);
    assert.ok(rows.every((x) => x.queries > 0), 'every row has hallucinated queries (positives are non-empty)');
    // Where the hallucination comes from fine-tuning alone, gradients find the canaries.
    const gd = rows.find((x) => x.method === 'gradDot' && x.variant === 'plain' && x.regime === 'fine-tuning-only');
    assert.ok(gd && gd.auc > 0.7, `gradDot should rank the canaries well above chance: ${gd?.auc}`);
    for (const f of [...r.figures.ablation, ...r.figures.perCheckpoint, ...r.figures.roc]) assertValidFigure(f);
    // One run per regime: no interval over runs, and no verdict either.
    const diffs = frameRows(r.differences) as { method: string; comparison: string; runs: number; verdict: string }[];
    for (const c of ['denoise - plain', 'debias - plain', 'DDA - plain']) assert.ok(diffs.some((d) => d.method === 'exact' && d.comparison === c), `${c} missing`);
    assert.ok(diffs.every((d) => d.runs === 1 && d.verdict === 'too few runs'));
    const lines = parseResultLines(fs.readFileSync(path.join(run.dir, 'summary.txt'), 'utf8'));
    assert.equal(lines.size, rows.length + diffs.length, 'one RESULT line per AUC and per difference');
    assert.ok(fs.existsSync(path.join(run.dir, 'paired_differences.csv')));
    await checkDdaExplorer(run.dir, rows);
  });

  it('dda readings of debias: base scores at (A_t, B=0) and error/ground contrast models, side by side', async () => {
    const r = await runDdaExperiment(env, { quick: true, pairs: [0], gradientMethods: ['gradDot'], readings: ['base-a', 'contrast'], workDir: path.join(work, 'readings'), log: () => undefined });
    const rows = frameRows(r.summary) as { method: string; variant: string; auc: number; queries: number }[];
    for (const v of ['plain', 'debias', 'DDA', 'debias (A_t, B=0)', 'DDA (A_t, B=0)', 'debias (contrast)', 'DDA (contrast)']) {
      const x = rows.find((y) => y.method === 'gradDot' && y.variant === v);
      assert.ok(x && x.auc >= 0 && x.auc <= 1, `${v}: ${x?.auc}`);
    }
    const auc = (v: string) => rows.find((y) => y.method === 'gradDot' && y.variant === v)!.auc;
    assert.notEqual(auc('debias (A_t, B=0)'), auc('debias'), 'the reference at (A_T, B=0) is not the one at initialisation');
    assert.ok(r.readingsTable.length > 0);
    // The last epoch's hallucinations are the run's traced queries.
    const sets = frameRows(r.contrastSets) as { epoch: number; hallucinated: number; correct: number }[];
    assert.deepEqual(sets.map((s) => s.epoch), [1, 2, 3]);
    assert.equal(sets[2].hallucinated, rows.find((y) => y.method === 'gradDot' && y.variant === 'plain')!.queries);
    const curves = new Set((frameRows(r.perCheckpoint) as { scores: string }[]).map((c) => c.scores));
    assert.deepEqual([...curves].sort(), ['base (A_t, B=0)', 'contrast', 'plain']);
  });

  it('if-llm: Acc, Cover and AUC for every task and method; class attribution beats chance', async () => {
    const r = await runIfLlmExperiment(env, { quick: true });
    const rows = frameRows(r.summary) as { task: string; method: string; acc: number; cover: number; acc_official: number; cover_official: number; auc: number; auc_lo: number }[];
    // The official Cover reads class labels (k = half the training set here): a perfect ranking reaches only positives / k.
    for (const x of rows.filter((y) => y.task === 'backdoor' || y.task === 'harmful')) assert.ok(x.cover_official <= 0.2 && x.cover_official >= 0, `${x.task} ${x.method}: ${x.cover_official}`);
    for (const x of rows.filter((y) => y.task.startsWith('class'))) assert.deepEqual([x.acc_official, x.cover_official], [x.acc, x.cover], 'for class tasks the two definitions coincide');
    assert.ok(rows.every((x) => Number.isNaN(x.auc_lo)), 'one seed: no interval over runs');
    assert.equal(r.resultLines.length, rows.length);
    assert.ok(r.resultLines.some((l) => l.startsWith('RESULT if-llm/gradDot class profession: acc ')), r.resultLines[0]);
    assert.equal(r.officialCoverTable.length, 7); // a row per method: four influence methods, RepSim at three poolings
    const tasks = new Set(rows.map((x) => x.task));
    for (const t of ['class: profession', 'class: country', 'class: color', 'backdoor', 'harmful']) assert.ok(tasks.has(t), `task ${t} missing`);
    for (const m of ['gradDot', 'dataInf', 'lissa', 'exact', 'repSim', 'repSim-last', 'repSim-mean']) assert.ok(rows.some((x) => x.method === m), `method ${m} missing`);
    for (const x of rows) for (const v of [x.acc, x.cover, x.auc]) assert.ok(v >= 0 && v <= 1, `${x.task} ${x.method}: ${v}`);
    const repSimClass = rows.filter((x) => x.method === 'repSim' && x.task.startsWith('class'));
    assert.ok(repSimClass.some((x) => x.auc > 0.6), `RepSim should find same-class examples above chance: ${repSimClass.map((x) => x.auc)}`);
    r.figures.forEach(assertValidFigure);
  });

  it('if-llm over two seeds: runs are (task, seed), AUC intervals over runs', async () => {
    const r = await runIfLlmExperiment(env, { quick: true, seeds: [1, 2], gradientMethods: ['gradDot'] });
    const rows = frameRows(r.summary) as { task: string; method: string; auc: number; auc_lo: number; auc_hi: number; runs: number }[];
    for (const x of rows) {
      assert.equal(x.runs, 2);
      assert.ok(x.auc_lo <= x.auc + 1e-12 && x.auc <= x.auc_hi + 1e-12, JSON.stringify(x));
    }
    assert.equal(frameRows(r.perRun).length, 2 * rows.length);
  });

  it('lmd3: paraphrase injection raises the density of treated queries more than of controls (prompt-end states, TF-IDF); equal steps; two seeds', async () => {
    const r = await runLmd3Experiment(env, { quick: true, seeds: [1, 2] });
    const g = Object.fromEntries(frameRows(r.summary).map((x) => [x.group, x])) as Record<string, { density_change: number; queries: number; runs: number; loss_improvement_lo: number }>;
    assert.ok(g.treated.queries > 0 && g.control.queries > 0);
    assert.equal(g.treated.runs, 2);
    assert.ok(Number.isFinite(g.treated.loss_improvement_lo));
    assert.ok(g.treated.density_change > g.control.density_change + 0.5, `treated ${g.treated.density_change} vs control ${g.control.density_change}`);
    const views = frameRows(r.densityByEmbedding) as { embedding: string; bandwidth: string; h: number; treated_density_change: number; control_density_change: number }[];
    assert.equal(views.length, 6);
    // The prompt-end state and the bag of words see the paraphrases; mean-pooled states, dominated by
    // the template words, need not (the README reports what they show).
    for (const v of views.filter((x) => x.embedding !== 'base-mean')) assert.ok(v.treated_density_change > v.control_density_change + 0.5, `${v.embedding} ${v.bandwidth}: ${v.treated_density_change} vs ${v.control_density_change}`);
    for (const v of views) assert.ok(Number.isFinite(v.treated_density_change) && Number.isFinite(v.control_density_change) && v.h > 0);
    assert.equal(r.settings.control, 'same-steps');
    assert.match(r.resultLines[0], /^RESULT lmd3\/loss improvement treated - control \(same-steps\): /);
    assert.ok(Number.isFinite(r.regression.slope) && r.regression.r2 >= 0 && r.regression.r2 <= 1);
    assert.ok(r.regression.pValue >= 0 && r.regression.pValue <= 1);
    r.figures.forEach(assertValidFigure);
  });

  it('reproduce writes CSV tables and a report whose plots render in Chromium', async () => {
    const r = await runReproduce({ experiment: 'lmd3', quick: true, out: path.join(work, 'runs'), progress: false, log: () => undefined });
    for (const f of ['summary.csv', 'per_query.csv', 'density_by_embedding.csv', 'summary.txt', 'report.html', 'settings.json', 'explorer.html']) assert.ok(fs.existsSync(path.join(r.dir, f)), `${f} missing`);
    const csv = fs.readFileSync(path.join(r.dir, 'summary.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'group,queries,runs,density_change,loss_improvement,loss_improvement_lo,loss_improvement_hi,accuracy_before,accuracy_after');
    assert.equal(csv.length, 4);
    const png = screenshot(r.report, 1200, 2000);
    // Scatter plots are sparse: markers and fit lines color ~0.2% of the page; a page without
    // plots has none (test/viz/report.test.ts).
    const share = coloredPixelShare(png, { x0: 0, y0: 150, x1: png.width, y1: png.height });
    assert.ok(share > 0.001, `the report plots are blank: ${(100 * share).toFixed(3)}% colored pixels`);
  });
});
