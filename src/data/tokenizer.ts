/**
 * Hugging Face tokenizers (`tokenizer.json` + optional `tokenizer_config.json`) through the
 * pure-JS @huggingface/tokenizers, behind a small interface the rest of the toolkit uses.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import { showValue, TdaError } from '../errors';

export interface TextTokenizer {
  /** addSpecialTokens (default true) applies the tokenizer's post-processor, e.g. a leading BOS. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
  /** 1 + the largest id the tokenizer can produce (the model's vocab_size may be larger). */
  vocabSize: number;
}

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

/** Fallbacks when tokenizer_config.json does not name a special token. */
const WELL_KNOWN: Record<'bos' | 'eos' | 'pad', string[]> = {
  bos: ['<s>', '<bos>', '<|begin_of_text|>', '<|startoftext|>'],
  eos: ['</s>', '<eos>', '<|endoftext|>', '<|end_of_text|>'],
  pad: ['<pad>', '[PAD]', '<|pad|>'],
};

/** Accepts the tokenizer directory (usually the model directory) or the tokenizer.json path. */
export function loadTokenizer(dirOrFile: string): TextTokenizer {
  const isFile = dirOrFile.endsWith('.json') && fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isFile();
  const dir = isFile ? path.dirname(dirOrFile) : dirOrFile;
  const file = isFile ? dirOrFile : path.join(dir, TOKENIZER_FILE);
  if (!fs.existsSync(file)) {
    throw new TdaError('tokenizer not found (expected a Hugging Face fast-tokenizer tokenizer.json; slow-only tokenizers are not supported)', { file });
  }
  const tokenizerJson = readJson(file);
  const configFile = path.join(dir, TOKENIZER_CONFIG_FILE);
  const config = fs.existsSync(configFile) ? readJson(configFile) : {};
  return fromJson(tokenizerJson, config, file, configFile);
}

/** Builds a TextTokenizer from already parsed tokenizer.json / tokenizer_config.json objects. */
export function tokenizerFromJson(tokenizerJson: unknown, config: unknown = {}, file = TOKENIZER_FILE): TextTokenizer {
  return fromJson(tokenizerJson, config, file, TOKENIZER_CONFIG_FILE);
}

function fromJson(tokenizerJson: unknown, config: unknown, file: string, configFile: string): TextTokenizer {
  if (!isObject(tokenizerJson)) throw new TdaError('tokenizer.json must be a JSON object', { file });
  if (!isObject(config)) throw new TdaError('tokenizer_config.json must be a JSON object', { file: configFile });
  const model = tokenizerJson.model;
  if (!isObject(model)) throw new TdaError('missing tokenizer model', { file, field: 'model' });
  // The JS library reads a WordLevel model's unk token from the config only; supply it from tokenizer.json.
  const cfg: Record<string, unknown> = { ...config };
  for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) if (cfg[k] !== undefined) cfg[k] = tokenContent(cfg[k]);
  if (cfg.unk_token == null && typeof model.unk_token === 'string') cfg.unk_token = model.unk_token;
  checkTokenIds(model, tokenizerJson.added_tokens, file);

  let tok: Tokenizer;
  try {
    // Optional parts may be absent in hand-written files; the library wants them present (null).
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...tokenizerJson };
    tok = new Tokenizer({ ...full, added_tokens: tokenizerJson.added_tokens ?? [] }, cfg);
  } catch (e) {
    throw new TdaError(`cannot build tokenizer: ${(e as Error).message}`, { file });
  }
  const vocab = tok.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);

  const special = (kind: 'bos' | 'eos' | 'pad'): number | null => {
    const key = `${kind}_token`;
    if (key in cfg) {
      // Explicitly set (possibly to null, as Qwen2 does for bos_token).
      const content = cfg[key];
      if (content === null) return null;
      if (typeof content !== 'string') throw new TdaError('must be a token string or null', { file: configFile, field: key });
      const id = tok.token_to_id(content);
      if (id === undefined) throw new TdaError(`token ${showValue(content)} is not in the vocabulary of ${file}`, { file: configFile, field: key });
      return id;
    }
    for (const t of WELL_KNOWN[kind]) {
      const id = tok.token_to_id(t);
      if (id !== undefined) return id;
    }
    return null;
  };

  return {
    bosId: special('bos'),
    eosId: special('eos'),
    padId: special('pad'),
    vocabSize,
    encode(text, opts = {}) {
      const enc = fromLibrary(file, 'encode', () => tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }));
      const bad = enc.ids.findIndex((id) => !Number.isInteger(id));
      if (bad >= 0) {
        throw new TdaError(`token ${showValue(enc.tokens[bad])} is not in the vocabulary and the tokenizer has no unk token`, { file });
      }
      return enc.ids;
    },
    decode(ids, opts = {}) {
      if (ids.length === 0) return ''; // the library throws on an empty list
      return fromLibrary(file, 'decode', () => tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false }));
    },
  };
}

/** The library checks parts of tokenizer.json only when it uses them: a failure then is the file's fault. */
function fromLibrary<T>(file: string, what: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof TdaError) throw e;
    throw new TdaError(`cannot ${what} with this tokenizer: ${(e as Error).message}`, { file });
  }
}

/**
 * The library files each token at its id in an array: an id that is not a small non-negative
 * integer would make it build (and later walk) an array of billions of slots, or hand out
 * ids outside the vocabulary. Real files number their tokens 0..n-1, added tokens included.
 */
function checkTokenIds(model: Record<string, unknown>, addedTokens: unknown, file: string): void {
  // WordLevel, BPE and WordPiece map tokens to ids; Unigram lists pieces, numbered by position.
  const vocab = isObject(model.vocab) ? Object.entries(model.vocab) : [];
  const pieces = Array.isArray(model.vocab) ? model.vocab.length : vocab.length;
  const added = Array.isArray(addedTokens) ? addedTokens : [];
  const limit = pieces + added.length;
  const check = (id: unknown, field: string) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= limit) {
      throw new TdaError(`token id ${showValue(id)} is not an integer in [0, ${limit}) (vocabulary entries plus added tokens)`, { file, field });
    }
  };
  for (const [token, id] of vocab) check(id, `model.vocab.${token}`);
  added.forEach((t, i) => {
    if (!isObject(t) || typeof t.content !== 'string') throw new TdaError('must be an object with a string content and an id', { file, field: `added_tokens[${i}]` });
    check(t.id, `added_tokens[${i}].id`);
  });
}

/** tokenizer_config.json stores special tokens as strings or as AddedToken objects ({content: ...}). */
function tokenContent(v: unknown): unknown {
  return isObject(v) && typeof v.content === 'string' ? v.content : v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TdaError(`cannot read JSON: ${(e as Error).message}`, { file });
  }
}
