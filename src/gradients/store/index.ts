/** On-disk gradient stores: content hashes, the manifest, random projections, the store itself. */
export { canonicalJson, sha256Hex, hashFile, hashJsonFile, hashModelDir, hashAdapterDir, hashDataset } from './hash';
export {
  MANIFEST_FILE,
  STORE_FORMAT,
  STORE_FORMAT_VERSION,
  DEFAULT_SHARD_SIZE,
  STORE_DTYPES,
  StoreDType,
  StoreSettings,
  StoreSettingsInput,
  ManifestBlock,
  ShardRecord,
  Manifest,
  normalizeSettings,
  settingsDiff,
  checkSettings,
  readManifest,
  writeManifest,
  shardFileName,
  tdaLabVersion,
} from './manifest';
export {
  ProjectionKind,
  ProjectionSpec,
  ProjectorOptions,
  Projector,
  CHUNK_ROWS,
  DEFAULT_CACHE_BYTES,
  validateProjectionSpec,
  describeProjection,
  chunkSeed,
  projectionChunk,
  projectionMatrix,
} from '../projection';
export { GradientStore, ComputeOptions, ComputeReport, StoreShard, StoreSettingsOptions, storeSettings } from './gradientStore';
export { storeSource } from './storeSource';
