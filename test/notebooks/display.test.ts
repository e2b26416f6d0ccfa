/** Notebook display helpers outside the kernel: the table HTML, and a clear error instead of tslab's "Not ready". */
import * as assert from 'node:assert/strict';
import { TdaError } from '../../src/errors';
import { lineFigure } from '../../src/viz/figures';
import { notebookProgress, notebookTableHtml, showFigure, showTable } from '../../src/viz/notebook';

describe('notebook display helpers', () => {
  it('tables: class tda-table, text columns left-aligned, numbers formatted, text escaped, optional caption', () => {
    const html = notebookTableHtml(
      [
        { method: 'gradDot', prompt: 'a <b> & c', auc: 0.91234, n: 7 },
        { method: 'DataInf', prompt: 'short', auc: 0.5, n: 8 },
      ],
      3,
      'AUC <per method>',
    );
    assert.ok(html.startsWith('<table class="tda-table"><caption>AUC &lt;per method&gt;</caption>'));
    assert.ok(html.includes('<th class="tda-text">method</th><th class="tda-text">prompt</th><th>auc</th><th>n</th>'));
    assert.ok(html.includes('<td class="tda-text">a &lt;b&gt; &amp; c</td><td>0.912</td><td>7</td>'));
    assert.equal(notebookTableHtml([]), '<p><em>(no rows)</em></p>');
  });

  it('outside a running tslab kernel, showing anything is a TdaError that says how to get the kernel', () => {
    const isKernelError = (e: unknown) => e instanceof TdaError && /tslab kernel/.test(e.message) && /kernel:install/.test(e.message);
    assert.throws(() => showTable([{ a: 1 }]), isKernelError);
    assert.throws(() => showFigure(lineFigure('x', [1, 2], [{ name: 'y', values: [1, 2] }], 'x', 'y')), isKernelError);
    assert.throws(() => notebookProgress('loop').update(1, 2), isKernelError);
  });
});
