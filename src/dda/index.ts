/** DDA combinators over score matrices; see README.md for exactly what is computed. */
export { dda, DdaInput, DdaOptions } from './dda';
export { debias, DebiasOptions } from './debias';
export { denoise, DenoiseMode, DenoiseOptions } from './denoise';
export { Normalization, normalized } from './standardize';
export { pairedDda, PairedDdaInput } from './paired';
