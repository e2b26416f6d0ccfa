/**
 * The explorer's data model: what one page (or notebook cell) needs to show, per query, the
 * training examples the methods rank highest. Only the top k of every (method, setting)
 * column is kept, plus the query's known positives, so 1,000 queries x 10,000 training
 * examples stays a few megabytes: the texts embedded are those of the training examples
 * that appear in some query's rows.
 */
import { TdaError } from '../../errors';
import { TopKScores } from '../../attribution/topK';
import { ScoreMatrix } from '../../attribution/types';
import { overlapShare, spearman } from './agreement';

/** Per-token attribution of one text: a weight per token (positive = helps, like scores). */
export interface TokenAttribution {
  tokens: string[];
  weights: number[];
}

export interface ExplorerTrainExample {
  text: string;
  /** Query-independent token weights, when a method provides them. */
  tokens?: TokenAttribution;
}

/** One method's column for one query and setting, aligned with the view's rows. */
export interface ExplorerColumn {
  method: string;
  /** Score of each row; null where the method's stored top k does not reach the row. */
  score: (number | null)[];
  /** 1-based rank of each row among all training examples; null where unknown. */
  rank: (number | null)[];
}

/** One query at one setting (a checkpoint, or plain / debias / denoise / DDA). */
export interface ExplorerQueryView {
  view: string;
  /** Indices into `ExplorerData.train`. */
  rows: number[];
  /** Each row's index in its own group's training set (what score files index). */
  local: number[];
  /** 1 where the row is a known positive of the query. */
  positive: number[];
  cols: ExplorerColumn[];
  /** Spearman rank correlation of each pair of columns over the rows both score (null: fewer than 3). */
  spearman: (number | null)[][];
  /** Share of column a's top k that is also in column b's top k. */
  overlap: number[][];
  /** Per-token weights of each row's text for this query, where available. */
  rowTokens?: (TokenAttribution | null)[];
}

export interface ExplorerQuery {
  prompt: string;
  answer: string;
  /** e.g. "hallucination" or a class name. */
  label: string;
  /** The run or task the query belongs to. */
  group: string;
  /** Number of known positives (some may fall outside the shown rows). */
  nPositives: number;
  /** Per-token weights of the prompt. */
  tokens?: TokenAttribution;
  /** Per-token weights of the answer (e.g. its tokens' contributions to the top examples' scores). */
  answerTokens?: TokenAttribution;
  views: ExplorerQueryView[];
}

export interface ExplorerData {
  title: string;
  subtitle?: string;
  k: number;
  methods: string[];
  views: string[];
  labels: string[];
  groups: string[];
  /** Short paragraphs shown under the title (what the settings mean, where the data came from). */
  notes: string[];
  train: ExplorerTrainExample[];
  queries: ExplorerQuery[];
}

/** One (method, setting) score source: a full [nTest, nTrain] matrix or a top-k file. */
export interface ExplorerScoreInput {
  method: string;
  view: string;
  full?: ScoreMatrix;
  topK?: TopKScores;
}

export interface ExplorerQueryInput {
  prompt: string;
  answer: string;
  label?: string;
  positives?: number[];
  tokens?: TokenAttribution;
  answerTokens?: TokenAttribution;
  /** Per view, per training index: token weights of that training example for this query. */
  trainTokens?: Record<string, Record<number, TokenAttribution>>;
}

/** Queries that share one training set (one fine-tuning run, one task, one score file). */
export interface ExplorerGroupInput {
  name: string;
  train: ExplorerTrainExample[];
  queries: ExplorerQueryInput[];
  scores: ExplorerScoreInput[];
}

export interface ExplorerInput {
  title: string;
  subtitle?: string;
  /** Rows per column (default 10). */
  k?: number;
  notes?: string[];
  groups: ExplorerGroupInput[];
  /** Where the data came from, for error messages. */
  source?: string;
}

/** Keeps the page small: 4 significant digits are plenty to read and to rank by. */
const round = (v: number) => Number(v.toPrecision(4));

/** A column's view of one query: ranked (index, score) pairs and, for full matrices, all scores. */
interface RankedRow {
  top: { index: number; score: number }[];
  scoreOf(i: number): number | null;
  rankOf(i: number): number | null;
}

function rankedRow(s: ExplorerScoreInput, q: number, k: number): RankedRow {
  if (s.full) {
    const { nTrain, data } = s.full;
    const row = data.subarray(q * nTrain, (q + 1) * nTrain);
    // One native sort of the values (descending) gives both the top k and any example's rank,
    // without sorting 10,000 indices through a comparator per query and column.
    const sorted = Float32Array.from(row).sort().reverse();
    // How many values are > v (strict) or >= v: the first position in `sorted` that is not.
    const count = (v: number, strict: boolean) => {
      let lo = 0;
      let hi = nTrain;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid] > v || (!strict && sorted[mid] === v)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const rankOf = (i: number) => {
      const higher = count(row[i], true);
      if (count(row[i], false) - higher === 1) return higher + 1;
      // Equal scores: the lower training index ranks first (the order of top-k files).
      let ties = 0;
      for (let j = 0; j < i; j++) if (row[j] === row[i]) ties++;
      return higher + ties + 1;
    };
    const kk = Math.min(k, nTrain);
    const threshold = sorted[kk - 1];
    const candidates: number[] = [];
    for (let i = 0; i < nTrain; i++) if (row[i] >= threshold) candidates.push(i);
    candidates.sort((a, b) => row[b] - row[a] || a - b);
    return { top: candidates.slice(0, kk).map((index) => ({ index, score: row[index] })), scoreOf: (i) => row[i], rankOf };
  }
  const t = s.topK!;
  const kk = Math.min(k, t.k);
  const pos = new Map<number, number>();
  const top: { index: number; score: number }[] = [];
  for (let r = 0; r < t.k; r++) pos.set(t.indices[q * t.k + r], r);
  for (let r = 0; r < kk; r++) top.push({ index: t.indices[q * t.k + r], score: t.scores[q * t.k + r] });
  return {
    top,
    scoreOf: (i) => (pos.has(i) ? t.scores[q * t.k + pos.get(i)!] : null),
    rankOf: (i) => (pos.has(i) ? pos.get(i)! + 1 : null),
  };
}

function checkGroup(g: ExplorerGroupInput, source: string): void {
  for (const s of g.scores) {
    const m = s.full ?? s.topK;
    const field = `${s.method} (${s.view})`;
    if (!m) throw new TdaError('has neither a score matrix nor top-k scores', { file: source, field });
    if (m.nTest !== g.queries.length) throw new TdaError(`scores ${m.nTest} queries but ${g.name} has ${g.queries.length}`, { file: source, field });
    if (m.nTrain !== g.train.length) throw new TdaError(`scores ${m.nTrain} training examples but ${g.name} has ${g.train.length}`, { file: source, field });
  }
  g.queries.forEach((q, i) => {
    for (const p of q.positives ?? []) {
      if (!Number.isInteger(p) || p < 0 || p >= g.train.length) throw new TdaError(`query ${i}: positive ${p} is not a training index below ${g.train.length}`, { file: source, field: 'positives' });
    }
  });
}

const uniq = (xs: string[]) => [...new Set(xs)];

/** Builds the page's data from score matrices or top-k scores of one or more groups. */
export function buildExplorerData(input: ExplorerInput): ExplorerData {
  const k = input.k ?? 10;
  const source = input.source ?? 'explorer input';
  if (!Number.isInteger(k) || k < 1) throw new TdaError(`must be a whole number >= 1, got ${k}`, { file: source, field: 'k' });
  const train: ExplorerTrainExample[] = [];
  // The same text in two groups (runs over one dataset) is embedded once.
  const trainIndex = new Map<string, number>();
  const embed = (ex: ExplorerTrainExample): number => {
    const key = ex.tokens ? `${ex.text}\u0000${JSON.stringify(ex.tokens)}` : ex.text;
    let i = trainIndex.get(key);
    if (i === undefined) {
      i = train.length;
      train.push(ex.tokens ? { text: ex.text, tokens: ex.tokens } : { text: ex.text });
      trainIndex.set(key, i);
    }
    return i;
  };
  const queries: ExplorerQuery[] = [];
  for (const g of input.groups) {
    checkGroup(g, source);
    const views = uniq(g.scores.map((s) => s.view));
    g.queries.forEach((q, qi) => {
      const positives = new Set(q.positives ?? []);
      const qviews: ExplorerQueryView[] = views.map((view) => {
        const cols = g.scores.filter((s) => s.view === view);
        const ranked = cols.map((s) => rankedRow(s, qi, k));
        // Rows: every column's top k, then the known positives (the best-ranked 2k of them).
        const local: number[] = [];
        const seen = new Set<number>();
        const add = (i: number) => {
          if (!seen.has(i)) {
            seen.add(i);
            local.push(i);
          }
        };
        for (const r of ranked) for (const t of r.top) add(t.index);
        const bestRank = (i: number) => Math.min(...ranked.map((r) => r.rankOf(i) ?? Infinity));
        [...positives].sort((a, b) => bestRank(a) - bestRank(b) || a - b).slice(0, 2 * k).forEach(add);
        const columns: ExplorerColumn[] = cols.map((s, c) => ({
          method: s.method,
          score: local.map((i) => {
            const v = ranked[c].scoreOf(i);
            return v === null ? null : round(v);
          }),
          rank: local.map((i) => ranked[c].rankOf(i)),
        }));
        const inTop = ranked.map((r) => new Set(r.top.map((t) => t.index)));
        const v: ExplorerQueryView = {
          view,
          rows: local.map((i) => embed(g.train[i])),
          local,
          positive: local.map((i) => (positives.has(i) ? 1 : 0)),
          cols: columns,
          spearman: columns.map((a, i) => columns.map((b, j) => (i === j ? 1 : nullableRound(spearmanOverShared(a.score, b.score))))),
          overlap: inTop.map((a) => inTop.map((b) => round(overlapShare(a, b)))),
        };
        const tokens = q.trainTokens?.[view];
        if (tokens) v.rowTokens = local.map((i) => tokens[i] ?? null);
        return v;
      });
      const query: ExplorerQuery = { prompt: q.prompt, answer: q.answer, label: q.label ?? '', group: g.name, nPositives: positives.size, views: qviews };
      if (q.tokens) query.tokens = q.tokens;
      if (q.answerTokens) query.answerTokens = q.answerTokens;
      queries.push(query);
    });
  }
  return {
    title: input.title,
    subtitle: input.subtitle,
    k,
    methods: uniq(input.groups.flatMap((g) => g.scores.map((s) => s.method))),
    views: uniq(input.groups.flatMap((g) => g.scores.map((s) => s.view))),
    labels: uniq(queries.map((q) => q.label)).filter((l) => l !== '').sort(),
    groups: uniq(queries.map((q) => q.group)),
    notes: input.notes ?? [],
    train,
    queries,
  };
}

const nullableRound = (v: number | null) => (v === null || !Number.isFinite(v) ? null : round(v));

/** Spearman over the rows where both columns have a score; null when fewer than 3 do. */
function spearmanOverShared(a: (number | null)[], b: (number | null)[]): number | null {
  const x: number[] = [];
  const y: number[] = [];
  a.forEach((v, i) => {
    const w = b[i];
    if (v !== null && w !== null) {
      x.push(v);
      y.push(w);
    }
  });
  return x.length < 3 ? null : spearman(x, y);
}
