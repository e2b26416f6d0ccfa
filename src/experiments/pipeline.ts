/**
 * Steps the experiments share: text to token sequences, LoRA gradients as GradientSets,
 * every gradient method's scores at one checkpoint, and per-query ranking metrics.
 */
import { TokenSequence } from '../data/batch';
import { TextTokenizer } from '../data/tokenizer';
import { TdaError } from '../errors';
import { FactoredTrain } from '../attribution/ekfac';
import { EkfacFactors } from '../attribution/ekfacFactors';
import { Scorer, Settings } from '../attribution/method';
import { createScorer, methodByName } from '../attribution/registry';
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { rocAuc, recallAtK } from '../eval/auc';
import { LoraAdapter } from '../model/adapter';
import { computeLoraGradients } from '../gradients/compute';
import { LlamaModel } from '../model/llama';
import { GradientSet, inMemorySource } from '../gradients/types';

export interface PromptResponse {
  prompt: string;
  response: string;
}

/** `<s> prompt` then `response </s>`; the loss counts the response tokens. */
export function encodeExample(tokenizer: TextTokenizer, ex: PromptResponse): TokenSequence {
  const prompt = tokenizer.encode(ex.prompt, { addSpecialTokens: true });
  const response = tokenizer.encode(ex.response, { addSpecialTokens: false });
  if (tokenizer.eosId !== null) response.push(tokenizer.eosId);
  return { inputIds: [...prompt, ...response], promptLength: prompt.length };
}

/** A prompt plus already generated response tokens (the model's own output is the test output). */
export function withResponseIds(tokenizer: TextTokenizer, prompt: string, responseIds: number[]): TokenSequence {
  const p = tokenizer.encode(prompt, { addSpecialTokens: true });
  const r = [...responseIds];
  if (tokenizer.eosId !== null && r[r.length - 1] !== tokenizer.eosId) r.push(tokenizer.eosId);
  return { inputIds: [...p, ...r], promptLength: p.length };
}

/** Per-example LoRA gradients (response mask) as a GradientSet, in adapter order. */
export function loraGradientSet(model: LlamaModel, adapter: LoraAdapter, seqs: TokenSequence[], batchSize = 32, padId = 0): Promise<GradientSet> {
  return computeLoraGradients(model, adapter, seqs, { batchSize, padId, mask: 'response' });
}

/** Whether a gradient method also needs factors of the model over the training data (ekfac). */
export function needsFactors(method: string): boolean {
  return methodByName(method).input === 'gradients+factors';
}

/** A method that scores from gradients (with or without factors); others are refused. */
function gradientScorer(name: string, options: Record<string, unknown> = {}): Scorer {
  const input = methodByName(name).input;
  if (input !== 'gradients' && input !== 'gradients+factors') throw new TdaError(`'${name}' scores from ${input}, not from gradients`, { field: 'method' });
  return createScorer(name, options);
}

/** Each method's resolved settings before any data (options with defaults), for a run's settings.json. */
export function methodSettings(methods: readonly string[], options: Record<string, Record<string, unknown>> = {}): Record<string, Settings> {
  return Object.fromEntries(methods.map((m) => [m, gradientScorer(m, options[m]).settings()]));
}

/**
 * Scores of every requested gradient method for one checkpoint; `options` by method name
 * (defaults otherwise); `factors` (of the same checkpoint over the training data) for the
 * methods that need them.
 */
export function gradientScores(train: GradientSet, test: GradientSet, methods: readonly string[], options: Record<string, Record<string, unknown>> = {}, factors?: EkfacFactors): Record<string, ScoreMatrix> {
  const out: Record<string, ScoreMatrix> = {};
  const source = inMemorySource(train);
  for (const m of methods) {
    const a = gradientScorer(m, options[m]);
    if (needsFactors(m)) {
      if (!factors) throw new TdaError(`${m} needs factors of the checkpoint over the training data`, { field: 'factors' });
      (a as Scorer<FactoredTrain, GradientSet>).cache({ train: source, factors });
    } else {
      a.cache(source);
    }
    out[m] = (a as Scorer<unknown, GradientSet>).attribute(test) as ScoreMatrix;
  }
  return out;
}

export interface QueryMetrics {
  auc: number[];
  recall: number[];
}

/** AUC and recall@k of every query row against its positives. */
export function queryMetrics(scores: ScoreMatrix, positives: number[][], k: number): QueryMetrics {
  if (positives.length !== scores.nTest) throw new TdaError(`${positives.length} positive lists for ${scores.nTest} queries`, { field: 'positives' });
  const auc: number[] = [];
  const recall: number[] = [];
  for (let q = 0; q < scores.nTest; q++) {
    const isPos = new Array<boolean>(scores.nTrain).fill(false);
    for (const i of positives[q]) isPos[i] = true;
    const row = scoreRow(scores, q);
    auc.push(rocAuc(row, isPos));
    recall.push(recallAtK(row, isPos, k));
  }
  return { auc, recall };
}

export const mean = (xs: number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
};

/** Seconds since `t0` (ms), for timing lines. */
export const since = (t0: number) => (Date.now() - t0) / 1000;
