import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScoreMatrix } from '../../src/attribution/types';
import { averageRanks, overlapShare, spearman } from '../../src/viz/explorer/agreement';
import { buildExplorerData, ExplorerInput } from '../../src/viz/explorer/model';
import { plotlyScript } from '../../src/viz/html';
import { explorerFragment, renderExplorerPage, writeExplorer } from '../../src/viz/explorer/page';
import { openPage } from '../helpers/browser';
import { coloredPixelShare } from '../helpers/chromium';
import { tempDirs, throwsTda } from '../helpers/errors';
import { syntheticExplorerInput } from './explorerFixtures';
import { PNG } from 'pngjs';
import { TdaError } from '../../src/errors';
import { showExplorer } from '../../src/viz/explorer/notebook';

const matrix = (rows: number[][]): ScoreMatrix => ({ nTest: rows.length, nTrain: rows[0].length, data: Float32Array.from(rows.flat()) });

/** Two queries over six training examples, two methods that agree on query 0 and disagree on query 1. */
function smallInput(): ExplorerInput {
  return {
    title: 'small',
    k: 2,
    groups: [
      {
        name: 'g',
        train: ['t0', 't1', 't2', 't3', 't4', 't5'].map((text) => ({ text })),
        queries: [
          { prompt: 'q0', answer: 'a0', label: 'hallucination', positives: [5] },
          { prompt: 'q1', answer: 'a1', label: 'correct' },
        ],
        scores: [
          { method: 'gradDot', view: 'plain', full: matrix([[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6]]) },
          { method: 'dataInf', view: 'plain', full: matrix([[60, 50, 40, 30, 20, 10], [6, 5, 4, 3, 2, 1]]) },
          { method: 'gradDot', view: 'DDA', full: matrix([[0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0]]) },
        ],
      },
    ],
  };
}

describe('explorer data model', () => {
  it('Spearman with ties equals the Pearson correlation of average ranks; overlap counts shared members', () => {
    assert.deepEqual(averageRanks([1, 2, 2, 3]), [1, 2.5, 2.5, 4]);
    // By hand: rank deviations (-1.5, 0, 0, 1.5) and (-1.5, 0.5, -0.5, 1.5): 4.5 / sqrt(4.5 * 5).
    assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 3, 2, 4]) - 4.5 / Math.sqrt(22.5)) < 1e-12);
    assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
    assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
    assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
    assert.equal(overlapShare(new Set([1, 2, 3, 4]), new Set([2, 4, 9])), 0.5);
  });

  it('keeps each column top k plus the known positives, with ranks among all training examples', () => {
    const d = buildExplorerData(smallInput());
    assert.deepEqual(d.methods, ['gradDot', 'dataInf']);
    assert.deepEqual(d.views, ['plain', 'DDA']);
    assert.deepEqual(d.labels, ['correct', 'hallucination']);
    const [q0, q1] = d.queries;
    const plain0 = q0.views.find((v) => v.view === 'plain')!;
    // Both methods' top 2 are t0, t1; the known positive t5 is added (rank 6 for both).
    assert.deepEqual(plain0.local, [0, 1, 5]);
    assert.deepEqual(plain0.positive, [0, 0, 1]);
    assert.deepEqual(plain0.cols.map((c) => c.rank), [[1, 2, 6], [1, 2, 6]]);
    assert.deepEqual(plain0.cols[1].score, [60, 50, 10]);
    assert.deepEqual(plain0.spearman, [[1, 1], [1, 1]]);
    assert.deepEqual(plain0.overlap, [[1, 1], [1, 1]]);
    const plain1 = q1.views.find((v) => v.view === 'plain')!;
    // gradDot's top 2 are t5, t4; dataInf's are t0, t1: no overlap, perfectly reversed ranks.
    assert.deepEqual(plain1.local, [5, 4, 0, 1]);
    assert.deepEqual(plain1.overlap, [[1, 0], [0, 1]]);
    assert.deepEqual(plain1.spearman, [[1, -1], [-1, 1]]);
    // Ties rank the lower training index first, like top-k files.
    const dda1 = q1.views.find((v) => v.view === 'DDA')!;
    assert.deepEqual(dda1.local, [0, 1]);
    assert.deepEqual(dda1.cols[0].rank, [1, 2]);
    // Per-token weights of a training example for one query land on its row.
    const withTokens = smallInput();
    const ta = { tokens: ['t', '5'], weights: [0.5, -0.25] };
    withTokens.groups[0].queries[0].trainTokens = { plain: { 5: ta } };
    const p0 = buildExplorerData(withTokens).queries[0].views.find((v) => v.view === 'plain')!;
    assert.deepEqual(p0.rowTokens, [null, null, ta]);
    assert.equal(buildExplorerData(withTokens).queries[0].views.find((v) => v.view === 'DDA')!.rowTokens, undefined);
    // Texts are embedded once, only for rows that are shown.
    assert.deepEqual(d.train.map((t) => t.text).sort(), ['t0', 't1', 't4', 't5']);
    assert.equal(d.train[plain0.rows[2]].text, 't5');
  });

  it('ranks and top k from a full matrix equal a plain sort (descending, ties by lower index)', () => {
    // Scores rounded to a few values, so ties are common.
    const nTrain = 300;
    const rows = [0, 1, 2].map((q) => Array.from({ length: nTrain }, (_, i) => Math.round(10 * Math.sin(i * (q + 1.7))) / 2));
    const input: ExplorerInput = {
      title: 'ties',
      k: 7,
      groups: [{ name: 'g', train: Array.from({ length: nTrain }, (_, i) => ({ text: `t${i}` })), queries: rows.map((_, q) => ({ prompt: `q${q}`, answer: '', positives: [q * 50, 299] })), scores: [{ method: 'm', view: 'plain', full: matrix(rows) }] }],
    };
    buildExplorerData(input).queries.forEach((query, q) => {
      const order = rows[q].map((_, i) => i).sort((a, b) => rows[q][b] - rows[q][a] || a - b);
      const v = query.views[0];
      assert.deepEqual(v.local.slice(0, 7), order.slice(0, 7));
      v.local.forEach((i, r) => assert.equal(v.cols[0].rank[r], order.indexOf(i) + 1, `query ${q}, training example ${i}`));
    });
  });

  it('top-k columns leave rows outside their top k without score or rank', () => {
    const input = smallInput();
    input.groups[0].scores = [
      { method: 'a', view: 'plain', topK: { nTest: 2, k: 2, nTrain: 6, indices: Int32Array.from([0, 1, 2, 3]), scores: Float32Array.from([3, 2, 9, 8]) } },
      { method: 'b', view: 'plain', topK: { nTest: 2, k: 2, nTrain: 6, indices: Int32Array.from([1, 4, 2, 3]), scores: Float32Array.from([5, 4, 7, 6]) } },
    ];
    const v = buildExplorerData(input).queries[0].views[0];
    assert.deepEqual(v.local, [0, 1, 4, 5]);
    assert.deepEqual(v.cols[0].score, [3, 2, null, null]);
    assert.deepEqual(v.cols[1].rank, [null, 1, 2, null]);
    assert.deepEqual(v.overlap, [[1, 0.5], [0.5, 1]]);
    assert.deepEqual(v.spearman, [[1, null], [null, 1]], 'fewer than 3 shared rows: no correlation');
  });

  it('refuses scores whose shape does not match the texts, naming the source and the column', () => {
    const input = { ...smallInput(), source: 'run/attributions' };
    input.groups[0].scores.push({ method: 'lissa', view: 'plain', full: matrix([[1, 2, 3]]) });
    throwsTda(() => buildExplorerData(input), 'run/attributions', 'lissa (plain)', 'scores 1 queries');
    const bad = smallInput();
    bad.groups[0].queries[0].positives = [6];
    throwsTda(() => buildExplorerData(bad), "'positives'", 'positive 6');
  });

  it('the page is self-contained: plotly inlined once, data cannot close its script tag', () => {
    const input = smallInput();
    input.groups[0].queries[0].prompt = '</script><script>alert(1)</script>';
    const html = renderExplorerPage(buildExplorerData(input));
    const bundle = plotlyScript();
    assert.ok(html.includes(bundle) && html.indexOf(bundle) === html.lastIndexOf(bundle), 'plotly.js inlined exactly once');
    assert.equal((html.match(/<script>/g) ?? []).length, 2, 'the plotly bundle plus the explorer script');
    assert.ok(!html.includes('<script>alert(1)'));
    assert.ok(!/<script[^>]+src=/.test(html), 'no external script');
    assert.ok(!explorerFragment(buildExplorerData(smallInput())).includes(bundle.slice(0, 200)), 'the notebook fragment leaves plotly to the notebook');
  });
});

describe('explorer in a notebook', () => {
  it('outside a running tslab kernel, showExplorer is a TdaError that says how to get the kernel', () => {
    assert.throws(() => showExplorer(buildExplorerData(smallInput())), (e: unknown) => e instanceof TdaError && /tslab kernel/.test(e.message));
  });
});

describe('explorer in headless Chromium', function () {
  this.timeout(240000);
  const dirs = tempDirs('tda-explorer-');
  after(() => dirs.cleanup());

  it('loads without console errors; selecting a query changes the examples; search filters; heatmaps draw', async () => {
    const file = path.join(dirs.make(), 'explorer.html');
    const input = syntheticExplorerInput({ nQueries: 60, nTrain: 300, views: ['plain', 'DDA'], tokens: true });
    writeExplorer(file, buildExplorerData(input));
    const { page, errors, requests, close } = await openPage(file);
    try {
      await page.waitForSelector('.tda-explorer[data-ready="1"]', { timeout: 60000 });
      assert.equal(await page.textContent('.tdx-count'), '60 of 60 queries');
      const items = await page.$$('.tdx-item');
      assert.ok(items.length > 5 && items.length < 60, `the list renders only the rows in view, got ${items.length}`);
      const shown = () => page.$$eval('.tdx-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-train')).join(','));
      const first = await shown();
      assert.match((await page.textContent('.tdx-prompt'))!, /^query 0:/);
      await page.click('.tdx-item[data-query="3"]');
      assert.match((await page.textContent('.tdx-prompt'))!, /^query 3:/);
      assert.notEqual(await shown(), first, 'another query shows other training examples');
      // Token heatmaps on the query (one shaded span per token) and on the training examples that have weights.
      assert.ok((await page.$$('.tdx-prompt .tdx-tok')).length >= 7);
      const heat = await page.$$eval('tbody tr', (rows) => rows.map((r) => [Number(r.getAttribute('data-train')), r.querySelectorAll('.tdx-train .tdx-tok').length]));
      for (const [i, n] of heat) assert.equal(n, i % 2 === 0 ? 12 : 0, `training example ${i}`);
      // Training rows render a screenful at a time: 25, then the rest on request.
      const nRows = () => page.$$eval('.tdx-table tbody tr', (rows) => rows.length);
      assert.equal(await nRows(), 25);
      await page.click('.tdx-more');
      assert.ok((await nRows()) > 25);
      // Another setting shows its own rows.
      const plainRows = await shown();
      await page.click('.tdx-views button[data-view="DDA"]');
      assert.notEqual(await shown(), plainRows);
      // Known positives are marked in the rows that hold them.
      const posRows = await page.$$eval('tr.tdx-posrow', (rs) => rs.length);
      const badges = await page.$$eval('tr.tdx-posrow .tdx-pos', (bs) => bs.length);
      assert.equal(badges, posRows);
      // Search: "query 1" matches 1, 10..19 (11 queries); the list shows only those.
      await page.fill('.tdx-search', 'query 1');
      assert.equal(await page.textContent('.tdx-count'), '11 of 60 queries');
      const prompts = await page.$$eval('.tdx-item .tdx-p', (ps) => ps.map((p) => p.textContent ?? ''));
      assert.equal(prompts.length, 11);
      assert.ok(prompts.every((p) => p.startsWith('query 1')), prompts.join(' | '));
      await page.selectOption('.tdx-label-filter', 'class-1');
      assert.equal(await page.textContent('.tdx-count'), '5 of 60 queries', 'query 1, 10, 13, 16 and 19 are class-1');
      await page.fill('.tdx-search', '');
      await page.selectOption('.tdx-label-filter', '');
      // Agreement heatmaps and the positives' ranks drew (plotly made its SVG); the explanation is there.
      assert.equal(await page.$$eval('.tdx-agree .main-svg', (s) => s.length > 0), true);
      await page.click('.tdx-views button[data-view="plain"]');
      assert.equal(await page.$$eval('.tdx-posplot .main-svg', (s) => s.length > 0), true, 'the first method ranks a known positive first at the plain setting');
      assert.match((await page.textContent('.tdx-explain'))!, /positive score means the training example helps.*Token shading/s);
      const png = PNG.sync.read(await page.screenshot({ fullPage: false }));
      const share = coloredPixelShare(png);
      assert.ok(share > 0.01, `screenshot looks blank: ${(100 * share).toFixed(2)}% colored pixels`);
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [], 'the page makes no network requests');
    } finally {
      await close();
    }
  });

  it('two fragments on one page (a notebook with two explorers) work independently', async () => {
    const file = path.join(dirs.make(), 'two.html');
    const a = buildExplorerData(syntheticExplorerInput({ nQueries: 6, nTrain: 40, seed: 1 }));
    const b = buildExplorerData(syntheticExplorerInput({ nQueries: 9, nTrain: 40, seed: 2 }));
    fs.writeFileSync(file, `<!DOCTYPE html><html><head><meta charset="utf-8"><script>${plotlyScript()}</script></head><body>${explorerFragment(a)}${explorerFragment(b)}</body></html>`);
    const { page, errors, close } = await openPage(file);
    try {
      await page.locator('.tda-explorer[data-ready="1"]').nth(1).waitFor({ timeout: 60000 });
      const counts = await page.$$eval('.tdx-count', (cs) => cs.map((c) => c.textContent));
      assert.deepEqual(counts, ['6 of 6 queries', '9 of 9 queries']);
      await page.locator('.tda-explorer').nth(1).locator('.tdx-item[data-query="4"]').click();
      const prompts = await page.$$eval('.tdx-prompt', (ps) => ps.map((p) => p.textContent ?? ''));
      assert.match(prompts[0], /^query 0:/);
      assert.match(prompts[1], /^query 4:/);
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  it('1,000 queries x 10,000 training examples: a small file that becomes interactive quickly', async () => {
    const file = path.join(dirs.make(), 'explorer.html');
    const t0 = Date.now();
    const data = buildExplorerData(syntheticExplorerInput({ nQueries: 1000, nTrain: 10000, methods: ['gradDot', 'dataInf', 'kronGrad', 'repSim'], views: ['plain', 'denoise'] }));
    writeExplorer(file, data);
    const buildSeconds = (Date.now() - t0) / 1000;
    const mb = fs.statSync(file).size / 1e6;
    assert.ok(mb < 20, `explorer.html is ${mb.toFixed(1)} MB`);
    const shown = new Set(data.queries.flatMap((q) => q.views.flatMap((v) => v.rows)));
    assert.equal(data.train.length, shown.size, 'only the texts of shown training examples are embedded');
    assert.ok(buildSeconds < 60, `building took ${buildSeconds} s`);
    const { page, errors, close } = await openPage(file);
    try {
      const t1 = Date.now();
      await page.waitForSelector('.tda-explorer[data-ready="1"]', { timeout: 60000 });
      const readySeconds = (Date.now() - t1) / 1000;
      assert.ok(readySeconds < 20, `interactive after ${readySeconds} s`);
      assert.equal(await page.textContent('.tdx-count'), '1000 of 1000 queries');
      assert.ok((await page.$$('.tdx-item')).length < 40, 'the list renders lazily');
      // Scrolling to the end renders the last queries.
      await page.$eval('.tdx-list', (l) => (l.scrollTop = l.scrollHeight));
      await page.waitForSelector('.tdx-item[data-query="999"]', { timeout: 10000 });
      await page.click('.tdx-item[data-query="999"]');
      assert.match((await page.textContent('.tdx-prompt'))!, /^query 999:/);
      await page.fill('.tdx-search', 'query 99');
      assert.equal(await page.textContent('.tdx-count'), '11 of 1000 queries');
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });
});
