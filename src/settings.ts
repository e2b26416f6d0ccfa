/**
 * Settings stored with results (score files, run folders): plain JSON compared key by key,
 * so that combining or reusing results made with different settings is refused naming
 * the setting that differs.
 */

/** The first path at which two JSON values differ (`damping.q_proj`), or null when equal. */
export function settingsDifference(a: unknown, b: unknown, at = ''): string | null {
  if (a === b) return null;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) return at || '(whole value)';
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const k of keys) {
    const d = settingsDifference(a[k], b[k], at ? `${at}.${k}` : k);
    if (d) return d;
  }
  return null;
}

/** The value at a dotted path, for messages. */
export function settingAt(value: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), value);
}
