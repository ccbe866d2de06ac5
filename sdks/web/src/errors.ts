/** The failure kinds of docs/errors.md: the same names and numbers as every other Plinth SDK. */
export const KINDS = {
  manifest: 1,
  compile: 2,
  compile_limit: 3,
  link: 4,
  function_not_found: 5,
  not_callable: 6,
  trap: 7,
  guest: 8,
  exit: 9,
  timeout: 10,
  cancelled: 11,
  out_of_memory: 12,
  out_of_fuel: 13,
  http_denied: 14,
  http: 15,
  var_store_full: 16,
  host_function: 17,
  reentrant: 18,
  wasi: 19,
  convert: 20,
  memory: 21,
  closed: 22,
  busy: 23,
  other: 24,
  artifact: 25,
  stream: 26,
} as const;

/** A kind name, such as `"trap"` or `"manifest"`. */
export type ErrorKind = keyof typeof KINDS;

/** Extism's return code for a trap. */
export const TRAP_CODE = 134;

/** Every failure the SDK reports. Match on `kind`, not on the message. */
export class PlinthError extends Error {
  /** The kind's name (docs/errors.md). */
  readonly kind: ErrorKind;
  /** The kind's stable number. */
  readonly kindCode: number;
  /** Extism's return code: the plug-in's own for `guest`, 134 for a trap, -1 otherwise. */
  readonly code: number;

  constructor(kind: ErrorKind, message: string, options: { code?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PlinthError';
    this.kind = kind;
    this.kindCode = KINDS[kind];
    this.code = options.code ?? (kind === 'trap' ? TRAP_CODE : -1);
  }
}
