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
    super(parts.length ? `${parts.join(': ')}: ${message}` : message);
    this.name = 'TdaError';
    this.file = where.file;
    this.field = where.field;
  }
}
