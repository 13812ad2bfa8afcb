// A tenant named by a verified domain (the bash tool's config kept `"aadTenantId": "contoso.com"`)
// resolved to its id: Entra serves a tenant's OIDC metadata under any of its verified domains, and
// the issuer in it carries the tenant id.
import { MeteringError } from "../core/errors.mts";
import { isGuid } from "../core/validate.mts";

const METADATA_TIMEOUT_MS = 10_000;
const GUID_IN_URL_RE = /\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/|$)/i;

/**
 * The tenant id (GUID) of a tenant named by its id or one of its verified domains. A GUID is
 * returned as is; a domain is looked up with `GET {authorityHost}/{domain}/v2.0/.well-known/openid-configuration`,
 * whose `issuer` is `{authority}/{tenantId}/v2.0`. Throws MeteringError naming the domain when
 * Entra does not know it (AADSTS90002) or cannot be reached.
 *
 * @example
 * await resolveTenantId({ tenant: "contoso.com", authorityHost: "https://login.microsoftonline.com" })
 * // "72f988bf-86f1-41af-91ab-2d7cd011db47"
 */
export async function resolveTenantId(options: {
  tenant: string;
  authorityHost: string;
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
}): Promise<string> {
  if (isGuid(options.tenant)) return options.tenant.toLowerCase();
  const url = `${options.authorityHost.replace(/\/+$/, "")}/${encodeURIComponent(options.tenant)}/v2.0/.well-known/openid-configuration`;
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) });
  } catch (cause) {
    throw new MeteringError(`Cannot resolve tenant ${JSON.stringify(options.tenant)}: GET ${url} failed (${(cause as Error).message})`, { cause });
  }
  const body = await res.json().catch(() => undefined) as { issuer?: unknown; token_endpoint?: unknown; error_description?: unknown } | undefined;
  if (!res.ok) {
    const why = typeof body?.error_description === "string" ? body.error_description.split(/\r?\n/)[0].trim() : `HTTP ${res.status}`;
    throw new MeteringError(`Cannot resolve tenant ${JSON.stringify(options.tenant)}: Entra does not know it as a verified domain (${why}); write the tenant id (GUID) in publisher.aadTenantId, or run 0-add-defaults`);
  }
  for (const value of [body?.issuer, body?.token_endpoint]) {
    const m = typeof value === "string" ? GUID_IN_URL_RE.exec(value) : null;
    if (m) return m[1].toLowerCase();
  }
  throw new MeteringError(`Cannot resolve tenant ${JSON.stringify(options.tenant)}: ${url} names no tenant id in its issuer`);
}
