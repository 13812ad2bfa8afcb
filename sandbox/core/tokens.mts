// Access tokens of the sandbox's Entra: one RS256 signing key for all tenants (Entra, too,
// signs every tenant's tokens with common keys), claims shaped as docs/azure-behaviour.md §2.5 says.
// Every emulated resource service verifies bearer tokens here, as a real one would against
// the tenant's jwks_uri.
import { randomUUID } from "node:crypto";
import * as jose from "jose";
import type { SandboxState } from "./state.mts";

export interface IssuedTokenRecord {
  tenantId: string;
  aud: string;
  oid: string;
  appid?: string;
  idtyp: "app" | "user";
  grant: string;
  xms_mirid?: string;
  /** For federated sign-ins: the client assertion's issuer, subject, signing key id and jti (never the assertion). */
  assertion?: { iss: string; sub: string; kid: string; jti?: string };
  iat: number;
  exp: number;
}

export interface IssueOptions {
  tenantId: string;
  audience: string;
  objectId: string;
  /** Client id of an application or managed identity; absent for users. */
  appId?: string;
  idtyp: "app" | "user";
  lifetimeS: number;
  /** How the token was obtained (client_assertion, az, listTokens, imds …), kept in the admin record. */
  grant: string;
  extraClaims?: Record<string, unknown>;
  /** Recorded with the token's claims for the admin API; not put into the token. */
  assertion?: IssuedTokenRecord["assertion"];
}

export type BearerFailure = "missing" | "malformed" | "signature" | "expired" | "not_yet_valid" | "audience" | "issuer";

export class BearerError extends Error {
  code: BearerFailure;
  constructor(code: BearerFailure, message: string) {
    super(message);
    this.name = "BearerError";
    this.code = code;
  }
}

const BACKDATE_S = 300;
const VERIFY_SKEW_S = 300;
/** Tokens whose signature was verified, kept so that a token sent again is not RSA-verified again. */
const MAX_VERIFIED_TOKENS = 20_000;

export class TokenService {
  readonly kid: string;
  private privateKey: CryptoKey;
  private publicKey: CryptoKey;
  readonly publicJwk: jose.JWK;
  private state: SandboxState;
  /** Claims of every token issued, for the admin API (never the token itself). */
  readonly issued: IssuedTokenRecord[] = [];
  /**
   * Tokens this Entra signed and verifyBearer already checked, with their claims. The signing key
   * never changes during a run, so a signature once verified stays verified; the time window is
   * checked again on every use (the sandbox clock moves), as are audience and issuer.
   */
  private verified = new Map<string, jose.JWTPayload>();

  private constructor(state: SandboxState, kid: string, privateKey: CryptoKey, publicKey: CryptoKey, publicJwk: jose.JWK) {
    this.state = state;
    this.kid = kid;
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.publicJwk = publicJwk;
  }

  static async create(state: SandboxState): Promise<TokenService> {
    const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { modulusLength: 2048 });
    const jwk = await jose.exportJWK(publicKey);
    const kid = await jose.calculateJwkThumbprint(jwk);
    return new TokenService(state, kid, privateKey as unknown as CryptoKey, publicKey as unknown as CryptoKey, { ...jwk, kid, use: "sig", alg: "RS256" });
  }

  jwks(): { keys: jose.JWK[] } {
    return { keys: [this.publicJwk] };
  }

  /** Signs claims as they are (an OIDC id_token: v2 issuer, `aud` = the client), with this Entra's key. */
  async signIdToken(claims: jose.JWTPayload): Promise<string> {
    return await new jose.SignJWT(claims).setProtectedHeader({ typ: "JWT", alg: "RS256", kid: this.kid }).sign(this.privateKey);
  }

  /** v1 issuer, as Entra puts it in managed identity and az tokens. */
  static issuerFor(tenantId: string): string {
    return `https://sts.windows.net/${tenantId}/`;
  }

  async issue(o: IssueOptions): Promise<{ token: string; claims: jose.JWTPayload }> {
    const nowS = Math.floor(this.state.now() / 1000);
    const claims: jose.JWTPayload = {
      aud: o.audience,
      iss: TokenService.issuerFor(o.tenantId),
      iat: nowS - BACKDATE_S,
      nbf: nowS - BACKDATE_S,
      exp: nowS + o.lifetimeS,
      idp: TokenService.issuerFor(o.tenantId),
      oid: o.objectId,
      sub: o.objectId,
      tid: o.tenantId,
      uti: randomUUID().replace(/-/g, "").slice(0, 22),
      ver: "1.0",
      idtyp: o.idtyp,
      ...(o.appId ? { appid: o.appId, azp: o.appId, appidacr: "2" } : {}),
      ...o.extraClaims,
    };
    const token = await new jose.SignJWT(claims)
      .setProtectedHeader({ typ: "JWT", alg: "RS256", kid: this.kid, x5t: this.kid })
      .sign(this.privateKey);
    this.issued.push({
      tenantId: o.tenantId,
      aud: o.audience,
      oid: o.objectId,
      appid: o.appId,
      idtyp: o.idtyp,
      grant: o.grant,
      xms_mirid: typeof claims.xms_mirid === "string" ? claims.xms_mirid : undefined,
      ...(o.assertion ? { assertion: o.assertion } : {}),
      iat: claims.iat!,
      exp: claims.exp!,
    });
    return { token, claims };
  }

  /**
   * Verifies an `Authorization` header value for a resource service: signature by this Entra,
   * audience among `audiences` (compared without a trailing slash), time window on the sandbox clock.
   */
  async verifyBearer(header: string | undefined | null, audiences: string[]): Promise<jose.JWTPayload> {
    if (!header) throw new BearerError("missing", "No Authorization header.");
    const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!m) throw new BearerError("malformed", "Authorization header is not a Bearer token.");
    let payload = this.verified.get(m[1]);
    if (payload) {
      // jose's checks of nbf and exp (in its order), on the sandbox clock, for a token verified before.
      const nowS = Math.floor(this.state.now() / 1000);
      if (typeof payload.nbf === "number" && payload.nbf > nowS + VERIFY_SKEW_S) throw new BearerError("not_yet_valid", "The token is not yet valid.");
      if (typeof payload.exp === "number" && payload.exp <= nowS - VERIFY_SKEW_S) throw new BearerError("expired", "The token is expired.");
    } else {
      try {
        ({ payload } = await jose.jwtVerify(m[1], this.publicKey, {
          algorithms: ["RS256"],
          currentDate: new Date(this.state.now()),
          clockTolerance: VERIFY_SKEW_S,
        }));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "ERR_JWT_EXPIRED") throw new BearerError("expired", "The token is expired.");
        if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") throw new BearerError("not_yet_valid", "The token is not yet valid.");
        if (code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") throw new BearerError("signature", "The token signature is invalid.");
        throw new BearerError("malformed", "The token is malformed.");
      }
      if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.clear();
      this.verified.set(m[1], payload);
    }
    const norm = (s: string) => s.replace(/\/+$/, "").toLowerCase();
    const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ""];
    if (!auds.some((a) => audiences.some((want) => norm(want) === norm(String(a))))) {
      throw new BearerError("audience", `The token audience '${auds.join(",")}' is not accepted here.`);
    }
    if (typeof payload.tid !== "string" || payload.iss !== TokenService.issuerFor(payload.tid)) {
      throw new BearerError("issuer", "The token issuer is not an Entra tenant of this sandbox.");
    }
    return payload;
  }
}
