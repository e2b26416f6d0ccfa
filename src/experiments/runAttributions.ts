/**
 * What a run folder keeps so that its explorer can be rebuilt (and its scores reused):
 *
 *   attributions/explorer.json          title, notes, and the groups in order
 *   attributions/<group>/group.json     name and the score columns (method, setting, file) in order
 *   attributions/<group>/train.jsonl    the group's training set as {"prompt", "response"}
 *   attributions/<group>/test.jsonl     its queries: {"prompt", "response" (the model's answer), "label"}
 *   attributions/<group>/labels.json    {"positives": [[...], ...]} (the format `tda-lab metrics` reads)
 *   attributions/<group>/scores/*.safetensors   full [nTest, nTrain] score matrices (`tda-lab score` format)
 *   attributions/<group>/tokens.json    optional per-token heatmaps of one method's top k (runTokens.ts)
 *
 * A group is a set of queries sharing one training set: one fine-tuning run, or one task.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeScoreFile } from '../attribution/scoreFile';
import { ScoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';
import { ExplorerGroupInput, ExplorerInput, TokenAttribution } from '../viz/explorer/model';
import { readScoreColumn } from '../viz/explorer/scoreInputs';
import { exampleText, readTextJsonl, TextExample, writeTextJsonl } from '../viz/explorer/texts';
import { writeJson } from './output';
import type { GroupTokens } from './runTokens';

const TOKENS_FILE = 'tokens.json';

function isTokenAttribution(t: unknown): t is TokenAttribution {
  const o = t as TokenAttribution;
  return typeof o === 'object' && o !== null && Array.isArray(o.tokens) && Array.isArray(o.weights) && o.tokens.length === o.weights.length && o.tokens.every((x) => typeof x === 'string') && o.weights.every((w) => typeof w === 'number' && Number.isFinite(w));
}

/** A group's per-token heatmaps, checked: query count, training indices, tokens matching weights. */
function readGroupTokens(file: string, nQueries: number, nTrain: number): GroupTokens {
  const t = readJson(file) as unknown as GroupTokens;
  if (typeof t.view !== 'string') throw new TdaError('must be a string', { file, field: 'view' });
  if (!Array.isArray(t.queries) || t.queries.length !== nQueries) throw new TdaError(`must hold one entry per query (${nQueries})`, { file, field: 'queries' });
  t.queries.forEach((q, i) => {
    if (!isTokenAttribution(q?.answer)) throw new TdaError('must be {tokens: [strings], weights: [numbers]} of equal length', { file, field: `queries[${i}].answer` });
    if (typeof q.rows !== 'object' || q.rows === null) throw new TdaError('must map training indices to token weights', { file, field: `queries[${i}].rows` });
    for (const [key, row] of Object.entries(q.rows)) {
      if (!/^\d+$/.test(key) || Number(key) >= nTrain) throw new TdaError(`'${key}' is not a training index below ${nTrain}`, { file, field: `queries[${i}].rows` });
      if (!isTokenAttribution(row)) throw new TdaError('must be {tokens: [strings], weights: [numbers]} of equal length', { file, field: `queries[${i}].rows.${key}` });
    }
  });
  return t;
}

export const ATTRIBUTIONS_DIR = 'attributions';

export interface RunAttributionGroup {
  /** Folder name (letters, digits, dashes). */
  id: string;
  name: string;
  train: { prompt: string; response: string }[];
  queries: { prompt: string; answer: string; label: string; positives: number[] }[];
  columns: { method: string; view: string; scores: ScoreMatrix }[];
  tokens?: GroupTokens;
}

export interface RunAttributionsHeader {
  title: string;
  subtitle?: string;
  notes?: string[];
}

/** Writes one group's texts, labels and score matrices under `<runDir>/attributions/<id>/`. */
export function writeAttributionGroup(runDir: string, g: RunAttributionGroup): void {
  if (!/^[A-Za-z0-9-]+$/.test(g.id)) throw new TdaError(`group id '${g.id}' must be letters, digits and dashes`, { field: 'id' });
  const dir = path.join(runDir, ATTRIBUTIONS_DIR, g.id);
  fs.mkdirSync(path.join(dir, 'scores'), { recursive: true });
  writeTextJsonl(path.join(dir, 'train.jsonl'), g.train.map((e) => ({ prompt: e.prompt, response: e.response })));
  writeTextJsonl(path.join(dir, 'test.jsonl'), g.queries.map((q) => ({ prompt: q.prompt, response: q.answer, label: q.label })));
  writeJson(path.join(dir, 'labels.json'), { positives: g.queries.map((q) => q.positives) });
  const columns = g.columns.map((c) => {
    const file = `scores/${c.method}.${c.view.replace(/[^A-Za-z0-9-]+/g, '-')}.safetensors`;
    writeScoreFile(path.join(dir, file), c.scores, { method: c.method, view: c.view, mask: 'response' });
    return { method: c.method, view: c.view, file };
  });
  if (g.tokens) writeJson(path.join(dir, TOKENS_FILE), g.tokens);
  writeJson(path.join(dir, 'group.json'), { name: g.name, columns });
}

/** Records the page's title and the order of the groups (call after writing them). */
export function writeAttributionsHeader(runDir: string, header: RunAttributionsHeader, groupIds: string[]): void {
  // A run in which no query hallucinated saved no group, so the folder may not exist yet.
  fs.mkdirSync(path.join(runDir, ATTRIBUTIONS_DIR), { recursive: true });
  writeJson(path.join(runDir, ATTRIBUTIONS_DIR, 'explorer.json'), { ...header, groups: groupIds });
}

export function hasAttributions(runDir: string): boolean {
  return fs.existsSync(path.join(runDir, ATTRIBUTIONS_DIR, 'explorer.json'));
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TdaError(`cannot read JSON: ${(e as Error).message}`, { file });
  }
}

function readGroup(dir: string): ExplorerGroupInput {
  const groupFile = path.join(dir, 'group.json');
  const g = readJson(groupFile);
  if (typeof g.name !== 'string') throw new TdaError('must be a string', { file: groupFile, field: 'name' });
  if (!Array.isArray(g.columns)) throw new TdaError('must be a list of {method, view, file}', { file: groupFile, field: 'columns' });
  const train = readTextJsonl(path.join(dir, 'train.jsonl'));
  const tests: TextExample[] = readTextJsonl(path.join(dir, 'test.jsonl'));
  const labelsFile = path.join(dir, 'labels.json');
  const positives = readJson(labelsFile).positives;
  if (!Array.isArray(positives) || positives.length !== tests.length) throw new TdaError(`must hold one list per query (${tests.length})`, { file: labelsFile, field: 'positives' });
  const scores = (g.columns as { method?: unknown; view?: unknown; file?: unknown }[]).map((c, i) => {
    if (typeof c.method !== 'string' || typeof c.view !== 'string' || typeof c.file !== 'string') throw new TdaError('needs string method, view and file', { file: groupFile, field: `columns[${i}]` });
    return readScoreColumn(path.join(dir, c.file), { method: c.method, view: c.view });
  });
  const tokensFile = path.join(dir, TOKENS_FILE);
  const tokens = fs.existsSync(tokensFile) ? readGroupTokens(tokensFile, tests.length, train.length) : null;
  return {
    name: g.name,
    train: train.map((e) => ({ text: exampleText(e) })),
    queries: tests.map((t, i) => {
      const q = { prompt: t.prompt, answer: t.response, label: t.label, positives: positives[i] as number[] };
      if (!tokens) return q;
      const rows = Object.fromEntries(Object.entries(tokens.queries[i].rows).map(([key, row]) => [Number(key), row]));
      return { ...q, answerTokens: tokens.queries[i].answer, trainTokens: { [tokens.view]: rows } };
    }),
    scores,
  };
}

/** The explorer input a run folder holds; refuses a folder without `attributions/explorer.json`. */
export function readRunAttributions(runDir: string): ExplorerInput {
  const headerFile = path.join(runDir, ATTRIBUTIONS_DIR, 'explorer.json');
  if (!fs.existsSync(headerFile)) throw new TdaError('is not a run folder with attributions (made by tda-lab reproduce)', { file: headerFile });
  const h = readJson(headerFile);
  if (typeof h.title !== 'string') throw new TdaError('must be a string', { file: headerFile, field: 'title' });
  if (!Array.isArray(h.groups) || !h.groups.every((x) => typeof x === 'string')) throw new TdaError('must be a list of group folder names', { file: headerFile, field: 'groups' });
  return {
    title: h.title,
    subtitle: typeof h.subtitle === 'string' ? h.subtitle : undefined,
    notes: Array.isArray(h.notes) ? h.notes.map(String) : [],
    groups: (h.groups as string[]).map((id) => readGroup(path.join(runDir, ATTRIBUTIONS_DIR, id))),
    source: headerFile,
  };
}
