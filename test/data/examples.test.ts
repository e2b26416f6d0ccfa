import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readExamplesJsonl, validateTokenIds } from '../../src/data/examples';
import { tokenizerFromJson } from '../../src/data/tokenizer';
import { buildWordLevelTokenizerConfig, buildWordLevelTokenizerJson } from '../../src/data/wordTokenizer';
import { tempDirs, throwsTda } from '../helpers/errors';

const WORDS = ['what', 'is', 'two', 'plus', 'four', '?', 'answer', ':'];
const ID = (w: string) => 4 + WORDS.indexOf(w);
const TOK = tokenizerFromJson(buildWordLevelTokenizerJson(WORDS), buildWordLevelTokenizerConfig());

describe('JSONL examples', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  function file(lines: string[] | string): string {
    const f = path.join(tmp.make(), 'train.jsonl');
    fs.writeFileSync(f, Array.isArray(lines) ? lines.join('\n') : lines);
    return f;
  }

  it('tokenizes prompt/response lines: prompt with specials, response without, then eos', () => {
    const f = file([JSON.stringify({ prompt: 'what is two plus two ?', response: 'four' })]);
    const [ex] = readExamplesJsonl(f, TOK);
    const prompt = [1, ID('what'), ID('is'), ID('two'), ID('plus'), ID('two'), ID('?')];
    assert.deepEqual(ex.inputIds, [...prompt, ID('four'), 2]);
    assert.equal(ex.promptLength, prompt.length);
    assert.deepEqual(ex.text, { prompt: 'what is two plus two ?', response: 'four' });
    assert.equal(ex.line, 1);
  });

  it('no eos is appended when the tokenizer has none', () => {
    const noEos = { ...TOK, eosId: null };
    const [ex] = readExamplesJsonl(file([JSON.stringify({ prompt: 'what', response: 'four' })]), noEos);
    assert.deepEqual(ex.inputIds, [1, ID('what'), ID('four')]);
  });

  it('reads pre-tokenized lines and skips blank lines (CRLF too)', () => {
    const f = file('{"input_ids": [1, 5, 6, 2], "prompt_length": 2}\r\n\r\n   \n{"input_ids": [7, 8], "prompt_length": 0}\n');
    const exs = readExamplesJsonl(f);
    assert.deepEqual(
      exs.map((e) => [e.inputIds, e.promptLength, e.line]),
      [
        [[1, 5, 6, 2], 2, 1],
        [[7, 8], 0, 4],
      ],
    );
    assert.equal(exs[0].text, undefined);
  });

  it('errors name the file and the line', () => {
    const ok = '{"input_ids": [1, 2, 3], "prompt_length": 1}';
    const cases: [string, string, string][] = [
      ['{"input_ids": [1, 2', "'line 2'", 'invalid JSON'],
      ['[1, 2, 3]', "'line 2'", 'JSON object'],
      ['{"text": "hello"}', "'line 2'", 'expected {"prompt", "response"} or {"input_ids", "prompt_length"}'],
      ['{"prompt": "what", "response": "four"}', "'line 2'", 'need a tokenizer'],
      ['{"prompt": "what", "response": 4}', "'line 2'", 'strings'],
      ['{"prompt": "what", "input_ids": [1, 2]}', "'line 2'", 'mixes'],
      ['{"input_ids": [1, 2, 3], "prompt_length": 3}', "'line 2'", 'prompt_length" 3 is out of range'],
      ['{"input_ids": [1, 2, 3], "prompt_length": -1}', "'line 2'", 'out of range'],
      ['{"input_ids": [1, 2, 3], "prompt_length": 1.5}', "'line 2'", 'integer'],
      ['{"input_ids": [1, 2, 3]}', "'line 2'", 'prompt_length'],
      ['{"input_ids": [1, 2.5, 3], "prompt_length": 1}', "'line 2'", '"input_ids"[1] = 2.5'],
      ['{"input_ids": [1, "2"], "prompt_length": 1}', "'line 2'", '"input_ids"[1]'],
      ['{"input_ids": [], "prompt_length": 0}', "'line 2'", 'non-empty'],
      ['{"input_ids": [5], "prompt_length": 0}', "'line 2'", 'empty response'],
    ];
    for (const [line, field, msg] of cases) {
      const f = file([ok, line, ok]);
      throwsTda(() => readExamplesJsonl(f), f, field, msg);
    }
  });

  it('an empty response is an error (no tokens to score)', () => {
    const f = file(['{"prompt": "what is two plus two ?", "response": "four"}', '', '{"prompt": "what", "response": ""}']);
    throwsTda(() => readExamplesJsonl(f, TOK), f, "'line 3'", 'empty response');
  });

  it('an empty dataset or a missing file is an error naming the file', () => {
    const f = file('\n  \n');
    throwsTda(() => readExamplesJsonl(f), f, 'no examples');
    const missing = path.join(tmp.make(), 'nope.jsonl');
    throwsTda(() => readExamplesJsonl(missing), missing, 'cannot read');
  });

  it('validateTokenIds names the example and the offending id', () => {
    const exs = readExamplesJsonl(file(['{"input_ids": [1, 2, 3], "prompt_length": 1}', '', '{"input_ids": [1, 97, 3], "prompt_length": 1}']));
    validateTokenIds(exs, 98, 'train.jsonl');
    throwsTda(() => validateTokenIds(exs, 97, 'train.jsonl'), 'train.jsonl', "'example 1'", 'token id 97', 'position 1', 'vocab_size 97', 'line 3');
  });
});
