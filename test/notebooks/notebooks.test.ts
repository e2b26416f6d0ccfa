/**
 * The notebooks: committed clean, the kernel spec, and one notebook (03) executed headless,
 * converted to HTML and screenshotted in headless Chromium: its plots draw, its tables render,
 * and it prints the numbers notebooks/README.md quotes.
 *
 * `npm run test:notebooks` executes all eight into notebooks/executed/; when that copy of 03
 * is newer than the notebook, the build and the embedded model, it is reused here instead of
 * running the notebook a second time. Needs Jupyter (nbconvert) and Chromium: .ci/run
 * installs both (scripts/install-system-deps.sh).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { coloredPixelShare, screenshot } from '../helpers/chromium';
import { tmpDir } from '../helpers/fixtures';
import { installKernel, kernelIsCurrent, kernelJson } from '../../scripts/notebooks/install-kernel';
import { EXECUTED_DIR, jupyter, NOTEBOOK_DIR, notebookFiles, PROJECT_ROOT } from '../../scripts/notebooks/jupyter';
import { errorOutputs, executeNotebook } from '../../scripts/notebooks/run-notebooks';
import { checkSummaries, readmeSummaries } from '../../scripts/notebooks/summaries';

interface Notebook {
  nbformat: number;
  metadata: { kernelspec?: { name: string; display_name: string; language: string } };
  cells: { cell_type: string; source: string | string[]; outputs?: unknown[]; execution_count?: number | null }[];
}

const read = (file: string): Notebook => JSON.parse(fs.readFileSync(file, 'utf8'));
const source = (cell: Notebook['cells'][number]) => (Array.isArray(cell.source) ? cell.source.join('') : cell.source);

const EXPECTED = [
  '01-load-lora-checkpoints',
  '02-computing-influence',
  '03-debias-vs-denoise',
  '04-auc-curves',
  '05-do-influence-functions-work',
  '06-data-density',
  '07-teaching-influence-functions',
  '08-ground-truth',
];

describe('notebooks', () => {
  it('are the eight, committed with outputs cleared, on the tda-lab kernel, each ending with a summary line the README quotes', () => {
    const files = notebookFiles();
    assert.deepEqual(files.map((f) => path.basename(f, '.ipynb')), EXPECTED);
    const quoted = readmeSummaries();
    for (const f of files) {
      const nb = read(f);
      const name = path.basename(f);
      const num = name.slice(0, 2);
      assert.equal(nb.nbformat, 4, name);
      assert.deepEqual(nb.metadata.kernelspec, { name: 'tda-lab', display_name: 'TypeScript (tda-lab)', language: 'typescript' }, name);
      const code = nb.cells.filter((c) => c.cell_type === 'code');
      for (const c of code) {
        assert.deepEqual(c.outputs, [], `${name}: outputs must be cleared`);
        assert.equal(c.execution_count, null, `${name}: execution counts must be cleared`);
      }
      assert.equal(nb.cells[0].cell_type, 'markdown', `${name} starts with prose`);
      assert.match(source(nb.cells[0]), new RegExp(`^# ${num} · `), `${name}: title`);
      assert.ok(nb.cells.filter((c) => c.cell_type === 'markdown').length >= 4, `${name}: explains itself`);
      assert.ok(code.some((c) => source(c).includes(`SUMMARY ${num}:`)), `${name} prints a SUMMARY ${num} line`);
      assert.ok(quoted.has(num), `notebooks/README.md quotes SUMMARY ${num}`);
      assert.ok(code.some((c) => /from 'tda-lab'/.test(source(c))), `${name} imports the package as 'tda-lab'`);
    }
  });

  it('kernel spec starts this checkout\'s tslab with the project resolvable as tda-lab', () => {
    const spec = kernelJson() as { argv: string[]; display_name: string; language: string; env: Record<string, string> };
    assert.deepEqual(spec.argv, [process.execPath, path.join(PROJECT_ROOT, 'node_modules', '.bin', 'tslab'), 'kernel', '--config-path', '{connection_file}']);
    assert.ok(fs.existsSync(spec.argv[1]), 'node_modules/.bin/tslab exists');
    assert.equal(spec.display_name, 'TypeScript (tda-lab)');
    assert.equal(spec.language, 'typescript');
    assert.equal(spec.env.NODE_PATH, path.join(NOTEBOOK_DIR, 'node_modules'));
  });

  describe('03-debias-vs-denoise, executed headless', function () {
    this.timeout(900000);
    const name = '03-debias-vs-denoise.ipynb';
    let executed: string;
    let html: string;
    let work: string;

    before(() => {
      work = tmpDir('tda-nb-');
      const copy = path.join(EXECUTED_DIR, name);
      const inputs = [path.join(NOTEBOOK_DIR, name), path.join(PROJECT_ROOT, 'dist', 'index.js'), path.join(PROJECT_ROOT, 'data', 'base-model', 'model.safetensors')];
      const fresh = fs.existsSync(copy) && inputs.every((f) => fs.statSync(f).mtimeMs < fs.statSync(copy).mtimeMs);
      if (fresh) {
        executed = copy;
      } else {
        if (!kernelIsCurrent()) installKernel();
        executed = executeNotebook(path.join(NOTEBOOK_DIR, name), path.join(work, 'executed')).executed;
      }
      jupyter(['nbconvert', '--to', 'html', '--output-dir', work, executed], { needNbconvert: true });
      html = path.join(work, name.replace(/\.ipynb$/, '.html'));
    });
    after(() => fs.rmSync(work, { recursive: true, force: true }));

    it('ran without errors and prints the numbers notebooks/README.md quotes', () => {
      assert.deepEqual(errorOutputs(executed), []);
      assert.deepEqual(checkSummaries([executed]), []);
    });

    it('renders its tables and plots in headless Chromium', () => {
      const page = fs.readFileSync(html, 'utf8');
      assert.equal(page.match(/\* plotly\.js v\d/g)?.length, 1, 'plotly.js inlined exactly once');
      // Four figures (two ablation bar charts, two per-checkpoint line charts) and the explorer's
      // script, which holds its two plot calls (where the positives rank; method agreement).
      assert.equal(page.match(/Plotly\.newPlot\(/g)?.length, 4 + 2, 'four figures plus the explorer');
      assert.equal(page.match(/class="tda-explorer/g)?.length ?? 0, 1, 'one explorer');
      assert.ok((page.match(/<table class="tda-table"/g)?.length ?? 0) >= 4, 'the pairs, runs, AUC and score-scale tables');
      for (const header of ['ft plain', 'bias DDA', 'hallucinated queries']) assert.ok(page.includes(`<th class="tda-text">${header}</th>`) || page.includes(`<th>${header}</th>`), `table header ${header}`);

      // The same page with every Plotly.newPlot call disabled is the control: the difference in
      // colored pixels is what the plots drew (code highlighting and tables are in both).
      const control = path.join(work, 'control.html');
      fs.writeFileSync(control, page.replace(/Plotly\.newPlot\(/g, '(function () {})('));
      const width = 1200;
      const height = 7000;
      const withPlots = coloredPixelShare(screenshot(html, width, height));
      const withoutPlots = coloredPixelShare(screenshot(control, width, height));
      const drawn = withPlots - withoutPlots;
      assert.ok(drawn > 0.01, `plots look blank: ${(100 * withPlots).toFixed(2)}% colored pixels with plots, ${(100 * withoutPlots).toFixed(2)}% without`);
    });
  });
});
