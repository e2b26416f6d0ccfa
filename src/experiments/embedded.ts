/**
 * The embedded default: a small LLaMA-architecture model that the project pretrains itself
 * on true statements about a synthetic world (plus the knowledge-bias sentences of the DDA
 * benchmark's second regime), shipped in `data/base-model/` in the Hugging Face layout with
 * its word-level `tokenizer.json`. `npm run train-base` regenerates it from its seed; on the
 * same backend (wasm) the result is bit-for-bit identical.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TokenSequence, makeBatch } from '../data/batch';
import { TextTokenizer, loadTokenizer } from '../data/tokenizer';
import { TdaError } from '../errors';
import { disposeBatchConstants, LlamaModel } from '../model/llama';
import { llamaConfig } from '../model/synthetic';
import { createTrainableModel, saveBaseModel } from '../model/trainableWeights';
import { ModelConfig } from '../model/types';
import { download, gatherRows } from '../runtime/ops';
import { pretrain } from '../train/pretrain';
import { biasSentences, ddaData, DdaOptions, makeWorld, pretrainingCorpus, World, worldTokenizerConfig, worldTokenizerJson } from './world';

export const EMBEDDED_DIR = path.join(__dirname, '..', '..', 'data', 'base-model');
export const TRAINING_RECORD = 'tda_lab_training.json';

/** Everything that determines the embedded base model. */
export interface BaseModelSpec {
  worldSeed: number;
  trainSeed: number;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Pretraining repeats of each city sentence (cities are few; repetition anchors them). */
  cityRepeats: number;
}

export const DEFAULT_BASE_SPEC: BaseModelSpec = {
  worldSeed: 0,
  trainSeed: 0,
  steps: 1500,
  batchSize: 128,
  lr: 4e-3,
  weightDecay: 0.01,
  hiddenSize: 128,
  intermediateSize: 256,
  numLayers: 3,
  numHeads: 4,
  cityRepeats: 3,
};

/** The DDA data options the base model is built for (its bias sentences come from these pairs). */
export const DDA_DATA_OPTIONS: DdaOptions = { seed: 0 };

export function baseModelConfig(spec: BaseModelSpec, vocabSize: number): ModelConfig {
  return llamaConfig({
    hiddenSize: spec.hiddenSize,
    intermediateSize: spec.intermediateSize,
    numLayers: spec.numLayers,
    numHeads: spec.numHeads,
    numKvHeads: spec.numHeads,
    vocabSize,
    maxPositionEmbeddings: 64,
  });
}

/** The pretraining sentences: true facts plus the bias sentences of the `base-bias` canary pairs. */
export function baseCorpus(world: World, spec: BaseModelSpec): string[] {
  const dda = ddaData(world, DDA_DATA_OPTIONS);
  return pretrainingCorpus(world, { seed: spec.worldSeed, cityRepeats: spec.cityRepeats, extra: biasSentences(world, dda.pairs, spec.worldSeed) });
}

/** A sentence as a sequence whose every token counts (<s> sentence </s>). */
export function sentenceSequence(tokenizer: TextTokenizer, text: string): TokenSequence {
  const ids = tokenizer.encode(text, { addSpecialTokens: true });
  if (tokenizer.eosId !== null) ids.push(tokenizer.eosId);
  return { inputIds: ids, promptLength: 0 };
}

export interface FactRecall {
  city: number;
  country: number;
  profession: number;
}

/**
 * Share of people whose city, country and profession the model predicts (teacher-forced
 * argmax of the fact token after "<first> <last> lives in", "... comes from", "... works as a").
 */
export function factRecall(model: LlamaModel, world: World, tokenizer: TextTokenizer): FactRecall {
  const probe = (prefix: (p: World['people'][number]) => string, answer: (p: World['people'][number]) => string): number => {
    let hits = 0;
    const people = world.people;
    for (let start = 0; start < people.length; start += 64) {
      const chunk = people.slice(start, start + 64);
      const seqs = chunk.map((p) => {
        const ids = tokenizer.encode(prefix(p), { addSpecialTokens: true });
        const target = tokenizer.encode(answer(p), { addSpecialTokens: false });
        return { inputIds: [...ids, target[0]], promptLength: ids.length };
      });
      const batch = makeBatch(seqs, 'response');
      const c = model.batchConstants(batch);
      const rows = tf.tensor1d(batch.lossRows, 'int32');
      try {
        const predicted = download(() => tf.cast(tf.argMax(model.logits(gatherRows(model.hidden(c), rows)), 1), 'float32'));
        predicted.forEach((id, i) => (hits += id === batch.lossLabels[i] ? 1 : 0));
      } finally {
        rows.dispose();
        disposeBatchConstants(c);
      }
    }
    return hits / people.length;
  };
  return {
    city: probe((p) => `${p.first} ${p.last} lives in`, (p) => p.city),
    country: probe((p) => `${p.first} ${p.last} comes from`, (p) => p.country),
    profession: probe((p) => `${p.first} ${p.last} works as a`, (p) => p.profession),
  };
}

function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** Pretrains the base model from scratch and writes it, its tokenizer and a training record to `outDir`. */
export function trainBaseModel(
  outDir: string,
  spec: BaseModelSpec = DEFAULT_BASE_SPEC,
  onStep?: (step: number, loss: number, lr: number) => void,
): { recall: FactRecall; finalLoss: number; seconds: number } {
  const started = Date.now();
  const world = makeWorld(spec.worldSeed);
  const tokJson = worldTokenizerJson(world);
  const tokConfig = worldTokenizerConfig();
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify(tokJson) + '\n');
  fs.writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify(tokConfig, null, 2) + '\n');
  const tokenizer = loadTokenizer(outDir);
  const corpus = baseCorpus(world, spec);
  const sequences = corpus.map((s) => sentenceSequence(tokenizer, s));
  const model = createTrainableModel(baseModelConfig(spec, tokenizer.vocabSize), spec.trainSeed);
  try {
    const log = pretrain(model, sequences, {
      steps: spec.steps,
      batchSize: spec.batchSize,
      lr: spec.lr,
      schedule: 'onecycle',
      weightDecay: spec.weightDecay,
      seed: spec.trainSeed,
      mask: 'full',
      reduction: 'token',
      padId: tokenizer.padId ?? 0,
      onStep,
    });
    saveBaseModel(outDir, model);
    const recall = factRecall(model, world, tokenizer);
    const seconds = (Date.now() - started) / 1000;
    const record = {
      description: 'tda-lab embedded base model: pretrained from scratch on a synthetic world (see src/experiments/embedded.ts)',
      spec,
      backend: tf.getBackend(),
      corpusSentences: corpus.length,
      corpusSha256: sha256(corpus.join('\n')),
      lossEvery10Steps: log.loss.filter((_, i) => i % 10 === 0 || i === log.loss.length - 1),
      finalLoss: log.loss[log.loss.length - 1],
      factRecall: recall,
      seconds,
    };
    fs.writeFileSync(path.join(outDir, TRAINING_RECORD), JSON.stringify(record, null, 2) + '\n');
    return { recall, finalLoss: record.finalLoss, seconds };
  } finally {
    model.dispose();
  }
}

export interface EmbeddedDefault {
  dir: string;
  model: LlamaModel;
  tokenizer: TextTokenizer;
  world: World;
  spec: BaseModelSpec;
}

/** Loads the shipped base model with its tokenizer and regenerates its world from the recorded seed. */
export function loadEmbeddedDefault(dir = EMBEDDED_DIR): EmbeddedDefault {
  const recordFile = path.join(dir, TRAINING_RECORD);
  if (!fs.existsSync(recordFile)) {
    throw new TdaError('the embedded base model is missing; run `npm run train-base` to create it', { file: recordFile });
  }
  const spec = JSON.parse(fs.readFileSync(recordFile, 'utf8')).spec as BaseModelSpec;
  const model = LlamaModel.load(dir);
  return { dir, model, tokenizer: loadTokenizer(dir), world: makeWorld(spec.worldSeed), spec };
}
