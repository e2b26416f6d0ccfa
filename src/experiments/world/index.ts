/**
 * The synthetic world behind the embedded default model and its three experiments: the world
 * itself, the pretraining corpus, the DDA fine-tuning data (canaries, queries, bias
 * sentences), the IF-on-LLMs tasks, the LMD3 paraphrase-injection data and the tokenizer.
 * Everything is deterministic in its seed.
 */
export { makeWorld, fullName, personVars, peopleByCountry, DEFAULT_WORLD_SIZES, QUICK_WORLD_SIZES, World, WorldSizes, Person, City } from './world';
export { pretrainingCorpus, generalSentences, PretrainingOptions } from './pretraining';
export {
  ddaData,
  ddaSubset,
  ddaPerPairSets,
  choosePairs,
  biasSentences,
  DdaData,
  DdaExample,
  DdaQuery,
  DdaOptions,
  DdaRegime,
  CanaryPair,
  BiasOptions,
} from './ddaData';
export {
  ifLlmData,
  classAttributionData,
  backdoorData,
  harmfulData,
  insertTrigger,
  CLASS_FAMILIES,
  HARM_KINDS,
  ClassFamily,
  ClassExample,
  ClassAttributionData,
  ClassAttributionOptions,
  BackdoorData,
  BackdoorExample,
  BackdoorTest,
  BackdoorOptions,
  HarmfulData,
  HarmfulExample,
  HarmfulTest,
  HarmfulOptions,
  IfLlmOptions,
} from './ifLlmData';
export { lmd3Data, Lmd3Data, Lmd3Example, Lmd3Test, Lmd3Options, ParaphraseDiversity } from './lmd3Data';
export { worldTokenizerJson, worldTokenizerConfig, worldTokenizer } from './vocabulary';
export {
  PERSON_TEMPLATES,
  CITY_TEMPLATES,
  DDA_TASKS,
  DDA_TASK_NAMES,
  COUNTRY_TASKS,
  BIAS_TEMPLATES,
  CLASS_TEMPLATES,
  HARMFUL_TEMPLATES,
  LMD3_TEMPLATES,
  LMD3_TASK_NAMES,
  BACKDOOR_RESPONSE,
  PROFESSION_ACTIVITIES,
  COLOR_CUES,
  DdaTask,
  HarmKind,
  Lmd3Task,
} from './templates';
