// The customer-side token: the ISV signs a client assertion, and Entra in the customer's
// tenant exchanges it for a token of the UAMI in the managed resource group. MSAL caches
// tokens per credential instance, so there is one credential per (tenant, UAMI).
// deno-lint-ignore-file no-explicit-any -- MSAL's and the SDK's errors carry untyped fields, read defensively
import { decodeJwt } from "jose";
import { ASSERTION_LIFETIME_S, buildClientAssertion } from "./assertion.mts";
import { explainAadsts, findAadstsCode, type SignInKind } from "./aadsts.mts";
import { FederationError, SigningError } from "../core/errors.mts";
import { DEFAULT_AUTHORITY_HOST } from "../core/settings.mts";
import type { Signer } from "./signer.mts";
import type { Settings } from "../core/settings.mts";
import type { TokenCredential } from "@azure/identity";

/** App id of the Marketplace metering API. */
export const METERING_RESOURCE_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
export const METERING_SCOPE = `${METERING_RESOURCE_ID}/.default`;
/** A cached assertion is not handed out when it has less than this left to live. */
const ASSERTION_REUSE_MARGIN_S = 60;

/** The UAMI to sign in as, and the federated credential's subject and audience. */
export interface FederatedIdentity {
  /** A customer's UAMI (default) or the publisher's Entra app: named so in errors, with the fix for it. */
  kind?: SignInKind;
  tenantId: string;
  clientId: string;
  subject: string;
  audience: string;
}

export interface FederatedToken {
  token: string;
  expiresOnTimestamp: number;
  /** Decoded claims of the access token (no signature), for the audit log. */
  claims: Record<string, unknown>;
}

export type CredentialFactory = (
  tenantId: string,
  clientId: string,
  getAssertion: () => Promise<string>,
  options: { disableInstanceDiscovery: boolean; [key: string]: unknown },
) => TokenCredential | Promise<TokenCredential>;

export interface FederatedTokenSourceOptions {
  /** Issuer URL: the assertion's `iss`. */
  issuer: string;
  signer: Signer;
  /** Assertion lifetime in seconds (<= 600). */
  assertionLifetimeS?: number;
  /** Clock for the assertion's iat/nbf/exp; default Date.now. */
  now?: () => number;
  /** Entra's authority host and whether MSAL may ask it for instance discovery (lib/core/settings.mts). */
  settings: Pick<Settings, "authorityHost" | "disableInstanceDiscovery"> & Partial<Pick<Settings, "assertionPerIdentity">>;
  /** Replaces ClientAssertionCredential (tests). */
  createCredential?: CredentialFactory;
  /**
   * More options for the credential of one identity (pipeline policies, retry settings), e.g.
   * a propagation retry for a credential created minutes ago. Called once per identity.
   */
  credentialOptions?: (identity: FederatedIdentity) => object | Promise<object>;
}

export interface FederatedTokenSource {
  /** A token of the UAMI for `scope` (default the metering API); cached by MSAL until near expiry. */
  getToken(identity: FederatedIdentity & { scope?: string }): Promise<FederatedToken>;
  /** How many assertions were signed so far (each one is a Key Vault call). */
  readonly assertionsSigned: number;
  /** Drops the identity's credential (and MSAL's token cache with it); a later getToken makes a new one. */
  forget(identity: FederatedIdentity): void;
}

const _defaultFactory: CredentialFactory = async (tenantId, clientId, getAssertion, options) => {
  const { ClientAssertionCredential } = await import("@azure/identity");
  // The authority host comes from AZURE_AUTHORITY_HOST, read by the SDK itself.
  return new ClientAssertionCredential(tenantId, clientId, getAssertion, options);
};

/** Walks an error and its causes; the SDK wraps MSAL's ServerError in its own errors. */
function _chain(error: unknown): any[] {
  const out: any[] = [];
  let e: any = error;
  for (let i = 0; e && i < 8; i++, e = e.cause) out.push(e);
  return out;
}

/** How an error names who signs in: `UAMI <client id> in tenant <t>` or `the publisher app <app id> in tenant <t>`. */
export function signInName(identity: Pick<FederatedIdentity, "kind" | "clientId" | "tenantId">): string {
  return `${identity.kind === "publisher-app" ? "the publisher app" : "UAMI"} ${identity.clientId} in tenant ${identity.tenantId}`;
}

/** Turns what ClientAssertionCredential threw into a FederationError (or the SigningError inside). */
export function toFederationError(error: unknown, identity: FederatedIdentity & { issuer?: string; kid?: string; authorityHost?: string }): Error {
  const chain = _chain(error);
  const signing = chain.find((e) => e instanceof SigningError);
  if (signing) return signing;
  let aadsts: number | undefined;
  let oauthError: string | undefined;
  let description: string | undefined;
  for (const e of chain) {
    const response = e.errorResponse;
    aadsts ??= findAadstsCode({ errorCodes: response?.errorCodes, text: response?.errorDescription })
      ?? (e.errorNo ? Number(e.errorNo) || undefined : undefined)
      ?? findAadstsCode({ text: `${e.errorMessage ?? ""} ${e.message ?? ""}` });
    oauthError ??= response?.error ?? (e.name === "ServerError" ? e.errorCode : undefined);
    description ??= response?.errorDescription ?? e.errorMessage;
  }
  const who = signInName(identity);
  if (aadsts !== undefined) {
    return new FederationError(`Cannot get a token for ${who}: ${explainAadsts(aadsts, {
      ...(identity.kind ? { kind: identity.kind } : {}),
      issuer: identity.issuer,
      subject: identity.subject,
      audience: identity.audience,
      tenantId: identity.tenantId,
      clientId: identity.clientId,
      kid: identity.kid,
    })}`, { aadsts, oauthError, detail: description, cause: error });
  }
  if (chain.some((e) => e.errorCode === "network_error")) {
    const host = identity.authorityHost ?? DEFAULT_AUTHORITY_HOST;
    return new FederationError(`Cannot get a token for ${who}: Entra at ${host} could not be reached or answered with a server error; try again later`, {
      oauthError: "network_error",
      detail: description,
      cause: error,
    });
  }
  const first = String((error as Error)?.message ?? error).split("\n")[0];
  return new FederationError(`Cannot get a token for ${who}: ${first}`, {
    oauthError,
    detail: description ?? String((error as Error)?.message ?? ""),
    cause: error,
  });
}

/**
 * Creates a token source that signs assertions with `signer` and keeps one
 * ClientAssertionCredential per (tenant, UAMI, subject, audience).
 *
 * @example
 * const source = createFederatedTokenSource({ issuer, signer });
 * const { token, claims } = await source.getToken({ tenantId, clientId, subject, audience });
 */
export function createFederatedTokenSource(options: FederatedTokenSourceOptions): FederatedTokenSource {
  const factory = options.createCredential ?? _defaultFactory;
  const credentials = new Map<string, Promise<TokenCredential>>();
  let assertionsSigned = 0;
  // Signed assertions by what they say. An assertion names no tenant and no client: only iss,
  // sub and aud (lib/identity/assertion.mts), and every customer's federated credential trusts
  // the same three. So by default one signed assertion serves every exchange that presents the
  // same sub and aud until shortly before it expires: one Key Vault signature per few minutes,
  // not one per customer (at 4,000 customers that is Key Vault's throttling limit and its
  // latency before every exchange). Microsoft documents no replay rule for federated
  // credential assertions (unconfirmed; reuse is taken as allowed, as GitHub's and Kubernetes'
  // tokens are reused); METERING_ASSERTION_PER_IDENTITY=true keeps one per identity instead.
  // MSAL (msal-node 7) calls getAssertion twice per token request, even on a cache hit, so even
  // per identity an assertion is reused: one signature per identity, not two per getToken.
  const assertions = new Map<string, { assertion: Promise<string>; reuseUntilMs: number }>();
  const assertionFor = (identity: FederatedIdentity): Promise<string> => {
    const key = JSON.stringify(options.settings.assertionPerIdentity
      ? [identity.tenantId, identity.clientId, identity.subject, identity.audience]
      : [identity.subject, identity.audience]);
    const nowMs = (options.now ?? Date.now)();
    const cached = assertions.get(key);
    if (cached && nowMs < cached.reuseUntilMs) return cached.assertion;
    assertionsSigned++;
    const lifetimeS = options.assertionLifetimeS ?? ASSERTION_LIFETIME_S;
    const assertion = buildClientAssertion({
      issuer: options.issuer,
      subject: identity.subject,
      audience: identity.audience,
      now: nowMs,
      lifetimeS,
      signer: options.signer,
    });
    const entry = { assertion, reuseUntilMs: nowMs + Math.max(0, lifetimeS - ASSERTION_REUSE_MARGIN_S) * 1000 };
    assertions.set(key, entry);
    // A failed signature must not be reused.
    assertion.catch(() => { if (assertions.get(key) === entry) assertions.delete(key); });
    return assertion;
  };

  const credentialKey = (identity: FederatedIdentity) => JSON.stringify([identity.tenantId, identity.clientId, identity.subject, identity.audience]);
  function credentialFor(identity: FederatedIdentity): Promise<TokenCredential> {
    const key = credentialKey(identity);
    let credential = credentials.get(key);
    if (!credential) {
      const getAssertion = () => assertionFor(identity);
      credential = (async () => factory(identity.tenantId, identity.clientId, getAssertion, {
        ...(await options.credentialOptions?.(identity)),
        disableInstanceDiscovery: options.settings.disableInstanceDiscovery,
      }))();
      credentials.set(key, credential);
    }
    return credential;
  }

  return {
    get assertionsSigned() {
      return assertionsSigned;
    },
    forget(identity) {
      credentials.delete(credentialKey(identity));
    },
    async getToken(identity) {
      const scope = identity.scope ?? METERING_SCOPE;
      let result;
      try {
        const credential = await credentialFor(identity);
        result = await credential.getToken(scope);
      } catch (error) {
        throw toFederationError(error, { ...identity, issuer: options.issuer, kid: options.signer.kid, authorityHost: options.settings.authorityHost });
      }
      if (!result?.token) {
        throw new FederationError(`Cannot get a token for ${signInName(identity)}: Entra returned no token`, {});
      }
      let claims: Record<string, unknown> = {};
      try {
        claims = decodeJwt(result.token) as Record<string, unknown>;
      } catch {
        // Opaque tokens are allowed; the audit record then has no claims.
      }
      return { token: result.token, expiresOnTimestamp: result.expiresOnTimestamp, claims };
    },
  };
}
