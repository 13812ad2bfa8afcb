// Access tokens for people to read: the scope for a resource, and a token's decoded claims and
// expiry. A token itself is printed only by the scripts' --raw; everything here is claims.
import { decodeJwt } from "jose";
import { UsageError } from "../core/errors.mts";
import { METERING_RESOURCE_ID } from "./federation.mts";

/**
 * Scopes of the resources this tool talks to (docs/azure-behaviour.md §3.3). Service Bus's is the literal
 * `https://servicebus.azure.net//.default` the SDKs use (resource `https://servicebus.azure.net/`).
 */
export const WELL_KNOWN_SCOPES: Readonly<Record<string, string>> = {
  metering: `${METERING_RESOURCE_ID}/.default`,
  arm: "https://management.azure.com/.default",
  keyvault: "https://vault.azure.net/.default",
  servicebus: "https://servicebus.azure.net//.default",
  storage: "https://storage.azure.com/.default",
  graph: "https://graph.microsoft.com/.default",
};

/**
 * The client-credentials scope for a resource: a `…/.default` scope as given, a short name of
 * WELL_KNOWN_SCOPES, or a resource URI / app id with `/.default` appended.
 *
 * @example scopeForResource("https://vault.azure.net") // "https://vault.azure.net/.default"
 */
export function scopeForResource(resource: string): string {
  const r = resource.trim();
  if (r === "" || /\s/.test(r)) throw new UsageError(`Cannot use resource ${JSON.stringify(resource)}: expected a resource URI, an app id, a …/.default scope or one of ${Object.keys(WELL_KNOWN_SCOPES).join(", ")}`);
  const known = WELL_KNOWN_SCOPES[r.toLowerCase()];
  if (known) return known;
  if (r.endsWith("/.default")) return r;
  if (/^https?:\/\/(servicebus\.azure\.net|[^/]+\.servicebus\.windows\.net)\/?$/i.test(r)) return WELL_KNOWN_SCOPES.servicebus;
  const isUri = /^[a-z][a-z0-9+.-]*:\/\//i.test(r) || r.startsWith("api://");
  const isGuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(r);
  if (!isUri && !isGuid) {
    throw new UsageError(`Cannot use resource ${JSON.stringify(resource)}: expected a resource URI (https://…), an app id (GUID), a …/.default scope or one of ${Object.keys(WELL_KNOWN_SCOPES).join(", ")}`);
  }
  return `${r.replace(/\/$/, "")}/.default`;
}

/** What a person (and the audit log) may see of a token. */
export interface TokenSummary {
  claims: Record<string, unknown>;
  /** ISO time the token expires. */
  expiresOn: string;
  /** Seconds until it expires (negative when expired). */
  expiresInS: number;
}

/** Decodes a token's claims (no verification: the issuer did that) and its expiry. */
export function summarizeToken(token: string, options: { now?: number; expiresOnTimestamp?: number } = {}): TokenSummary {
  let claims: Record<string, unknown> = {};
  try {
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch {
    // An opaque token: only the expiry the issuer reported is known.
  }
  const expMs = typeof claims.exp === "number" ? claims.exp * 1000 : options.expiresOnTimestamp ?? 0;
  const now = options.now ?? Date.now();
  return { claims, expiresOn: new Date(expMs).toISOString(), expiresInS: Math.round((expMs - now) / 1000) };
}

const SHOWN_CLAIMS = ["aud", "iss", "tid", "oid", "appid", "xms_mirid", "idtyp", "iat", "nbf", "exp"];

/** A few lines for a terminal: the claims that say whose token it is and for what, then the expiry. */
export function formatTokenSummary(summary: TokenSummary): string {
  const lines = SHOWN_CLAIMS.filter((k) => summary.claims[k] !== undefined).map((k) => {
    const v = summary.claims[k];
    const when = typeof v === "number" && ["iat", "nbf", "exp"].includes(k) ? ` (${new Date(v * 1000).toISOString()})` : "";
    return `${k.padEnd(10)}${typeof v === "string" ? v : JSON.stringify(v)}${when}`;
  });
  const minutes = Math.floor(summary.expiresInS / 60);
  lines.push(`expires   ${summary.expiresOn} (${summary.expiresInS >= 0 ? `in ${minutes} min` : "expired"})`);
  return lines.join("\n");
}
