/**
 * Padding and label masks: turns token sequences into one right-padded batch plus the
 * list of positions whose next-token loss counts.
 */
import { TdaError } from '../errors';

/** `response`: loss on response tokens only (default). `full`: prompt and response. Padding never counts. */
export type LabelMask = 'response' | 'full';

export interface TokenSequence {
  inputIds: number[];
  /** Tokens [0, promptLength) are the prompt; the response is the rest. */
  promptLength: number;
}

export interface TokenBatch {
  batchSize: number;
  seqLen: number;
  /** [batchSize * seqLen] token ids, right-padded with padId. */
  ids: Int32Array;
  /** Real (unpadded) length of each sequence. */
  lengths: number[];
  /** Flat row index b * seqLen + t of every position whose prediction of token t+1 counts. */
  lossRows: Int32Array;
  /** The token each of those positions must predict. */
  lossLabels: Int32Array;
  /** The example each of those positions belongs to. */
  lossExample: Int32Array;
  /** Number of counted tokens per example (each example's loss is the mean over them). */
  lossCounts: number[];
  mask: LabelMask;
}

/** First target index (the token being predicted) that counts under a mask. */
function firstTarget(seq: TokenSequence, mask: LabelMask): number {
  return mask === 'response' ? Math.max(seq.promptLength, 1) : 1;
}

export function makeBatch(sequences: TokenSequence[], mask: LabelMask = 'response', padId = 0): TokenBatch {
  if (sequences.length === 0) throw new TdaError('cannot make a batch of zero examples', { field: 'examples' });
  if (mask !== 'response' && mask !== 'full') throw new TdaError(`unknown label mask '${mask}' (use response or full)`, { field: 'mask' });
  const batchSize = sequences.length;
  const seqLen = Math.max(...sequences.map((s) => s.inputIds.length));
  const ids = new Int32Array(batchSize * seqLen).fill(padId);
  const rows: number[] = [];
  const labels: number[] = [];
  const owner: number[] = [];
  const counts: number[] = [];
  sequences.forEach((seq, b) => {
    const n = seq.inputIds.length;
    ids.set(seq.inputIds, b * seqLen);
    const start = firstTarget(seq, mask);
    if (start >= n) {
      throw new TdaError(`example ${b} has no tokens to score under the '${mask}' mask (length ${n}, prompt length ${seq.promptLength})`, {
        field: 'response',
      });
    }
    for (let target = start; target < n; target++) {
      rows.push(b * seqLen + target - 1);
      labels.push(seq.inputIds[target]);
      owner.push(b);
    }
    counts.push(n - start);
  });
  return {
    batchSize,
    seqLen,
    ids,
    lengths: sequences.map((s) => s.inputIds.length),
    lossRows: Int32Array.from(rows),
    lossLabels: Int32Array.from(labels),
    lossExample: Int32Array.from(owner),
    lossCounts: counts,
    mask,
  };
}
