/** Fuzzing the data-side readers: tokenizer.json, JSONL examples and texts, and labels.json. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { readExamplesJsonl, validateTokenIds } from '../../src/data/examples';
import { readTextsJsonl } from '../../src/data/texts';
import { loadTokenizer, TextTokenizer } from '../../src/data/tokenizer';
import { readPositives } from '../../src/cli/metrics';
import { tempDirs } from '../helpers/errors';
import { assertCleanError, assertMixed, expectErrorOrValid, fuzzRuns, jsonPlanArb, mutateJson, mutateText, newOutcome, sometimesBytesArb } from './mutate';

const BASE_MODEL = path.join(__dirname, '..', '..', 'data', 'base-model');
const TOKENIZER_VALUES: unknown[] = ['WordLevel', 'BPE', 'WordPiece', 'Unigram', 'Whitespace', 'TemplateProcessing', '<unk>', '<s>', { '<unk>': 0 }, { a: -1 }, { a: 1e12 }, [['a', 0]]];

describe('fuzz: data readers', function () {
  const tmp = tempDirs('tda-fuzz-data-');
  let dir: string;
  let tokenizer: TextTokenizer;
  before(() => {
    dir = tmp.make();
    tokenizer = loadTokenizer(BASE_MODEL);
  });
  after(() => tmp.cleanup());

  it('tokenizer.json and tokenizer_config.json: mutations end in a one-line TdaError or a tokenizer whose ids stay in its vocabulary', () => {
    const tokJson = JSON.parse(fs.readFileSync(path.join(BASE_MODEL, 'tokenizer.json'), 'utf8'));
    const cfgJson = JSON.parse(fs.readFileSync(path.join(BASE_MODEL, 'tokenizer_config.json'), 'utf8'));
    const tokDir = path.join(dir, 'tok');
    fs.mkdirSync(tokDir);
    const tokFile = path.join(tokDir, 'tokenizer.json');
    const cfgFile = path.join(tokDir, 'tokenizer_config.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, fc.boolean(), sometimesBytesArb, (plan, mutateConfig, bytePlan) => {
        const target = mutateConfig ? cfgJson : tokJson;
        const text = mutateJson(target, plan, TOKENIZER_VALUES);
        const bytes = bytePlan ? mutateText(text, bytePlan) : text;
        fs.writeFileSync(mutateConfig ? cfgFile : tokFile, bytes);
        fs.writeFileSync(mutateConfig ? tokFile : cfgFile, JSON.stringify(mutateConfig ? tokJson : cfgJson));
        expectErrorOrValid(outcome, tokDir, () => loadTokenizer(tokDir), (tok) => {
          assert.ok(Number.isSafeInteger(tok.vocabSize) && tok.vocabSize > 0);
          for (const id of [tok.bosId, tok.eosId, tok.padId]) assert.ok(id === null || (Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
          // Encoding is where a broken model section shows: ids in range, or a clean error.
          for (const text of ['Alice lives in Paris .', '', 'zzqx unknown-word 123']) {
            try {
              const ids = tok.encode(text);
              assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize), `ids ${ids} outside the vocabulary`);
              tok.decode(ids);
            } catch (e) {
              if (e instanceof assert.AssertionError) throw e;
              assertCleanError(e, tokDir);
            }
          }
        });
      }),
      fuzzRuns(500),
    );
    assertMixed(outcome, 'tokenizer');
  });

  it('JSONL examples: mutated lines end in a one-line TdaError naming the line, or examples with a scorable response', () => {
    const lines = [
      { prompt: 'Where does Alice live ?', response: 'Paris .' },
      { input_ids: [1, 5, 6, 7, 8, 2], prompt_length: 3 },
      { prompt: 'Alice is a', response: 'doctor' },
      { input_ids: [1, 9], prompt_length: 0 },
    ];
    const file = path.join(dir, 'examples.jsonl');
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), jsonPlanArb, sometimesBytesArb, fc.boolean(), (which, plan, bytePlan, crlf) => {
        const i = which % lines.length;
        const text = mutateJson(lines[i], plan, ['prompt', 'response', 'input_ids', 'prompt_length', [1, 2, 3], 2, 'text']);
        const line = bytePlan ? mutateText(text, bytePlan).toString('latin1') : text;
        const all = lines.map((l, j) => (j === i ? line : JSON.stringify(l))).join(crlf ? '\r\n' : '\n');
        fs.writeFileSync(file, all, bytePlan ? 'latin1' : 'utf8');
        expectErrorOrValid(outcome, file, () => readExamplesJsonl(file, tokenizer), (examples) => {
          for (const ex of examples) {
            assert.ok(ex.inputIds.length > 0 && ex.inputIds.every((id) => Number.isSafeInteger(id) && id >= 0), `ids ${ex.inputIds.slice(0, 5)}`);
            assert.ok(Number.isSafeInteger(ex.promptLength) && ex.promptLength >= 0 && ex.promptLength < ex.inputIds.length);
            assert.ok(ex.inputIds.length - Math.max(ex.promptLength, 1) >= 1);
          }
          try {
            validateTokenIds(examples, tokenizer.vocabSize, file);
          } catch (e) {
            assertCleanError(e, file);
          }
        });
      }),
      fuzzRuns(1000),
    );
    assertMixed(outcome, 'examples');
  });

  it('JSONL texts (for BM25): mutated lines end in a one-line TdaError naming the line, or one string per line', () => {
    const lines = [{ prompt: 'Where does Alice live ?', response: 'Paris .' }, { prompt: 'Bob is a', response: 'doctor' }];
    const file = path.join(dir, 'texts.jsonl');
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), jsonPlanArb, sometimesBytesArb, (which, plan, bytePlan) => {
        const i = which % lines.length;
        const text = mutateJson(lines[i], plan, ['prompt', 'response', 'input_ids', '']);
        const line = bytePlan ? mutateText(text, bytePlan).toString('latin1') : text;
        fs.writeFileSync(file, lines.map((l, j) => (j === i ? line : JSON.stringify(l))).join('\n'), bytePlan ? 'latin1' : 'utf8');
        expectErrorOrValid(outcome, file, () => readTextsJsonl(file), (texts) => {
          assert.ok(texts.length >= 1 && texts.every((t) => typeof t === 'string'));
        });
      }),
      fuzzRuns(400),
    );
    assertMixed(outcome, 'texts');
  });

  it('labels.json: mutations end in a one-line TdaError or one list of in-range training indices per query', () => {
    const base = { positives: [[0, 2], [1], [], [3, 4, 0]] };
    const [nTest, nTrain] = [4, 5];
    const file = path.join(dir, 'labels.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, sometimesBytesArb, (plan, bytePlan) => {
        const text = mutateJson(base, plan, ['positives', [0], [[0]], 4, 5, 3]);
        fs.writeFileSync(file, bytePlan ? mutateText(text, bytePlan) : text);
        expectErrorOrValid(outcome, file, () => readPositives(file, nTest, nTrain), (positives) => {
          assert.equal(positives.length, nTest);
          for (const list of positives) assert.ok(list.every((i) => Number.isInteger(i) && i >= 0 && i < nTrain));
        });
      }),
      fuzzRuns(800),
    );
    assertMixed(outcome, 'labels.json');
  });
});
