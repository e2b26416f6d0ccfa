/**
 * `tda-lab explore --tokens <method> --model --adapter`: the explorer of score files with
 * per-token heatmaps computed on demand: each query's top k by the token method (scored here
 * from the model's gradients), shaded token by token, and each answer by its tokens'
 * contributions to the sum of those k scores (experiments/runTokens.ts).
 */
import { checkTokenMethod } from '../attribution/tokens';
import { readExamplesJsonl, validateTokenIds } from '../data/examples';
import { TdaError } from '../errors';
import { groupTokens } from '../experiments/runTokens';
import { buildExplorerData, ExplorerData } from '../viz/explorer/model';
import { writeExplorer } from '../viz/explorer/page';
import { exploreInputFromFiles, ExploreOptions } from './explore';
import { loadModelInputs } from './grads';

export interface ExploreTokensOptions extends ExploreOptions {
  tokens: string;
  model?: string;
  adapter?: string;
}

export async function runExploreWithTokens(o: ExploreTokensOptions): Promise<ExplorerData> {
  checkTokenMethod(o.tokens, '--tokens');
  if (!o.model) throw new TdaError('--tokens needs --model <dir> (and --adapter) to take gradients', { field: '--model' });
  if (!o.adapter) throw new TdaError('--tokens needs --adapter <dir>', { field: '--adapter' });
  const input = exploreInputFromFiles(o);
  const group = input.groups[0];
  const k = o.k ?? 10;
  const { model, adapter, tokenizer, examples: train } = loadModelInputs(o.model, o.adapter, o.train!);
  try {
    if (!tokenizer) throw new TdaError('has no tokenizer.json: token heatmaps show decoded texts', { file: o.model, field: '--model' });
    const queries = readExamplesJsonl(o.test!, tokenizer);
    validateTokenIds(queries, model.config.vocabSize, o.test!);
    // The heatmaps go with the token method's column when a score file has one, else with the first setting.
    const view = group.scores.find((s) => s.method === o.tokens)?.view ?? group.scores[0].view;
    const tokens = await groupTokens(model, adapter!, tokenizer, train, queries, null, { method: o.tokens, view, k });
    group.queries.forEach((q, i) => {
      q.answerTokens = tokens.queries[i].answer;
      q.trainTokens = { [view]: Object.fromEntries(Object.entries(tokens.queries[i].rows).map(([j, t]) => [Number(j), t])) };
    });
    input.notes = [
      ...(input.notes ?? []),
      `Token shading (setting ${view}): ${o.tokens} at ${o.adapter}. A training example's token carries the contribution of its own loss term to the example's ${o.tokens} score for the query; an answer token its contribution to the sum of ${o.tokens}'s top ${k}. Only ${o.tokens}'s top ${k} rows are shaded.`,
    ];
  } finally {
    model.dispose();
  }
  const data = buildExplorerData({ ...input, k });
  writeExplorer(o.out, data);
  return data;
}
