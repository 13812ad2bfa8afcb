// Typed errors for everything lib/ can fail at. Like jose: a base class with a stable `code`
// on class and instance, one subclass per failure a caller can act on, `cause` kept.

/** Base class of every error lib/ throws on purpose. */
export class MeteringError extends Error {
  static code = "ERR_METERING";
  code = "ERR_METERING";
  /** Longer explanation and fix, for `--verbose` or a troubleshooting line. */
  detail?: string;

  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = this.constructor.name;
    if (options?.detail !== undefined) this.detail = options.detail;
  }
}

/** Bad command-line input: a script says so in one line, points at --help and exits 2. Nothing was changed. */
export class UsageError extends MeteringError {
  static override code = "ERR_USAGE";
  override code = "ERR_USAGE";
}

/**
 * Bad input data (a usage file, stdin): exit 2, nothing signed, sent or written. `problems`
 * holds every bad row with its line number; a script shows them without --verbose.
 */
export class InputError extends MeteringError {
  static override code = "ERR_INPUT";
  override code = "ERR_INPUT";
  problems: Array<{ line: number; message: string }>;
  constructor(message: string, options: { problems?: Array<{ line: number; message: string }>; cause?: unknown } = {}) {
    super(message, options);
    this.problems = options.problems ?? [];
  }
}

/**
 * What Azure holds does not match what this ISV would connect (1-connect-customer --adopt: the
 * offer template's federated credential names another issuer, subject or audience). Exit 2,
 * nothing written; the message names what differs.
 */
export class IdentityMismatchError extends MeteringError {
  static override code = "ERR_IDENTITY_MISMATCH";
  override code = "ERR_IDENTITY_MISMATCH";
}

/**
 * config.json's publisher.ledger names another ledger than the one a command was asked to
 * configure: exit 2, nothing changed; the message says what to do.
 */
export class LedgerConflictError extends MeteringError {
  static override code = "ERR_LEDGER_CONFLICT";
  override code = "ERR_LEDGER_CONFLICT";
  path: string;
  constructor(message: string, options: { path: string; cause?: unknown }) {
    super(message, options);
    this.path = options.path;
  }
}

/** config.json does not exist (yet). */
export class ConfigMissingError extends MeteringError {
  static override code = "ERR_CONFIG_MISSING";
  override code = "ERR_CONFIG_MISSING";
  path: string;
  constructor(message: string, options: { path: string; cause?: unknown }) {
    super(message, options);
    this.path = options.path;
  }
}

/** config.json is unreadable, not JSON, or misses keys the operation needs. */
export class ConfigInvalidError extends MeteringError {
  static override code = "ERR_CONFIG_INVALID";
  override code = "ERR_CONFIG_INVALID";
  path: string;
  /** One entry per missing or invalid key, e.g. `publisher.idp.issuer: missing`. */
  problems: string[];
  constructor(message: string, options: { path: string; problems: string[]; cause?: unknown }) {
    super(message, options);
    this.path = options.path;
    this.problems = options.problems;
  }
}

/** The customer (subscription, managed resource group) is not in config.json. */
export class CustomerNotConnectedError extends MeteringError {
  static override code = "ERR_CUSTOMER_NOT_CONNECTED";
  override code = "ERR_CUSTOMER_NOT_CONNECTED";
}

/** The `az` executable is not on PATH. */
export class AzNotFoundError extends MeteringError {
  static override code = "ERR_AZ_NOT_FOUND";
  override code = "ERR_AZ_NOT_FOUND";
}

/** An `az` command exited non-zero or printed something that is not JSON. */
export class AzError extends MeteringError {
  static override code = "ERR_AZ";
  override code = "ERR_AZ";
  /** The az arguments (never holds secrets: we pass none to az). */
  args: string[];
  exitCode: number | null;
  stderr: string;
  /** The `ERROR: …` line az printed, without the prefix, when there was one. */
  errorLine?: string;
  constructor(
    message: string,
    options: { args: string[]; exitCode: number | null; stderr: string; errorLine?: string; cause?: unknown },
  ) {
    super(message, { cause: options.cause, detail: options.stderr.trim() || undefined });
    this.args = options.args;
    this.exitCode = options.exitCode;
    this.stderr = options.stderr;
    if (options.errorLine !== undefined) this.errorLine = options.errorLine;
  }
}

/** ARM answered, but not with what we need (no managing app, no billing details, bad paging). */
export class ArmError extends MeteringError {
  static override code = "ERR_ARM";
  override code = "ERR_ARM";
}

/** The managed resource group is not managed by a managed application. */
export class NotManagedResourceGroupError extends ArmError {
  static override code = "ERR_NOT_MANAGED_RESOURCE_GROUP";
  override code = "ERR_NOT_MANAGED_RESOURCE_GROUP";
}

/** The managed application has no billing details yet (not provisioned, or not a Marketplace app). */
export class ManagedAppNotBillableError extends ArmError {
  static override code = "ERR_MANAGED_APP_NOT_BILLABLE";
  override code = "ERR_MANAGED_APP_NOT_BILLABLE";
}

/**
 * A resource named on the command line does not exist (a vault, a namespace, a queue, a managed
 * application): like a usage error, nothing was changed, and the script exits 2.
 */
export class ResourceNotFoundError extends MeteringError {
  static override code = "ERR_RESOURCE_NOT_FOUND";
  override code = "ERR_RESOURCE_NOT_FOUND";
}

/** A data-plane service (Key Vault secrets, Service Bus) answered with an error. */
export class DataPlaneError extends MeteringError {
  static override code = "ERR_DATA_PLANE";
  override code = "ERR_DATA_PLANE";
  /** `keyvault` or `servicebus`. */
  service: string;
  httpStatus?: number;
  constructor(message: string, options: { service: string; httpStatus?: number; detail?: string; cause?: unknown }) {
    super(message, options);
    this.service = options.service;
    if (options.httpStatus !== undefined) this.httpStatus = options.httpStatus;
  }
}

/** The identity lacks the data role the operation needs (HTTP 403); `role` names the one to grant. */
export class AccessDeniedError extends DataPlaneError {
  static override code = "ERR_ACCESS_DENIED";
  override code = "ERR_ACCESS_DENIED";
  role: string;
  constructor(message: string, options: { service: string; role: string; httpStatus?: number; detail?: string; cause?: unknown }) {
    super(message, options);
    this.role = options.role;
  }
}

/** Key Vault refused or failed to return a key or a signature. */
export class SigningError extends MeteringError {
  static override code = "ERR_SIGNING";
  override code = "ERR_SIGNING";
}

/** Uploading the issuer documents to Blob Storage failed. */
export class IssuerPublishError extends MeteringError {
  static override code = "ERR_ISSUER_PUBLISH";
  override code = "ERR_ISSUER_PUBLISH";
}

/** An issuer document could not be fetched anonymously (network, status, not JSON). */
export class IssuerFetchError extends MeteringError {
  static override code = "ERR_ISSUER_FETCH";
  override code = "ERR_ISSUER_FETCH";
  url: string;
  status?: number;
  constructor(message: string, options: { url: string; status?: number; cause?: unknown }) {
    super(message, options);
    this.url = options.url;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** The published issuer documents do not match what Entra needs (issuer, jwks_uri, key, signature). */
export class IssuerVerificationError extends MeteringError {
  static override code = "ERR_ISSUER_VERIFICATION";
  override code = "ERR_ISSUER_VERIFICATION";
}

/** Entra refused to exchange the client assertion for a token. */
export class FederationError extends MeteringError {
  static override code = "ERR_FEDERATION";
  override code = "ERR_FEDERATION";
  /** The AADSTS error number, e.g. 700213, when Entra sent one. */
  aadsts?: number;
  /** The OAuth error, e.g. `invalid_client`. */
  oauthError?: string;
  constructor(message: string, options: { aadsts?: number; oauthError?: string; detail?: string; cause?: unknown }) {
    super(message, options);
    if (options.aadsts !== undefined) this.aadsts = options.aadsts;
    if (options.oauthError !== undefined) this.oauthError = options.oauthError;
  }
}

/** The metering API could not be reached, or answered with something we cannot read. */
export class MeteringApiError extends MeteringError {
  static override code = "ERR_METERING_API";
  override code = "ERR_METERING_API";
  httpStatus?: number;
  constructor(message: string, options?: { httpStatus?: number; cause?: unknown; detail?: string }) {
    super(message, options);
    if (options?.httpStatus !== undefined) this.httpStatus = options.httpStatus;
  }
}

/** A record about to go into the audit log holds something that looks like a token. */
export class AuditLeakError extends MeteringError {
  static override code = "ERR_AUDIT_LEAK";
  override code = "ERR_AUDIT_LEAK";
}

/** What a person reads for the errors a full, quota-bound, failing or read-only disk gives. */
const WRITE_ERRORS: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EIO: "input/output error",
  EROFS: "read-only file system",
  EFBIG: "file too large",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
};

/** `no space left on device` for ENOSPC, and so on; the error's own message otherwise. */
export function describeWriteError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  return (code && WRITE_ERRORS[code]) ?? String((error as Error)?.message ?? error);
}

/**
 * A file in the data directory (the audit log, a lock, config.json) could not be written in
 * full: the disk is full, over quota, failing or read-only. Nothing that needed it went ahead.
 */
export class StateWriteError extends MeteringError {
  static override code = "ERR_STATE_WRITE";
  override code = "ERR_STATE_WRITE";
  path: string;
  /** The system's error code (ENOSPC, EDQUOT, EIO, EROFS, …), when there was one. */
  errno?: string;
  constructor(message: string, options: { path: string; errno?: string; cause?: unknown }) {
    super(message, options);
    this.path = options.path;
    if (options.errno !== undefined) this.errno = options.errno;
  }
}

/**
 * A record could not be made durable in the audit log. A record counts only when every byte
 * of it is on disk, so nothing that needed it may go ahead (no batch is sent without its intent).
 */
export class AuditWriteError extends StateWriteError {
  static override code = "ERR_AUDIT_WRITE";
  override code = "ERR_AUDIT_WRITE";
}

/** Another run holds the data directory's run lock and did not finish in time. */
export class RunLockedError extends MeteringError {
  static override code = "ERR_RUN_LOCKED";
  override code = "ERR_RUN_LOCKED";
  path: string;
  constructor(message: string, options: { path: string; cause?: unknown }) {
    super(message, options);
    this.path = options.path;
  }
}

/** A key rotation phase was asked for before its waiting time is over. Nothing was changed. */
export class RotationNotDueError extends MeteringError {
  static override code = "ERR_ROTATION_NOT_DUE";
  override code = "ERR_ROTATION_NOT_DUE";
  /** When the phase may run (epoch milliseconds). */
  dueAtMs: number;
  constructor(message: string, options: { dueAtMs: number; detail?: string }) {
    super(message, { detail: options.detail });
    this.dueAtMs = options.dueAtMs;
  }
}

/** The customer still has usage events without a recorded answer; disconnecting would orphan them. */
export class PendingEventsError extends MeteringError {
  static override code = "ERR_PENDING_EVENTS";
  override code = "ERR_PENDING_EVENTS";
}
