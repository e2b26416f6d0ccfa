/**
 * Training / query examples from JSONL. Two line forms:
 *   {"prompt": "...", "response": "..."}          (tokenized here; needs a tokenizer)
 *   {"input_ids": [...], "prompt_length": N}      (already tokenized)
 * The loss of an example is the mean next-token loss over its response tokens, so every
 * example must have at least one response token that can be predicted.
 */
import { showValue, TdaError } from '../errors';
import { readJsonlObjects } from './jsonl';
import type { TextTokenizer } from './tokenizer';

export interface Example {
  inputIds: number[];
  /** Tokens [0, promptLength) are the prompt; the rest is the response. */
  promptLength: number;
  text?: { prompt: string; response: string };
  /** 1-based line in the source file, for error messages. */
  line?: number;
}

export function readExamplesJsonl(path: string, tokenizer?: TextTokenizer): Example[] {
  return readJsonlObjects(path).map(({ value, line }) => parseLine(value, line, path, tokenizer));
}

function parseLine(o: Record<string, unknown>, line: number, file: string, tokenizer?: TextTokenizer): Example {
  const fail = (msg: string) => new TdaError(msg, { file, field: `line ${line}` });
  const textForm = 'prompt' in o || 'response' in o;
  const idsForm = 'input_ids' in o || 'prompt_length' in o;
  if (textForm && idsForm) throw fail('mixes the prompt/response and input_ids/prompt_length forms; use one');

  if (textForm) {
    if (typeof o.prompt !== 'string' || typeof o.response !== 'string') throw fail('"prompt" and "response" must both be strings');
    if (!tokenizer) throw fail('prompt/response examples need a tokenizer (or give "input_ids" and "prompt_length")');
    let promptIds: number[];
    let responseIds: number[];
    try {
      promptIds = tokenizer.encode(o.prompt, { addSpecialTokens: true });
      responseIds = tokenizer.encode(o.response, { addSpecialTokens: false });
    } catch (e) {
      throw fail(`cannot tokenize: ${(e as Error).message}`);
    }
    if (!responseIds.length) throw fail('empty response: it has no tokens, so the example has no loss');
    const inputIds = [...promptIds, ...responseIds];
    if (tokenizer.eosId !== null) inputIds.push(tokenizer.eosId);
    return checkScorable({ inputIds, promptLength: promptIds.length, text: { prompt: o.prompt, response: o.response }, line }, fail);
  }

  if (idsForm) {
    const ids = o.input_ids;
    if (!Array.isArray(ids) || !ids.length) throw fail('"input_ids" must be a non-empty list of token ids');
    const bad = ids.findIndex((x) => typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0);
    if (bad >= 0) throw fail(`"input_ids"[${bad}] = ${showValue(ids[bad])} is not a non-negative integer`);
    const n = o.prompt_length;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw fail('"prompt_length" must be an integer');
    if (n < 0 || n >= ids.length) throw fail(`"prompt_length" ${n} is out of range: need 0 <= prompt_length < ${ids.length} (the input_ids length)`);
    return checkScorable({ inputIds: ids as number[], promptLength: n, line }, fail);
  }
  throw fail('expected {"prompt", "response"} or {"input_ids", "prompt_length"}');
}

/** Token 0 is never predicted, so a response starting at 0 needs a second token. */
function checkScorable(ex: Example, fail: (msg: string) => TdaError): Example {
  if (ex.inputIds.length - Math.max(ex.promptLength, 1) < 1) {
    throw fail('empty response: no response token can be predicted (the first token has no context), so the example has no loss');
  }
  return ex;
}

/** Every id must index the model's embedding table. */
export function validateTokenIds(examples: Example[], vocabSize: number, file: string): void {
  examples.forEach((ex, i) => {
    const j = ex.inputIds.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (j >= 0) {
      const where = ex.line !== undefined ? ` (line ${ex.line})` : '';
      throw new TdaError(`token id ${ex.inputIds[j]} at position ${j} is outside the model vocabulary (vocab_size ${vocabSize})${where}`, {
        file,
        field: `example ${i}`,
      });
    }
  });
}
