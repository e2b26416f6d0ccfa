/**
 * `tda-lab tokens`: per-token attribution of one (query, training example) pair: each token
 * of both texts with its contribution to the pair's score, the two sums, and the score as
 * the method computes it for the whole training set.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveInt } from './parsers';
import { createScorer, METHODS } from '../attribution/registry';
import { optionFlag, Settings } from '../attribution/method';
import { PairTokenReport, TokenExplainer, TokenSide } from '../attribution/tokenExplainer';
import { checkTokenMethod, TOKEN_METHODS, tokenScorer } from '../attribution/tokens';
import { LabelMask } from '../data/batch';
import { readExamplesJsonl, validateTokenIds } from '../data/examples';
import { TdaError } from '../errors';
import { computeLoraGradients } from '../gradients/compute';
import { GradientSet, inMemorySource } from '../gradients/types';
import { writeFileAtomic, writeFully } from '../io/fsutil';
import { loadModelInputs } from './grads';
import { progressBar } from './progress';

export const TOKENS_FORMAT = 'tda-lab.tokens';

/** Methods whose scores do not depend on the rest of the training set: only the example's gradient is needed. */
const PAIR_ONLY = ['gradDot', 'gradCos'];

export interface TokensOptions {
  model: string;
  adapter: string;
  train: string;
  test: string;
  query: number;
  example: number;
  method?: string;
  options?: Record<string, unknown>;
  mask?: LabelMask;
  batchSize?: number;
  out?: string;
  progress?: boolean;
}

export interface TokensResult extends PairTokenReport {
  format: typeof TOKENS_FORMAT;
  mask: LabelMask;
  settings: Settings;
  /** The method's score of the pair from its own scoring (attribute()), for comparison with the sums. */
  methodScore: number;
}

function checkIndex(i: number, n: number, file: string, flag: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new TdaError(`index ${i} is out of range: ${file} has ${n} examples (0 to ${n - 1})`, { file, field: flag });
}

export async function runTokens(o: TokensOptions): Promise<TokensResult> {
  const method = o.method ?? 'dataInf';
  const mask = o.mask ?? 'response';
  // Refuse a method without a token split before any model is loaded.
  checkTokenMethod(method, '--method');
  const scorer = tokenScorer(createScorer(method, o.options ?? {}), '--method');
  const { model, adapter, tokenizer, examples: train } = loadModelInputs(o.model, o.adapter, o.train);
  try {
    if (!adapter) throw new TdaError('an adapter is needed', { field: '--adapter' });
    const test = readExamplesJsonl(o.test, tokenizer);
    validateTokenIds(test, model.config.vocabSize, o.test);
    checkIndex(o.query, test.length, o.test, '--query');
    checkIndex(o.example, train.length, o.train, '--example');
    const gradOpts = { mask, batchSize: o.batchSize ?? 8, padId: tokenizer?.padId ?? 0 };
    const bar = progressBar('training gradients', o.progress ?? true);
    // gradDot and gradCos score a pair from its two gradients alone; the others need the whole training set.
    const trainSeqs = PAIR_ONLY.includes(method) ? [train[o.example]] : train;
    const trainGrads = await computeLoraGradients(model, adapter, trainSeqs, { ...gradOpts, onProgress: (d, t) => bar.update(d, t) });
    bar.stop();
    const at = PAIR_ONLY.includes(method) ? 0 : o.example;
    const queryGrads: GradientSet = await computeLoraGradients(model, adapter, [test[o.query]], { ...gradOpts, workers: 0 });
    scorer.cache(inMemorySource(trainGrads));
    const methodScore = scorer.attribute(queryGrads).data[at];
    const explainer = new TokenExplainer(model, adapter, scorer, { examples: trainSeqs, gradients: trainGrads }, { examples: [test[o.query]], gradients: queryGrads }, { mask, padId: gradOpts.padId, tokenizer, batchSize: gradOpts.batchSize });
    try {
      const pair = explainer.pair(0, at);
      const result: TokensResult = {
        format: TOKENS_FORMAT,
        method,
        mask,
        settings: scorer.settings(),
        methodScore,
        score: pair.score,
        query: { ...pair.query, index: o.query },
        example: { ...pair.example, index: o.example },
      };
      if (o.out) writeFileAtomic(o.out, (fd) => writeFully(fd, Buffer.from(JSON.stringify(result, null, 1) + '\n')));
      return result;
    } finally {
      explainer.dispose();
    }
  } finally {
    model.dispose();
  }
}

const num = (v: number) => (v === 0 || (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5) ? v.toFixed(6) : v.toExponential(4));

function formatSide(title: string, side: TokenSide): string {
  const lines = [title];
  const width = Math.max(5, ...side.tokens.map((t) => JSON.stringify(t.text).length));
  lines.push(`  ${'pos'.padStart(4)}  ${'token'.padEnd(width)}  contribution`);
  for (const t of side.tokens) lines.push(`  ${String(t.position).padStart(4)}  ${JSON.stringify(t.text).padEnd(width)}  ${t.contribution === null ? '-' : num(t.contribution)}`);
  lines.push(`  sum ${num(side.sum)}`);
  return lines.join('\n');
}

/** The terminal report: both sides token by token, each sum next to the method's score. */
export function formatTokens(r: TokensResult): string {
  return [
    `${r.method} score of query ${r.query.index} and training example ${r.example.index}: ${num(r.methodScore)} (positive = the example helps the query's output; mask ${r.mask})`,
    formatSide(`training example ${r.example.index}, tokens (contribution of each token's loss term; - = not counted by the mask):`, r.example),
    formatSide(`query ${r.query.index}, tokens:`, r.query),
    `sums: training tokens ${num(r.example.sum)}, query tokens ${num(r.query.sum)}; score ${num(r.methodScore)}`,
  ].join('\n\n');
}

function index(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('must be a whole number >= 0');
  return Number(value);
}

export function registerTokensCommand(program: Command, startBackend: () => Promise<unknown>): void {
  const command = program
    .command('tokens')
    .description("per-token attribution of one (query, training example) pair: each token's contribution to their score, on both sides")
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .requiredOption('--adapter <dir>', 'PEFT LoRA adapter directory')
    .requiredOption('--train <jsonl>', 'training examples, {"prompt","response"} or {"input_ids","prompt_length"} per line')
    .requiredOption('--test <jsonl>', 'queries, in the same forms (the response is the output being explained)')
    .requiredOption('--query <i>', 'query index (0-based, counting the examples of --test)', index)
    .requiredOption('--example <j>', 'training example index (0-based, counting the examples of --train)', index)
    .option('--method <name>', `one of ${TOKEN_METHODS.join(', ')}`, 'dataInf')
    .option('--mask <mask>', 'which tokens the loss counts: response or full', 'response')
    .option('--batch-size <n>', 'sequences per backward pass', positiveInt, 8)
    .option('--out <file>', `also write the result as JSON (format ${TOKENS_FORMAT})`);
  // The options of the methods that split into tokens, as `tda-lab score` takes them.
  const specs = new Map(METHODS.filter((m) => TOKEN_METHODS.includes(m.name)).flatMap((m) => m.options.map((s) => [s.key, s] as const)));
  for (const s of specs.values()) command.addOption(new Option(`${optionFlag(s.key)} <value>`, s.description));
  command.action(async (o) => {
    if (o.mask !== 'response' && o.mask !== 'full') throw new TdaError(`must be 'response' or 'full', got '${o.mask}'`, { field: '--mask' });
    await startBackend();
    const given = Object.fromEntries([...specs.keys()].filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
    const r = await runTokens({ model: o.model, adapter: o.adapter, train: o.train, test: o.test, query: o.query, example: o.example, method: o.method, options: given, mask: o.mask, batchSize: o.batchSize, out: o.out });
    process.stdout.write(formatTokens(r) + '\n');
    if (o.out) process.stderr.write(`wrote ${o.out}\n`);
  });
}
