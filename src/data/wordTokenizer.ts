/**
 * Builds a word-level `tokenizer.json` (Hugging Face tokenizers format) from a word list:
 * small, readable vocabularies for toy models and tests. It loads in @huggingface/tokenizers
 * and follows the layout the Python `tokenizers` library writes (WordLevel model, Whitespace
 * pre-tokenizer, TemplateProcessing post-processor).
 *
 * Ids: <unk>=0, <s>=1, </s>=2, <pad>=3 (LLaMA's order for the first three), then the words.
 */
import { TdaError } from '../errors';

export const WORD_LEVEL_SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>'] as const;

/** One pre-token of the Whitespace pre-tokenizer (`\w+|[^\w\s]+`); anything else could never be produced. */
const PRE_TOKEN_RE = /^(?:\w+|[^\w\s]+)$/;

export function buildWordLevelTokenizerJson(words: string[]): object {
  const vocab: Record<string, number> = {};
  WORD_LEVEL_SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  for (const w of words) {
    if (typeof w !== 'string' || !PRE_TOKEN_RE.test(w)) {
      throw new TdaError(`word ${JSON.stringify(w)} is not a single word or punctuation run, the whitespace pre-tokenizer would split it`, {
        field: 'words',
      });
    }
    if (Object.prototype.hasOwnProperty.call(vocab, w)) throw new TdaError(`duplicate word ${JSON.stringify(w)}`, { field: 'words' });
    vocab[w] = Object.keys(vocab).length;
  }
  const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: WORD_LEVEL_SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    // Prepends <s> (when special tokens are requested), like LLaMA tokenizers.
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, bos, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: null, // tokens are joined with single spaces
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
}

/** Matching `tokenizer_config.json`, naming the special tokens. */
export function buildWordLevelTokenizerConfig(): object {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: '<unk>',
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    clean_up_tokenization_spaces: false,
  };
}
