import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupedBarFigure, lineFigure, rocFigure } from '../../src/viz/figures';
import { renderReport, writeReport } from '../../src/viz/report';
import { coloredPixelShare, screenshot } from '../helpers/chromium';
import { tmpDir } from '../helpers/fixtures';

describe('HTML report', () => {
  const figures = [
    rocFigure('ROC', [{ name: 'gradDot', fpr: [0, 0.1, 0.5, 1], tpr: [0, 0.6, 0.9, 1], auc: 0.86 }]),
    groupedBarFigure('AUC', ['gradDot', 'dataInf'], [{ name: 'plain', values: [0.8, 0.9] }, { name: 'DDA', values: [0.85, 0.95], lo: [0.8, 0.9], hi: [0.9, 0.99] }], 'AUC', [0, 1]),
    lineFigure('per checkpoint', [0, 1, 2], [{ name: 'gradDot', values: [0.6, 0.8, 0.7] }], 'checkpoint', 'AUC'),
  ];

  it('is self-contained: plotly inlined once, one div per figure, escaped text, no external scripts', () => {
    const html = renderReport({ title: 'a <b> & c', sections: [{ heading: 'x', text: ['</script><script>alert(1)</script>'], table: [{ method: 'gradDot', auc: 0.912345 }], figures }] });
    assert.equal(html.match(/Plotly\.newPlot/g)?.length, 3);
    assert.equal((html.match(/<script>/g) ?? []).length, 1 + 3, 'one plotly bundle plus one call per figure');
    assert.ok(!/<script[^>]+src=/.test(html), 'no external script');
    assert.ok(html.includes('a &lt;b&gt; &amp; c'));
    assert.ok(!html.includes('<script>alert(1)'));
    assert.ok(html.includes('<td>0.912</td>'));
    assert.ok(html.length > 3_000_000, 'plotly.js is inlined');
  });

  it('shows its plots when opened offline in headless Chromium', function () {
    this.timeout(180000);
    const dir = tmpDir();
    const file = path.join(dir, 'report.html');
    writeReport(file, { title: 'plots', sections: [{ heading: 'figures', figures }] });
    const png = screenshot(file, 1200, 1600);
    // The figures sit below the title; plots draw colored traces, bars and axes there.
    const share = coloredPixelShare(png, { x0: 0, y0: 120, x1: png.width, y1: png.height });
    assert.ok(share > 0.01, `plot area looks blank: ${(100 * share).toFixed(2)}% colored pixels`);
    const empty = path.join(dir, 'empty.html');
    writeReport(empty, { title: 'no plots', sections: [{ heading: 'nothing', text: ['just text'] }] });
    const blank = coloredPixelShare(screenshot(empty, 1200, 1600), { x0: 0, y0: 120, x1: 1200, y1: 1600 });
    assert.ok(blank < 0.001, `control page should have no colored pixels, got ${blank}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
