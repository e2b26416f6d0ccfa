/**
 * `tda-lab explore`: the attribution explorer (one self-contained HTML page) for a run folder
 * made by `reproduce`, or for score files made by `tda-lab score` (full or `--top-k`) with the
 * texts of their training and test sets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { positiveInt } from './parsers';
import { TdaError } from '../errors';
import { hasAttributions, readRunAttributions } from '../experiments/runAttributions';
import { buildExplorerData, ExplorerData, ExplorerInput } from '../viz/explorer/model';
import { writeExplorer } from '../viz/explorer/page';
import { readScoreColumn } from '../viz/explorer/scoreInputs';
import { exampleText, readTextJsonl } from '../viz/explorer/texts';
import { runExploreWithTokens } from './exploreTokens';

export interface ExploreOptions {
  /** Score files, or one run folder. */
  scores: string[];
  train?: string;
  test?: string;
  /** `{"positives": [[...], ...]}`, as `tda-lab metrics` reads. */
  labels?: string;
  out: string;
  k?: number;
  title?: string;
}

function readPositives(file: string, nTest: number): number[][] {
  let o: { positives?: unknown };
  try {
    o = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TdaError(`cannot read JSON: ${(e as Error).message}`, { file });
  }
  if (!Array.isArray(o.positives) || o.positives.length !== nTest || !o.positives.every((p) => Array.isArray(p))) {
    throw new TdaError(`must be a list of ${nTest} lists of training indices (one per query)`, { file, field: 'positives' });
  }
  return o.positives as number[][];
}

/** The explorer input for score files over one training and one test set. */
export function exploreInputFromFiles(o: ExploreOptions): ExplorerInput {
  if (!o.train) throw new TdaError('score files need --train <jsonl> (the training texts)', { field: '--train' });
  if (!o.test) throw new TdaError('score files need --test <jsonl> (the query texts)', { field: '--test' });
  const train = readTextJsonl(o.train);
  const test = readTextJsonl(o.test);
  const positives = o.labels ? readPositives(o.labels, test.length) : test.map((t) => t.positives ?? []);
  const scores = o.scores.map((f) => {
    const col = readScoreColumn(f);
    const m = col.full ?? col.topK!;
    if (m.nTest !== test.length) throw new TdaError(`has ${m.nTest} queries but ${o.test} has ${test.length} lines`, { file: f, field: 'scores' });
    if (m.nTrain !== train.length) throw new TdaError(`has ${m.nTrain} training examples but ${o.train} has ${train.length} lines`, { file: f, field: 'scores' });
    return col;
  });
  const seen = new Set<string>();
  for (const [i, s] of scores.entries()) {
    const key = `${s.method}|${s.view}`;
    if (seen.has(key)) throw new TdaError(`repeats method '${s.method}' at setting '${s.view}' of an earlier file`, { file: o.scores[i], field: 'method' });
    seen.add(key);
  }
  return {
    title: o.title ?? `Attribution explorer: ${path.basename(o.test)}`,
    subtitle: `${test.length} queries, ${train.length} training examples; scores from ${o.scores.map((f) => path.basename(f)).join(', ')}`,
    groups: [
      {
        name: path.basename(o.test),
        train: train.map((e) => ({ text: exampleText(e) })),
        queries: test.map((t, i) => ({ prompt: t.prompt, answer: t.response, label: t.label, positives: positives[i] })),
        scores,
      },
    ],
    source: o.scores.join(', '),
  };
}

export function runExplore(o: ExploreOptions): ExplorerData {
  const dirs = o.scores.filter((s) => fs.existsSync(s) && fs.statSync(s).isDirectory());
  let input: ExplorerInput;
  if (dirs.length > 0) {
    if (o.scores.length > 1) throw new TdaError('give one run folder, or score files', { file: dirs[0], field: '--scores' });
    if (!hasAttributions(dirs[0])) throw new TdaError('is a folder without attributions/explorer.json (a run folder made by tda-lab reproduce dda)', { file: dirs[0], field: '--scores' });
    input = readRunAttributions(dirs[0]);
    if (o.title) input.title = o.title;
  } else {
    input = exploreInputFromFiles(o);
  }
  const data = buildExplorerData({ ...input, k: o.k ?? 10 });
  writeExplorer(o.out, data);
  return data;
}

export function registerExploreCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('explore')
    .description('an interactive, self-contained HTML page: per query, the training examples each method ranks highest')
    .requiredOption('--scores <paths...>', 'score files from tda-lab score (full or --top-k; one per method/setting), or a run folder from tda-lab reproduce')
    .option('--train <jsonl>', 'training texts, {"prompt","response"} per line (with score files)')
    .option('--test <jsonl>', 'query texts, {"prompt","response"[,"label"]} per line; response = the model output (with score files)')
    .option('--labels <json>', 'known positives, {"positives": [[train indices], ...]}')
    .option('--k <n>', 'training examples per method and query', positiveInt, 10)
    .option('--title <text>', 'page title')
    .requiredOption('--out <file>', 'the HTML page to write')
    .option('--tokens <method>', 'with score files: per-token heatmaps of this method\'s top k per query (gradDot, gradCos, dataInf, lissa, exact, kronGrad), computed from --model and --adapter')
    .option('--model <dir>', 'with --tokens: the Hugging Face model directory (with tokenizer.json)')
    .option('--adapter <dir>', 'with --tokens: the PEFT adapter the outputs came from')
    .action(async (o) => {
      const opts = { scores: o.scores, train: o.train, test: o.test, labels: o.labels, out: o.out, k: o.k, title: o.title };
      let data: ExplorerData;
      if (o.tokens !== undefined) {
        if (o.scores.some((s: string) => fs.existsSync(s) && fs.statSync(s).isDirectory())) {
          throw new TdaError('applies to score files; a run folder keeps its own heatmaps (reproduce dda)', { field: '--tokens' });
        }
        await startBackend();
        data = await runExploreWithTokens({ ...opts, tokens: o.tokens, model: o.model, adapter: o.adapter });
      } else {
        if (o.model !== undefined || o.adapter !== undefined) throw new TdaError('--model and --adapter go with --tokens <method>', { field: o.model !== undefined ? '--model' : '--adapter' });
        data = runExplore(opts);
      }
      process.stderr.write(`wrote ${o.out}: ${data.queries.length} queries, ${data.train.length} training texts, ${data.methods.length} methods\n`);
    });
}
