/**
 * The text of each token of a sequence, for showing per-token results: piece t is what
 * decoding ids[0..t] adds to decoding ids[0..t-1], so spaces and merged bytes land where the
 * tokenizer puts them and the pieces concatenate to the decoded text. Without a tokenizer
 * (input_ids examples), a token shows as its id.
 */
import type { TextTokenizer } from './tokenizer';

export function tokenPieces(ids: readonly number[], tokenizer?: TextTokenizer): string[] {
  if (!tokenizer) return ids.map((id) => `<${id}>`);
  const pieces: string[] = [];
  let before = '';
  for (let t = 0; t < ids.length; t++) {
    const upTo = tokenizer.decode(ids.slice(0, t + 1));
    // A decoder that rewrites earlier text (rare) is not prefix-stable: fall back to the token alone.
    pieces.push(upTo.startsWith(before) ? upTo.slice(before.length) : tokenizer.decode([ids[t]]));
    before = upTo;
  }
  return pieces;
}
