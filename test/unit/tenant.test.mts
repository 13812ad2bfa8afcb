import { suite } from "uvu";
import * as assert from "uvu/assert";
import { resolveTenantId } from "../../lib/identity/tenant.mts";

const AUTHORITY = "https://login.microsoftonline.com";
const TENANT = "942023a6-efbe-4d97-a72d-532ef7337595";

const T = suite("resolveTenantId()");

T("a GUID is its own id, without a request", async () => {
  const fetch = () => Promise.reject(new Error("no request expected"));
  assert.is(await resolveTenantId({ tenant: TENANT.toUpperCase(), authorityHost: AUTHORITY, fetch }), TENANT);
});

T("a domain is looked up in the tenant's v2.0 OIDC metadata; the issuer carries the id", async () => {
  const calls: string[] = [];
  const fetch = async (url: string) => {
    calls.push(url);
    return Response.json({ issuer: `${AUTHORITY}/${TENANT}/v2.0`, token_endpoint: `${AUTHORITY}/${TENANT}/oauth2/v2.0/token` });
  };
  assert.is(await resolveTenantId({ tenant: "geuer-pollmann.de", authorityHost: `${AUTHORITY}/`, fetch }), TENANT);
  assert.equal(calls, [`${AUTHORITY}/geuer-pollmann.de/v2.0/.well-known/openid-configuration`]);
});

T("a domain Entra does not know is an error naming it and Entra's reason", async () => {
  const fetch = async () => Response.json({ error: "invalid_tenant", error_description: "AADSTS90002: Tenant 'nope.example' not found.\r\nTrace ID: x" }, { status: 400 });
  try {
    await resolveTenantId({ tenant: "nope.example", authorityHost: AUTHORITY, fetch });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /^Cannot resolve tenant "nope\.example": Entra does not know it as a verified domain \(AADSTS90002: Tenant 'nope\.example' not found\.\); write the tenant id/);
  }
});

T("an unreachable Entra is an error too", async () => {
  const fetch = () => Promise.reject(new TypeError("fetch failed"));
  try {
    await resolveTenantId({ tenant: "contoso.com", authorityHost: AUTHORITY, fetch });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /^Cannot resolve tenant "contoso\.com": GET .* failed \(fetch failed\)$/);
  }
});

T.run();
