// Signing-key rotation without a failed token exchange, in three phases a person runs minutes or
// days apart (docs/azure-behaviour.md §2.4: add the new key beside the old, wait, sign with the new, drop
// the old after the longest assertion lifetime). Pure: the phase plan and the config changes;
// the script does the Key Vault and Blob work in between.
import { MAX_ASSERTION_LIFETIME_S } from "../identity/assertion.mts";
import { idpKeysOf, type IdpConfig, type IdpKey } from "../state/config.mts";
import { RotationNotDueError, UsageError } from "../core/errors.mts";
import { MAX_JWKS_KEYS } from "./oidc.mts";
import type { Settings } from "../core/settings.mts";

export { MAX_JWKS_KEYS };

/**
 * How long a new key stays published before it signs. Entra's JWKS cache time is not
 * documented (docs/azure-behaviour.md §2.4: caches hold it for "hours"), so the default is a day; set
 * publisher.idp.jwksCacheSeconds to change it.
 */
export const DEFAULT_JWKS_CACHE_S = 24 * 3600;
/** Clock skew Entra tolerates on assertion times (docs/azure-behaviour.md §2.3: unconfirmed, the sandbox's default). */
const ASSERTION_CLOCK_SKEW_S = 300;
/** An old key leaves the JWKS once no assertion it signed can still be accepted. */
export const DEFAULT_RETIRE_AFTER_S = MAX_ASSERTION_LIFETIME_S + ASSERTION_CLOCK_SKEW_S;
/** Environment variable that replaces the current time for the rotation's waiting-time checks. */
const ROTATION_NOW_ENV = "METERING_ROTATION_NOW";

export type RotationPhase = "publish" | "activate" | "retire";

/**
 * The bash tool published its key with the versioned Key Vault key URL as `kid`; this suite uses
 * the RFC 7638 thumbprint. A kid that is a URL is such a legacy kid. Moving off it is a rotation
 * whose phase 1 publishes the thumbprint kid of the same key version beside it (no new version).
 */
export function isLegacyKid(kid: string): boolean {
  return /^https:\/\//i.test(kid);
}

export interface RotationStep {
  phase: RotationPhase;
  /** 1 publish, 2 activate, 3 retire. */
  number: 1 | 2 | 3;
  /** The key the phase acts on (the waiting key for activate; the newest leaving key for retire). */
  key?: IdpKey;
  /** Earliest time the phase may run (epoch ms); 0 when it may run at once. */
  dueAtMs: number;
  /** Why it has to wait, for the message. */
  waitReason?: string;
  /**
   * Phase 1 of the migration off a legacy kid (isLegacyKid): publish the thumbprint kid of the
   * signing key's own version beside the legacy kid, instead of creating a new key version.
   */
  migration?: boolean;
}

const _ms = (iso: string | undefined): number => {
  const t = Date.parse(iso ?? "");
  return Number.isNaN(t) ? 0 : t;
};

/** The waiting times of an idp, with their defaults. Pure. */
function rotationTimings(idp: IdpConfig): { jwksCacheS: number; retireAfterS: number } {
  return {
    jwksCacheS: idp.jwksCacheSeconds ?? DEFAULT_JWKS_CACHE_S,
    retireAfterS: idp.retireAfterSeconds ?? DEFAULT_RETIRE_AFTER_S,
  };
}

/**
 * Which rotation phase comes next and from when it may run. A key that stopped signing and
 * is still published is retired first (phase 3); a published key that never signed is
 * activated (phase 2); otherwise a new key is published (phase 1). Pure.
 */
export function nextRotationStep(idp: IdpConfig): RotationStep {
  const keys = idpKeysOf(idp);
  const { jwksCacheS, retireAfterS } = rotationTimings(idp);
  const leaving = keys.filter((k) => k.state === "published" && k.deactivatedAt);
  if (leaving.length > 0) {
    const newest = leaving.reduce((a, b) => (_ms(a.deactivatedAt) >= _ms(b.deactivatedAt) ? a : b));
    return {
      phase: "retire", number: 3, key: newest, dueAtMs: _ms(newest.deactivatedAt) + retireAfterS * 1000,
      waitReason: `assertions signed with the old key stay valid for up to ${retireAfterS} s after it stopped signing (publisher.idp.retireAfterSeconds)`,
    };
  }
  const waiting = keys.find((k) => k.state === "published");
  if (waiting) {
    return {
      phase: "activate", number: 2, key: waiting, dueAtMs: _ms(waiting.publishedAt ?? waiting.since) + jwksCacheS * 1000,
      waitReason: `Entra may keep the previous JWKS cached for up to ${jwksCacheS} s (publisher.idp.jwksCacheSeconds)`,
    };
  }
  const active = keys.find((k) => k.state === "active");
  if (active && isLegacyKid(active.kid)) return { phase: "publish", number: 1, key: active, dueAtMs: 0, migration: true };
  return { phase: "publish", number: 1, dueAtMs: 0 };
}

/** "2 h 5 min", "45 s": a waiting time for a person. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const parts = [d && `${d} d`, h && `${h} h`, m && `${m} min`, !d && !h && r && `${r} s`].filter(Boolean);
  return parts.length ? parts.join(" ") : "0 s";
}

const PHASE_TITLE: Record<RotationPhase, string> = {
  publish: "publish a new key",
  activate: "sign with the new key",
  retire: "retire the old key",
};

/** Throws RotationNotDueError (saying when it can run) unless the step may run at `nowMs`. */
export function assertRotationDue(step: RotationStep, nowMs: number): void {
  if (nowMs >= step.dueAtMs) return;
  const when = new Date(step.dueAtMs).toISOString();
  throw new RotationNotDueError(
    `Cannot ${PHASE_TITLE[step.phase]} yet (phase ${step.number} of 3): ${step.waitReason}; run 0-isv-setup --rotate-key again after ${when} (in ${formatDuration(step.dueAtMs - nowMs)})`,
    { dueAtMs: step.dueAtMs },
  );
}

/**
 * The time rotation checks take as now: `METERING_ROTATION_NOW` (ISO 8601) when set, for
 * rehearsing a rotation or deliberately cutting a wait short; else the clock.
 */
export function rotationNow(settings: Pick<Settings, "rotationNow">, clock: () => number = Date.now): number {
  const value = settings.rotationNow;
  if (value === undefined || value === "") return clock();
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(t)) {
    throw new UsageError(`Cannot use ${ROTATION_NOW_ENV}=${JSON.stringify(value)}: expected an ISO 8601 time such as 2026-01-31T12:00:00Z`);
  }
  return t;
}

function _withKeys(idp: IdpConfig, keys: IdpKey[]): IdpConfig {
  const active = keys.find((k) => k.state === "active")!;
  // keyId/keyJson keep naming the signing key, for readers of the bash-era shape.
  return { ...idp, keys, keyId: active.keyId, keyJson: { ...active.jwk } };
}

/**
 * Phase 1: adds a new key as published beside the active one. Throws RangeError when the
 * JWKS would exceed 100 keys, TypeError when the kid is already there. Pure.
 */
export function withPublishedKey(idp: IdpConfig, options: { kid: string; keyId: string; jwk: IdpKey["jwk"]; nowMs: number }): IdpConfig {
  const keys = idpKeysOf(idp).map((k) => ({ ...k }));
  if (keys.some((k) => k.kid === options.kid && k.state !== "retired")) {
    throw new TypeError(`Cannot publish key ${options.keyId}: kid ${options.kid} is already published`);
  }
  const published = keys.filter((k) => k.state !== "retired").length;
  if (published + 1 > MAX_JWKS_KEYS) {
    throw new RangeError(`Cannot publish another key: the JWKS already holds ${published} keys and Entra reads only the first ${MAX_JWKS_KEYS}`);
  }
  const at = new Date(options.nowMs).toISOString();
  keys.push({ kid: options.kid, keyId: options.keyId, state: "published", since: at, publishedAt: at, jwk: { ...options.jwk } });
  return _withKeys(idp, keys);
}

/**
 * Migration, before phase 1: the legacy key's entry with its public key as this suite publishes
 * it (base64url n and e, use sig, alg RS256; the bash tool's were standard base64 without use),
 * under the same legacy kid. Pure.
 */
export function withNormalizedKey(idp: IdpConfig, options: { kid: string; jwk: IdpKey["jwk"] }): IdpConfig {
  const keys = idpKeysOf(idp).map((k): IdpKey => (k.kid === options.kid ? { ...k, jwk: { ...options.jwk, kid: options.kid } } : { ...k }));
  if (!keys.some((k) => k.kid === options.kid)) throw new TypeError(`Cannot normalise kid ${options.kid}: no such key`);
  return _withKeys(idp, keys);
}

/** Phase 2: the waiting published key signs from now on; the old active key stays published. Pure. */
export function withActivatedKey(idp: IdpConfig, options: { kid: string; nowMs: number }): IdpConfig {
  const at = new Date(options.nowMs).toISOString();
  const keys = idpKeysOf(idp).map((k): IdpKey => {
    if (k.kid === options.kid) return { ...k, state: "active", since: at, activatedAt: at };
    if (k.state === "active") return { ...k, state: "published", since: at, deactivatedAt: at };
    return { ...k };
  });
  if (!keys.some((k) => k.kid === options.kid && k.state === "active")) throw new TypeError(`Cannot activate kid ${options.kid}: no such key`);
  return _withKeys(idp, keys);
}

/** Phase 3: every key that stopped signing leaves the JWKS (kept in config as retired). Pure. */
export function withRetiredKeys(idp: IdpConfig, options: { nowMs: number }): IdpConfig {
  const at = new Date(options.nowMs).toISOString();
  const keys = idpKeysOf(idp).map((k): IdpKey =>
    k.state === "published" && k.deactivatedAt ? { ...k, state: "retired", since: at, retiredAt: at } : { ...k }
  );
  return _withKeys(idp, keys);
}
