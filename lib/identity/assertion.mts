// The client assertion the ISV presents to the customer's Entra tenant: a short-lived JWT
// whose iss/sub/aud match the UAMI's federated credential exactly.
import { randomUUID } from "node:crypto";
import { signJwt, type Signer } from "./signer.mts";

/** Default lifetime; Entra allows up to 25 h, but the assertion is used at once. */
export const ASSERTION_LIFETIME_S = 300;
/** Hard upper bound we allow (10 minutes): a leaked assertion must not be useful for long. */
export const MAX_ASSERTION_LIFETIME_S = 600;
/** Audience Entra recommends for federated credentials. */
export const DEFAULT_AUDIENCE = "api://AzureADTokenExchange";

export interface AssertionClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
}

export interface AssertionOptions {
  issuer: string;
  subject: string;
  audience?: string;
  /** Current time (Date or epoch milliseconds); default now. */
  now?: Date | number;
  lifetimeS?: number;
  /** Unique token id; default a random UUID. */
  jti?: string;
}

/**
 * The claims of a client assertion. Pure. `iat` = `nbf` = now (whole seconds), `exp` =
 * now + lifetimeS. Throws RangeError for a lifetime outside 1..600 s, TypeError for an
 * empty issuer or subject.
 */
export function buildAssertionClaims(options: AssertionOptions): AssertionClaims {
  const lifetimeS = options.lifetimeS ?? ASSERTION_LIFETIME_S;
  if (!Number.isInteger(lifetimeS) || lifetimeS < 1 || lifetimeS > MAX_ASSERTION_LIFETIME_S) {
    throw new RangeError(`Cannot build assertion: lifetimeS must be an integer from 1 to ${MAX_ASSERTION_LIFETIME_S}, got ${lifetimeS}`);
  }
  if (!options.issuer || !options.subject) {
    throw new TypeError(`Cannot build assertion: issuer and subject are required, got ${JSON.stringify({ issuer: options.issuer, subject: options.subject })}`);
  }
  const nowMs = options.now === undefined ? Date.now() : +options.now;
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: options.issuer,
    sub: options.subject,
    aud: options.audience ?? DEFAULT_AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + lifetimeS,
    jti: options.jti ?? randomUUID(),
  };
}

/**
 * Builds and signs a client assertion (header alg RS256, typ JWT, kid of the signer).
 *
 * @example
 * const jwt = await buildClientAssertion({ issuer, subject, signer });
 */
export async function buildClientAssertion(options: AssertionOptions & { signer: Signer }): Promise<string> {
  const claims = buildAssertionClaims(options);
  return await signJwt({ header: { typ: "JWT" }, payload: { ...claims }, signer: options.signer });
}
