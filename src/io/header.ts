import { showValue, TdaError } from '../errors';
import { DTYPE_BYTES, DTYPES, DType, isDType, isShape, shapeSize } from './dtype';

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute offset of the first byte in the file (8 + header length + data_offsets[0]). */
  byteOffset: number;
  byteLength: number;
}

export interface ParsedHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

/** Larger headers are not plausible (a 100k-tensor checkpoint needs ~10 MB) and would exhaust memory. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const METADATA_KEY = '__metadata__';

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? 'an object' : showValue(x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) {
    throw new TdaError(`must be an object of string values, got ${describe(raw)}`, { file, field: METADATA_KEY });
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') {
      throw new TdaError(`metadata values must be strings, got ${describe(v)}`, { file, field: `${METADATA_KEY}.${k}` });
    }
  }
  // fromEntries defines own properties, so a key like "__proto__" cannot change the prototype.
  return Object.fromEntries(Object.entries(raw as Record<string, string>));
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, raw: unknown, file: string): Entry {
  const where = { file, field: name };
  if (!isPlainObject(raw)) {
    throw new TdaError(`tensor entry must be an object with dtype, shape and data_offsets, got ${describe(raw)}`, where);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isDType(dtype)) {
    throw new TdaError(`unknown or unsupported dtype ${showValue(dtype)} (supported: ${DTYPES.join(', ')})`, where);
  }
  if (!isShape(shape)) {
    throw new TdaError(`shape must be an array of non-negative integers, got ${showValue(shape)}`, where);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new TdaError(
      `data_offsets must be two non-negative integers [begin, end] with begin <= end, got ${showValue(offsets)}`,
      where,
    );
  }
  const [begin, end] = offsets as [number, number];
  const expected = shapeSize(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw new TdaError(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${showValue(shape)} of ${dtype} needs ${expected} bytes`,
      where,
    );
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/**
 * Validate a decoded header against the file it came from. `fileSize` is the full file size and
 * `headerLength` the N from the 8-byte prefix; data_offsets are relative to byte 8 + N.
 */
export function parseHeader(json: string, headerLength: number, fileSize: number, file: string): ParsedHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new TdaError(`header is not valid JSON (${(e as Error).message})`, { file, field: 'header' });
  }
  if (!isPlainObject(raw)) {
    throw new TdaError(`header must be a JSON object, got ${describe(raw)}`, { file, field: 'header' });
  }
  const metadata = parseMetadata(raw[METADATA_KEY], file);
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name !== METADATA_KEY) entries.push(parseEntry(name, value, file));
  }

  // Sort by position: overlaps then show up between neighbours, and a layout with no gaps
  // (what every writer produces) lets us tell a truncated file from a corrupt offset.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: Entry | null = null;
  let contiguous = true;
  let pos = 0;
  for (const t of sorted) {
    if (t.begin === t.end) continue; // empty tensors occupy no bytes
    if (prev && t.begin < prev.end) {
      throw new TdaError(
        `data_offsets [${t.begin}, ${t.end}] overlap tensor '${prev.name}' [${prev.begin}, ${prev.end}]`,
        { file, field: t.name },
      );
    }
    if (t.begin !== pos) contiguous = false;
    pos = t.end;
    prev = t;
  }

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  const beyond = sorted.find((t) => t.end > dataSize);
  if (beyond) {
    if (contiguous) {
      const expected = dataStart + sorted.reduce((m, t) => Math.max(m, t.end), 0);
      throw new TdaError(
        `file is truncated: expected ${expected} bytes (8 + header ${headerLength} + data ${expected - dataStart}), found ${fileSize}`,
        { file, field: beyond.name },
      );
    }
    throw new TdaError(
      `data_offsets [${beyond.begin}, ${beyond.end}] lie outside the data section (${dataSize} bytes)`,
      { file, field: beyond.name },
    );
  }

  const tensors = entries.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    byteOffset: dataStart + t.begin,
    byteLength: t.end - t.begin,
  }));
  return { tensors, metadata };
}
