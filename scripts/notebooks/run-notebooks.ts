/**
 * `npm run test:notebooks`: executes the notebooks headless on the `tda-lab` kernel, the way a
 * reader would run them top to bottom, and fails on the first cell error or when
 * notebooks/README.md quotes numbers the notebooks no longer print.
 *
 *   npm run test:notebooks                     # build, install the kernel, run all eight
 *   npx tsx scripts/notebooks/run-notebooks.ts 03 07 --html   # some of them, plus HTML renderings
 *
 * Each notebook is run with
 *   jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=tda-lab
 *     --ExecutePreprocessor.timeout=600 --output-dir notebooks/executed
 * from the notebook's folder (notebooks/executed/ is gitignored; the committed notebooks keep
 * their outputs cleared). Then every executed notebook's `SUMMARY NN:` line is compared with
 * the one notebooks/README.md quotes. Run times go to notebooks/executed/timings.json.
 * Options:
 *   --out DIR          write executed notebooks there instead
 *   --html             also write HTML renderings (<name>.html next to each executed notebook)
 *   --budget SECONDS   fail when a notebook takes longer (default: no limit)
 *   --update-readme    rewrite the README's quoted lines from this run instead of checking them
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXECUTED_DIR, installedKernelDir, jupyter, jupyterCommand, KERNEL_NAME, notebookFiles, PROJECT_ROOT } from './jupyter';
import { checkSummaries, NOTEBOOK_README, updateReadmeSummaries } from './summaries';

export interface NotebookRun {
  notebook: string;
  seconds: number;
  executed: string;
  html?: string;
}

/** Cell errors recorded in an executed notebook (there are none when nbconvert succeeded). */
export function errorOutputs(executedFile: string): string[] {
  const nb = JSON.parse(fs.readFileSync(executedFile, 'utf8')) as { cells: { cell_type: string; outputs?: { output_type: string; ename?: string; evalue?: string }[] }[] };
  return nb.cells.flatMap((c, i) => (c.outputs ?? []).filter((o) => o.output_type === 'error').map((o) => `cell ${i}: ${o.ename}: ${o.evalue}`));
}

/** stderr text of each cell that wrote some (tslab's compile and run-time errors go there). */
export function stderrOutputs(executedFile: string): string[] {
  const nb = JSON.parse(fs.readFileSync(executedFile, 'utf8')) as { cells: { cell_type: string; outputs?: { output_type: string; name?: string; text?: string | string[] }[] }[] };
  return nb.cells.flatMap((c, i) =>
    (c.outputs ?? [])
      .filter((o) => o.output_type === 'stream' && o.name === 'stderr')
      .map((o) => `cell ${i}: ${Array.isArray(o.text) ? o.text.join('') : o.text}`),
  );
}

/** Executes one notebook into `outDir`; throws with the failing cell's error. */
export function executeNotebook(file: string, outDir = EXECUTED_DIR, opts: { html?: boolean; timeoutSeconds?: number } = {}): NotebookRun {
  fs.mkdirSync(outDir, { recursive: true });
  const name = path.basename(file);
  const t0 = Date.now();
  const args = (dir: string) => [
    'nbconvert',
    '--to',
    'notebook',
    '--execute',
    `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`,
    `--ExecutePreprocessor.timeout=${opts.timeoutSeconds ?? 600}`,
    '--output-dir',
    dir,
    file,
  ];
  const r = jupyter(args(outDir), { needNbconvert: true, cwd: path.dirname(file), allowFailure: true });
  if (r.status !== 0) {
    // tslab reports a failing cell on stderr only (the execute reply carries no message), and
    // nbconvert writes nothing when a cell fails: run it again letting errors through, to show them.
    const diag = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-nb-diag-'));
    let detail = '';
    try {
      jupyter([...args(diag), '--allow-errors'], { needNbconvert: true, cwd: path.dirname(file), allowFailure: true });
      const partial = path.join(diag, name);
      if (fs.existsSync(partial)) detail = stderrOutputs(partial).join('\n');
    } finally {
      fs.rmSync(diag, { recursive: true, force: true });
    }
    const nbOut = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    const failing = nbOut.match(/An error occurred while executing the following cell:\n-+\n([\s\S]*?)\n-+\n/);
    throw new Error(
      `${name} failed (nbconvert exit ${r.status ?? r.signal})` +
        (failing ? `\n--- failing cell ---\n${failing[1]}` : `\n${nbOut.slice(-3000)}`) +
        (detail ? `\n--- kernel stderr ---\n${detail.slice(0, 6000)}` : ''),
    );
  }
  const seconds = (Date.now() - t0) / 1000;
  const executed = path.join(outDir, name);
  const errors = errorOutputs(executed);
  if (errors.length) throw new Error(`${name}: ${errors.join('; ')}`);
  const run: NotebookRun = { notebook: name, seconds, executed };
  if (opts.html) run.html = notebookToHtml(executed);
  return run;
}

/** nbconvert --to html next to the executed notebook; returns the HTML file. */
export function notebookToHtml(executed: string): string {
  jupyter(['nbconvert', '--to', 'html', '--output-dir', path.dirname(executed), executed], { needNbconvert: true });
  return executed.replace(/\.ipynb$/, '.html');
}

function main(): void {
  const args = process.argv.slice(2);
  const flag = (f: string) => args.includes(f);
  const value = (f: string) => {
    const i = args.indexOf(f);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const outDir = path.resolve(value('--out') ?? EXECUTED_DIR);
  const budget = value('--budget') ? Number(value('--budget')) : Infinity;
  const skip = new Set([value('--out'), value('--budget')]);
  const picks = args.filter((a) => !a.startsWith('--') && !skip.has(a));
  const all = notebookFiles();
  const files = picks.length ? picks.map((p) => all.find((f) => path.basename(f).startsWith(p)) ?? path.resolve(p)) : all;
  for (const f of files) if (!fs.existsSync(f)) throw new Error(`no notebook ${f}`);
  if (!fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'index.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  if (!installedKernelDir()) throw new Error(`Jupyter has no '${KERNEL_NAME}' kernel: run \`npm run kernel:install\` first`);
  console.log(`executing ${files.length} notebook(s) with ${jupyterCommand(true).join(' ')} nbconvert, kernel ${KERNEL_NAME}, into ${path.relative(PROJECT_ROOT, outDir) || outDir}`);
  const runs: NotebookRun[] = [];
  const started = Date.now();
  for (const f of files) {
    process.stdout.write(`  ${path.basename(f)} ... `);
    const run = executeNotebook(f, outDir, { html: flag('--html') });
    runs.push(run);
    console.log(`ok, ${run.seconds.toFixed(1)} s`);
    if (run.seconds > budget) throw new Error(`${run.notebook} took ${run.seconds.toFixed(1)} s, over the ${budget} s budget`);
  }
  const total = (Date.now() - started) / 1000;
  fs.writeFileSync(
    path.join(outDir, 'timings.json'),
    JSON.stringify({ total, notebooks: runs.map((r) => ({ notebook: r.notebook, seconds: r.seconds })) }, null, 2) + '\n',
  );
  console.log(`all ${runs.length} notebook(s) ran without errors in ${total.toFixed(0)} s`);
  const executed = runs.map((r) => r.executed);
  if (flag('--update-readme')) {
    console.log(`updated ${updateReadmeSummaries(executed)} summary line(s) in ${path.relative(PROJECT_ROOT, NOTEBOOK_README)}`);
    return;
  }
  const problems = checkSummaries(executed);
  if (problems.length) {
    throw new Error(
      `the numbers in ${path.relative(PROJECT_ROOT, NOTEBOOK_README)} do not match the notebooks' output:\n  ${problems.join('\n  ')}\n` +
        '(if the change is intended: npx tsx scripts/notebooks/run-notebooks.ts --update-readme)',
    );
  }
  console.log(`${path.relative(PROJECT_ROOT, NOTEBOOK_README)}: the quoted summary lines match the output`);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`\ntest:notebooks: ${(e as Error).message}`);
    process.exit(1);
  }
}
