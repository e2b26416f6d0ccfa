/** Inputs the fuzz tests found breaking a reader, kept as named cases. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTopKFile, writeTopKFile } from '../../src/attribution/scoreFile';
import { readGradientFile } from '../../src/gradients/file';
import { GradientStore } from '../../src/gradients/store/gradientStore';
import { MANIFEST_FILE } from '../../src/gradients/store/manifest';
import { runMerge } from '../../src/cli/merge';
import { readExamplesJsonl } from '../../src/data/examples';
import { loadTokenizer } from '../../src/data/tokenizer';
import { TdaError } from '../../src/errors';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors';
import { readLoraConfig } from '../../src/model/adapter';
import { listCheckpoints } from '../../src/model/checkpoints';
import { readModelConfig } from '../../src/model/config';
import { checkpointLearningRates, readTrainerState } from '../../src/train/trainerState';
import { FIXTURE, tempDirs, throwsTda } from '../helpers/errors';
import { arrayBufferBytes, assertCleanError } from './mutate';
import { joinSafetensors } from './safetensorsFiles';

const BASE_MODEL = path.join(__dirname, '..', '..', 'data', 'base-model');
const DEEP = '['.repeat(100_000) + ']'.repeat(100_000);
const MB = 1024 * 1024;

/** fn throws a clean TdaError (one line, naming `file`) that contains every fragment. */
function refused(fn: () => unknown, file: string, ...fragments: string[]): TdaError {
  const e = throwsTda(fn, ...fragments);
  assertCleanError(e, file);
  return e;
}

describe('fuzz regressions', function () {
  const tmp = tempDirs('tda-fuzz-reg-');
  let dir: string;
  beforeEach(() => {
    dir = tmp.make();
  });
  afterEach(() => tmp.cleanup());

  const stFile = (header: unknown, data = Buffer.alloc(0)) => {
    const file = path.join(dir, 'x.safetensors');
    fs.writeFileSync(file, joinSafetensors(typeof header === 'string' ? header : JSON.stringify(header), data));
    return file;
  };

  it('safetensors: shapes of 10^12 and [2^31, 2^31] elements are refused before anything is allocated', () => {
    for (const shape of [[1e12], [2 ** 31, 2 ** 31], [2 ** 26, 2 ** 26, 2 ** 26]]) {
      const file = stFile({ w: { dtype: 'F32', shape, data_offsets: [0, 16] } }, Buffer.alloc(16));
      const before = arrayBufferBytes();
      refused(() => SafetensorsFile.open(file), file, "'w'", 'needs');
      assert.ok(arrayBufferBytes() - before < MB, 'the reader allocated for the hostile shape');
    }
  });

  it('safetensors: a header value nested 100,000 deep is a TdaError, not a stack overflow while printing it', () => {
    const file = stFile(`{"w":{"dtype":"F32","shape":${DEEP},"data_offsets":[0,0]}}`);
    refused(() => SafetensorsFile.open(file), file, "'w'", 'nested too deeply');
  });

  it('safetensors: a tensor name with a line break still gives a one-line message', () => {
    const file = stFile({ 'a\nb': { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, Buffer.alloc(4));
    refused(() => SafetensorsFile.open(file), file, "'a\\nb'");
  });

  it('safetensors: a huge string value is shown shortened', () => {
    const file = stFile({ w: { dtype: 'x'.repeat(100_000), shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4));
    const e = refused(() => SafetensorsFile.open(file), file, '(100002 characters)');
    assert.ok(e.message.length < 1000);
  });

  it('config.json: integer fields beyond 2^53 (not exact) are refused', () => {
    const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...config, hidden_size: 2 ** 53 }));
    refused(() => readModelConfig(file), file, "'hidden_size'", 'positive integer');
  });

  it('adapter_config.json: r and layers_to_transform beyond 2^53 are refused', () => {
    const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'adapter', 'adapter_config.json'), 'utf8'));
    const file = path.join(dir, 'adapter_config.json');
    fs.writeFileSync(file, JSON.stringify({ ...config, r: 2 ** 53 }));
    refused(() => readLoraConfig(dir), file, "'r'");
    fs.writeFileSync(file, JSON.stringify({ ...config, layers_to_transform: [2 ** 60] }));
    refused(() => readLoraConfig(dir), file, "'layers_to_transform'");
  });

  describe('tokenizer.json', () => {
    const tokJson = () => JSON.parse(fs.readFileSync(path.join(BASE_MODEL, 'tokenizer.json'), 'utf8'));
    const write = (json: unknown) => {
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
      fs.copyFileSync(path.join(BASE_MODEL, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
      return path.join(dir, 'tokenizer.json');
    };

    it('an added token id of 4 billion is refused at once (the library would walk a 4-billion-slot array)', () => {
      const json = tokJson();
      json.added_tokens[0].id = 4_294_967_000;
      const file = write(json);
      const started = Date.now();
      refused(() => loadTokenizer(dir), file, "'added_tokens[0].id'", '4294967000');
      assert.ok(Date.now() - started < 2000);
    });

    it('a vocabulary id that is not a number is refused (it used to come back as the pad token id)', () => {
      const json = tokJson();
      json.model.vocab['<pad>'] = { a: 1 };
      const file = write(json);
      refused(() => loadTokenizer(dir), file, "'model.vocab.<pad>'");
    });

    it('a post-processor the library cannot run gives a TdaError naming the file when encoding', () => {
      const json = tokJson();
      json.post_processor = { ...json.post_processor, type: 'TemplateProcessing', single: 5 };
      const file = write(json);
      let tok: ReturnType<typeof loadTokenizer>;
      try {
        tok = loadTokenizer(dir);
      } catch (e) {
        assertCleanError(e, file);
        return; // refused at load: as good
      }
      refused(() => tok.encode('Alice'), file, 'cannot encode');
    });
  });

  it('JSONL examples: token ids beyond 2^53 are refused, naming the line', () => {
    const file = path.join(dir, 'x.jsonl');
    fs.writeFileSync(file, `{"input_ids": [1, 2, 3], "prompt_length": 1}\n{"input_ids": [${2 ** 53}, 9], "prompt_length": 0}\n`);
    refused(() => readExamplesJsonl(file), file, "'line 2'", 'input_ids');
  });

  it('gradient files: a loss tensor whose length is not the number of examples is refused', () => {
    const file = path.join(dir, 'g.safetensors');
    writeSafetensors(file, { loss: { shape: [2], data: Float32Array.from([1, 2]) }, g: { shape: [3, 2], data: new Float32Array(6) } });
    refused(() => readGradientFile(file), file, "'loss'", 'one loss per example');
  });

  describe('merge', () => {
    const shards = (meta0: Record<string, string>) => {
      const base = (i: number) => ({ format: 'tda-lab.scores', shard: `${i}/2`, shard_total: '3', shard_start: String(i * 2), shard_end: String(i === 0 ? 2 : 3), shard_axis: 'queries' });
      const files = [0, 1].map((i) => path.join(dir, `s${i}.safetensors`));
      writeSafetensors(files[0], { scores: { shape: [2, 4], data: new Float32Array(8) } }, { ...base(0), ...meta0 });
      writeSafetensors(files[1], { scores: { shape: [1, 4], data: new Float32Array(4) } }, base(1));
      return files;
    };

    it('a shard count of 10^11 in the metadata is refused without allocating a slot per shard', () => {
      const files = shards({ shard: '0/100000000000' });
      const before = arrayBufferBytes();
      const heap = process.memoryUsage().heapUsed;
      const e = throwsTda(() => runMerge(files, path.join(dir, 'out.safetensors')));
      assert.ok(e.message.includes(files[0]) || e.message.includes(files[1]), e.message);
      assert.ok(arrayBufferBytes() - before < MB && process.memoryUsage().heapUsed - heap < 64 * MB);
    });

    it('settings nested 100,000 deep in two shards are refused, not compared until the stack overflows', () => {
      const deep = (x: number) => '['.repeat(100_000) + x + ']'.repeat(100_000);
      const files = shards({ settings: deep(1) });
      const other = SafetensorsFile.open(files[1]);
      const meta = { ...other.metadata, settings: deep(2) };
      other.close();
      writeSafetensors(files[1], { scores: { shape: [1, 4], data: new Float32Array(4) } }, meta);
      refused(() => runMerge(files, path.join(dir, 'out.safetensors')), files[0], "'settings'", 'nested deeper');
    });

    it('a shard_end that is not a number is refused, naming the file and the field', () => {
      const files = shards({ shard_end: 'x' });
      refused(() => runMerge(files, path.join(dir, 'out.safetensors')), files[0], "'shard_end'");
    });
  });

  describe('trainer_state.json', () => {
    const run = () => {
      const r = path.join(dir, 'run');
      for (const step of [0, 2]) {
        const cp = path.join(r, `checkpoint-${step}`);
        fs.mkdirSync(cp, { recursive: true });
        for (const f of ['adapter_config.json', 'adapter_model.safetensors']) fs.copyFileSync(path.join(FIXTURE, 'adapter', f), path.join(cp, f));
      }
      return r;
    };
    const state = (rates: string) => `{"global_step": 2, "log_history": [{"step": 1, "learning_rate": ${rates.split(',')[0]}}, {"step": 2, "learning_rate": ${rates.split(',')[1]}}]}`;

    it('a learning rate of 1e999 (Infinity once parsed) is refused', () => {
      const r = run();
      fs.writeFileSync(path.join(r, 'trainer_state.json'), state('1e999,0.1'));
      refused(() => readTrainerState(r), path.join(r, 'trainer_state.json'), "'log_history[0].learning_rate'", 'finite');
    });

    it('learning rates that overflow when averaged are refused, not returned as Infinity', () => {
      const r = run();
      fs.writeFileSync(path.join(r, 'trainer_state.json'), state('1.7e308,1.7e308'));
      refused(() => checkpointLearningRates(r), r, "'log_history'", 'Infinity');
    });
  });

  it('checkpoint listing: a step beyond 2^53 is refused, naming the folder', () => {
    const cp = path.join(dir, 'checkpoint-99999999999999999999');
    fs.mkdirSync(cp);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) fs.copyFileSync(path.join(FIXTURE, 'adapter', f), path.join(cp, f));
    refused(() => listCheckpoints(dir), cp, 'too large');
  });

  it('top-k files: a row that lists a training example twice is refused', () => {
    const file = path.join(dir, 'top.safetensors');
    writeTopKFile(file, { nTest: 1, k: 3, nTrain: 5, indices: Int32Array.from([4, 4, 2]), scores: Float32Array.from([3, 2, 1]) });
    refused(() => readTopKFile(file), file, "'indices'", 'twice');
  });

  describe('gradient store manifest', () => {
    const makeStore = () => {
      const hash = (c: string) => c.repeat(64);
      const store = GradientStore.open(dir, { modelHash: hash('a'), adapterHash: hash('b'), datasetHash: hash('c'), n: 2, mask: 'response', shardSize: 2 });
      store.importShard(0, { n: 2, losses: Float32Array.from([1, 2]), blocks: [{ name: 'A', shape: [3], dim: 3, data: new Float32Array(6) }] });
      return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
    };

    it('a shard record whose bytes cannot hold its examples is refused when the manifest is read', () => {
      const m = makeStore();
      m.settings.n = 2 ** 40;
      m.settings.shardSize = 2 ** 40;
      m.shards[0].count = 2 ** 40;
      fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(m));
      refused(() => GradientStore.openExisting(dir), path.join(dir, MANIFEST_FILE), "'shards[0]'", 'too few');
    });

    it('n = 2^40 with a shard record claiming the bytes for it: readAll checks the files on disk before allocating n x dim floats', () => {
      const m = makeStore();
      m.settings.n = 2 ** 40;
      m.settings.shardSize = 2 ** 40;
      m.shards[0].count = 2 ** 40;
      m.shards[0].bytes = 2 ** 40 * 12;
      fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(m));
      const store = GradientStore.openExisting(dir);
      const before = arrayBufferBytes();
      refused(() => store.readAll(), path.join(dir, 'shard-00000.safetensors'), 'the manifest recorded 13194139533312');
      assert.ok(arrayBufferBytes() - before < MB);
    });

    it('a store of 10^9 examples in shards of 2 with one shard done: incomplete, said without listing 5*10^8 missing shards', () => {
      const m = makeStore();
      m.settings.n = 10 ** 9;
      m.settings.shardSize = 2;
      fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(m));
      const before = arrayBufferBytes();
      refused(() => GradientStore.openExisting(dir).readAll(), dir, 'incomplete');
      assert.ok(arrayBufferBytes() - before < MB);
    });

    it('a block whose dim is beyond 2^53 is refused', () => {
      const m = makeStore();
      m.blocks = [{ name: 'A', shape: [2 ** 31, 2 ** 31], dim: 2 ** 62 }];
      fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(m));
      refused(() => GradientStore.openExisting(dir), path.join(dir, MANIFEST_FILE), "'blocks[0]'");
    });
  });
});
