/**
 * One error type for every bad input the toolkit detects. The message always names the
 * file and, where there is one, the field or tensor, so a user can find the problem
 * without a stack trace.
 */
export class TdaError extends Error {
  readonly file?: string;
  readonly field?: string;

  constructor(message: string, where: { file?: string; field?: string } = {}) {
    const parts: string[] = [];
    if (where.file) parts.push(where.file);
    if (where.field) parts.push(`'${where.field}'`);
    // One line always: names and values taken from a file may hold line breaks.
    super((parts.length ? `${parts.join(': ')}: ${message}` : message).replace(/\r/g, '\\r').replace(/\n/g, '\\n'));
    this.name = 'TdaError';
    this.file = where.file;
    this.field = where.field;
  }
}

/**
 * A value from an input file, for an error message: its JSON, cut to `max` characters. Never
 * throws: a value nested too deep for JSON.stringify (which recurses) is named by its type.
 */
export function showValue(value: unknown, max = 200): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = Array.isArray(value) ? '(an array nested too deeply to print)' : '(an object nested too deeply to print)';
  }
  if (text === undefined) text = String(value);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}
