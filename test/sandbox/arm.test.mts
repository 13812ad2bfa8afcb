// The emulated Azure Resource Manager: authentication and its errors, api-versions, unknown
// routes, subscriptions, resource groups, managed applications (GET, listTokens,
// refreshPermissions), user-assigned identities and federated credentials through Microsoft's
// generated client @azure/arm-msi, RBAC, role assignments, deployment request errors, Resource Graph,
// and storage containers that Azurite really serves anonymously.
import { randomUUID } from "node:crypto";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import * as jose from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROLE } from "../../sandbox/core/state.mts";
import { AZURITE_ACCOUNT } from "../../sandbox/main.mts";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox();
const ARM = sb.endpoints.arm;
const isv = sb.world.isv;
const [fabrikam, tailwind, woodgrove] = sb.world.customers;
const ARM_AUDIENCE = "https://management.azure.com/";

// ---------------------------------------------------------------- helpers

interface Who {
  tenantId: string;
  objectId: string;
}
const ISV_USER: Who = { tenantId: isv.tenantId, objectId: isv.userObjectId };
/** A principal of the ISV tenant that holds no role anywhere. */
const NOBODY: Who = { tenantId: isv.tenantId, objectId: randomUUID() };
/** A principal of fabrikam's tenant that holds no role anywhere. */
const CUSTOMER_NOBODY: Who = { tenantId: fabrikam.tenantId, objectId: randomUUID() };

async function tokenFor(who: Who, o: { audience?: string; lifetimeS?: number } = {}): Promise<string> {
  return (await sb.tokens.issue({
    tenantId: who.tenantId, audience: o.audience ?? ARM_AUDIENCE, objectId: who.objectId, idtyp: "user",
    lifetimeS: o.lifetimeS ?? 3600, grant: "test",
  })).token;
}

/** A TokenCredential for Azure SDK clients. */
function credential(who: Who) {
  return {
    getToken: async () => {
      const { token, claims } = await sb.tokens.issue({ tenantId: who.tenantId, audience: ARM_AUDIENCE, objectId: who.objectId, idtyp: "user", lifetimeS: 3600, grant: "test" });
      return { token, expiresOnTimestamp: Number(claims.exp) * 1000 };
    },
  };
}

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function arm(method: string, path: string, o: { who?: Who | null; token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const token = o.token ?? (o.who === null ? undefined : await tokenFor(o.who ?? ISV_USER));
  if (token) headers.authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(ARM + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

function assertError(a: Answer, status: number, code: string, message?: RegExp | string): void {
  assert.is(a.status, status, `HTTP ${a.status}: ${JSON.stringify(a.json)}`);
  assert.is(a.json?.error?.code, code, JSON.stringify(a.json));
  if (typeof message === "string") assert.is(a.json.error.message, message);
  else if (message) assert.match(a.json.error.message, message);
}

const isvSub = `/subscriptions/${isv.subscriptionId}`;
const rgPath = (sub: string, rg: string) => `/subscriptions/${sub}/resourceGroups/${rg}`;
const mrgPath = (c: typeof fabrikam) => rgPath(c.subscriptionId, c.managedResourceGroup);
const RG_API = "api-version=2021-04-01";
const MSI_API = "api-version=2023-01-31";

async function createGroup(name: string, sub = isv.subscriptionId): Promise<string> {
  const a = await arm("PUT", `${rgPath(sub, name)}?${RG_API}`, { body: { location: "westeurope" } });
  assert.ok(a.status === 201 || a.status === 200, JSON.stringify(a.json));
  return a.json.id;
}

async function grant(scope: string, principalId: string, roleId: string): Promise<string> {
  const name = randomUUID();
  const a = await arm("PUT", `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`, {
    body: { properties: { roleDefinitionId: `${isvSub}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`, principalId, principalType: "User" } },
  });
  assert.is(a.status, 201, JSON.stringify(a.json));
  return name;
}

// deno-lint-ignore no-explicit-any
async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.unreachable("should have been rejected");
}

// ---------------------------------------------------------------- authentication

const Auth = suite("ARM authentication");

Auth("no Authorization header: 401 AuthenticationFailed with a challenge naming the subscription's tenant", async () => {
  const a = await arm("GET", `/subscriptions/${fabrikam.subscriptionId}?api-version=2022-12-01`, { who: null });
  assertError(a, 401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.");
  const challenge = a.headers.get("www-authenticate") ?? "";
  assert.ok(challenge.startsWith(`Bearer authorization_uri="${sb.endpoints.entra}/${fabrikam.tenantId}"`), challenge);
  assert.match(challenge, /error="invalid_token"/);
});

Auth("a token for another audience: 401 InvalidAuthenticationToken naming it", async () => {
  const token = await tokenFor(ISV_USER, { audience: "https://vault.azure.net" });
  const a = await arm("GET", `/subscriptions?api-version=2022-12-01`, { token });
  assertError(a, 401, "InvalidAuthenticationToken", /wrong audience or resource 'https:\/\/vault\.azure\.net'/);
});

Auth("an expired token: 401 ExpiredAuthenticationToken", async () => {
  const token = await tokenFor(ISV_USER, { lifetimeS: -3600 });
  assertError(await arm("GET", `/subscriptions?api-version=2022-12-01`, { token }), 401, "ExpiredAuthenticationToken", /expiry UTC time .* is earlier than current UTC time/);
});

Auth("a token accepted before expires when the sandbox clock passes its exp (the time window is checked on every use)", async () => {
  const token = await tokenFor(ISV_USER, { lifetimeS: 600 });
  assert.is((await arm("GET", `/subscriptions?api-version=2022-12-01`, { token })).status, 200);
  // exp + the 300 s of skew ARM allows, passed.
  sb.state.clockOffsetMs = 901_000;
  try {
    assertError(await arm("GET", `/subscriptions?api-version=2022-12-01`, { token }), 401, "ExpiredAuthenticationToken", /is earlier than current UTC time/);
  } finally {
    sb.state.clockOffsetMs = 0;
  }
  assert.is((await arm("GET", `/subscriptions?api-version=2022-12-01`, { token })).status, 200);
});

Auth("a token not signed by the sandbox's Entra: 401 InvalidAuthenticationToken", async () => {
  const { privateKey } = await jose.generateKeyPair("RS256");
  const forged = await new jose.SignJWT({ aud: ARM_AUDIENCE, tid: isv.tenantId, oid: isv.userObjectId, iss: `https://sts.windows.net/${isv.tenantId}/` })
    .setProtectedHeader({ alg: "RS256", typ: "JWT" }).setIssuedAt().setExpirationTime("1h").sign(privateKey);
  assertError(await arm("GET", `/subscriptions?api-version=2022-12-01`, { token: forged }), 401, "InvalidAuthenticationToken", "The access token is invalid.");
});

Auth("a customer-tenant token for the ISV subscription: 401 InvalidAuthenticationTokenTenant", async () => {
  const a = await arm("GET", `${isvSub}/resourcegroups?${RG_API}`, { who: CUSTOMER_NOBODY });
  assertError(a, 401, "InvalidAuthenticationTokenTenant", new RegExp(`must match the tenant 'https://sts.windows.net/${isv.tenantId}/'`));
});

Auth("responses carry x-ms-request-id and echo x-ms-correlation-request-id", async () => {
  const a = await arm("GET", `/subscriptions?api-version=2022-12-01`, { headers: { "x-ms-correlation-request-id": "corr-1234" } });
  assert.is(a.status, 200);
  assert.match(a.headers.get("x-ms-request-id") ?? "", /^[0-9a-f-]{36}$/);
  assert.is(a.headers.get("x-ms-correlation-request-id"), "corr-1234");
});

Auth.run();

// ---------------------------------------------------------------- api-versions and unknown routes

const Routes = suite("ARM api-versions and unknown routes");

Routes("a request without api-version: 400 MissingApiVersionParameter", async () => {
  assertError(await arm("GET", `${isvSub}/resourcegroups`), 400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
});

Routes("an api-version ARM's own types lack: 400 InvalidApiVersionParameter listing the supported ones", async () => {
  assertError(await arm("GET", `${isvSub}/resourcegroups?api-version=2099-01-01`), 400, "InvalidApiVersionParameter", /^The api-version '2099-01-01' is invalid\. The supported versions are '2025-04-01,.*2021-04-01/);
});

Routes("a provider type without that api-version: 400 InvalidResourceType (GET) and NoRegisteredProviderFound (PUT with a location)", async () => {
  const path = `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x`;
  assertError(await arm("GET", `${path}?api-version=2099-01-01`), 400, "InvalidResourceType",
    /^The resource type 'userAssignedIdentities' could not be found in the namespace 'Microsoft\.ManagedIdentity' for api version '2099-01-01'\. The supported api-versions are '.*2023-01-31/);
  assertError(await arm("PUT", `${path}?api-version=2099-01-01`, { body: { location: "westeurope" } }), 400, "NoRegisteredProviderFound",
    /^No registered resource provider found for location 'westeurope' and API version '2099-01-01' for type 'userAssignedIdentities'/);
});

Routes("federated credentials do not exist at the 2018-11-30 identity api-version", async () => {
  const a = await arm("GET", `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x/federatedIdentityCredentials?api-version=2018-11-30`);
  assertError(a, 400, "InvalidResourceType", /'userAssignedIdentities\/federatedIdentityCredentials'/);
});

Routes("an unknown namespace: 400 InvalidResourceNamespace; an unknown type: 400 InvalidResourceType", async () => {
  assertError(await arm("GET", `${isvSub}/providers/Microsoft.Nope/things?api-version=2020-01-01`), 400, "InvalidResourceNamespace", "The resource namespace 'Microsoft.Nope' is invalid.");
  assertError(await arm("GET", `${isvSub}/resourceGroups/x/providers/Microsoft.KeyVault/safes/s?api-version=2023-07-01`), 400, "InvalidResourceType",
    "The resource type 'safes' could not be found in the namespace 'Microsoft.KeyVault' for api version '2023-07-01'.");
  assertError(await arm("GET", `${isvSub}/widgets?api-version=2020-01-01`), 400, "InvalidResourceType", /'widgets' could not be found in the namespace 'Microsoft\.Resources'/);
});

Routes("an unknown subscription: 404 SubscriptionNotFound; an unknown resource group: 404 ResourceGroupNotFound", async () => {
  const sub = randomUUID();
  assertError(await arm("GET", `/subscriptions/${sub}/resourcegroups?${RG_API}`), 404, "SubscriptionNotFound", `The subscription '${sub}' could not be found.`);
  assertError(await arm("GET", `${rgPath(isv.subscriptionId, "no-such-group")}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x?${MSI_API}`),
    404, "ResourceGroupNotFound", "Resource group 'no-such-group' could not be found.");
});

Routes("a method a resource type does not support: 405; a path ARM does not have: 404; never a 200", async () => {
  await createGroup("routes-rg");
  const fic = `${rgPath(isv.subscriptionId, "routes-rg")}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u/federatedIdentityCredentials/f?${MSI_API}`;
  assertError(await arm("PATCH", fic, { body: {} }), 405, "MethodNotAllowed", "The requested resource does not support http method 'PATCH'.");
  assertError(await arm("GET", `/no/such/thing?api-version=2020-01-01`), 404, "NotFound");
});

Routes("an injected fault answers in ARM's shape with Retry-After and request ids, then ARM behaves again", async () => {
  await admin(sb, "POST", "/faults", { service: "arm", path: "/subscriptions", kind: "status", status: 429, retryAfter: 3 });
  const a = await arm("GET", `/subscriptions?api-version=2022-12-01`);
  assertError(a, 429, "TooManyRequests");
  assert.is(a.headers.get("retry-after"), "3");
  assert.ok(a.headers.get("x-ms-request-id"));
  assert.is((await arm("GET", `/subscriptions?api-version=2022-12-01`)).status, 200);
});

Routes("paths match case-insensitively, as in ARM", async () => {
  const a = await arm("GET", `${fabrikam.managedAppId.toLowerCase()}?api-version=2019-07-01`);
  assert.is(a.status, 200, JSON.stringify(a.json));
  assert.is(a.json.id, fabrikam.managedAppId);
});

Routes("a '//subscriptions/…' path (a base URL ending in '/' plus an id) is that path, not a host", async () => {
  const a = await arm("GET", `/${fabrikam.managedAppId}?api-version=2019-07-01`);
  assert.is(a.status, 200, JSON.stringify(a.json));
  assert.is(a.json.id, fabrikam.managedAppId);
  const rg = await arm("GET", `//${isvSub.slice(1)}//resourcegroups?${RG_API}`);
  assert.is(rg.status, 200, JSON.stringify(rg.json));
  assert.ok(Array.isArray(rg.json.value));
});

Routes.run();

// ---------------------------------------------------------------- subscriptions and resource groups

const Groups = suite("subscriptions, tenants and resource groups");

Groups("GET /subscriptions: the ISV user sees its own and, through the apps' authorizations, the customers'", async () => {
  const a = await arm("GET", `/subscriptions?api-version=2022-12-01`);
  assert.is(a.status, 200);
  const ids = a.json.value.map((s: { subscriptionId: string }) => s.subscriptionId).sort();
  assert.equal(ids, [isv.subscriptionId, fabrikam.subscriptionId, tailwind.subscriptionId, woodgrove.subscriptionId].sort());
  const own = a.json.value.find((s: { subscriptionId: string }) => s.subscriptionId === isv.subscriptionId);
  assert.is(own.tenantId, isv.tenantId);
  assert.is(own.state, "Enabled");
  const none = await arm("GET", `/subscriptions?api-version=2022-12-01`, { who: NOBODY });
  assert.equal(none.json.value, []);
});

Groups("GET /subscriptions/{id} and GET /tenants", async () => {
  const s = await arm("GET", `/subscriptions/${fabrikam.subscriptionId}?api-version=2022-12-01`);
  assert.is(s.status, 200);
  assert.is(s.json.tenantId, fabrikam.tenantId);
  const t = await arm("GET", `/tenants?api-version=2022-12-01`);
  const home = t.json.value.find((x: { tenantId: string }) => x.tenantId === isv.tenantId);
  assert.is(home.tenantCategory, "Home");
  assert.ok(t.json.value.some((x: { tenantId: string }) => x.tenantId === fabrikam.tenantId));
  assertError(await arm("GET", `${isvSub}?api-version=2022-12-01`, { who: NOBODY }), 403, "AuthorizationFailed");
});

Groups("PUT creates (201) then updates (200); location is required and cannot change", async () => {
  const path = `${rgPath(isv.subscriptionId, "Groups-RG")}?${RG_API}`;
  assertError(await arm("PUT", path, { body: {} }), 400, "LocationRequired");
  assertError(await arm("PUT", path, { body: { location: "atlantis" } }), 400, "LocationNotAvailableForResourceGroup", /^The provided location 'atlantis' is not available for resource group\./);
  const created = await arm("PUT", path, { body: { location: "West Europe", tags: { a: "1" } } });
  assert.is(created.status, 201);
  assert.equal(created.json, { id: `${isvSub}/resourceGroups/Groups-RG`, name: "Groups-RG", type: "Microsoft.Resources/resourceGroups", location: "westeurope", tags: { a: "1" }, properties: { provisioningState: "Succeeded" } });
  assert.is((await arm("PUT", path, { body: { location: "westeurope" } })).status, 200);
  assertError(await arm("PUT", path, { body: { location: "eastus" } }), 409, "InvalidResourceGroupLocation");
  assertError(await arm("PUT", path, { body: { location: "westeurope", tags: ["not", "an", "object"] } }), 400, "InvalidRequestContent");
  assertError(await arm("PUT", path, { body: "[]" }), 400, "InvalidRequestContent");
  const got = await arm("GET", `${rgPath(isv.subscriptionId, "groups-rg")}?${RG_API}`);
  assert.is(got.json.name, "Groups-RG");
});

Groups("HEAD answers 204 for an existing group and 404 otherwise; the list holds the group", async () => {
  assert.is((await arm("HEAD", `${rgPath(isv.subscriptionId, "Groups-RG")}?${RG_API}`)).status, 204);
  assert.is((await arm("HEAD", `${rgPath(isv.subscriptionId, "absent-rg")}?${RG_API}`)).status, 404);
  const list = await arm("GET", `${isvSub}/resourcegroups?${RG_API}`);
  assert.ok(list.json.value.some((g: { name: string }) => g.name === "Groups-RG"));
});

Groups("DELETE answers 202 with an operation URL, removes the group with its contents", async () => {
  await createGroup("doomed-rg");
  const uami = `${rgPath(isv.subscriptionId, "doomed-rg")}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/doomed-id`;
  assert.is((await arm("PUT", `${uami}?${MSI_API}`, { body: { location: "westeurope" } })).status, 201);
  const del = await arm("DELETE", `${rgPath(isv.subscriptionId, "doomed-rg")}?${RG_API}`);
  assert.is(del.status, 202);
  const location = del.headers.get("location")!;
  assert.ok(location.startsWith(`${ARM}${isvSub}/operationresults/`), location);
  const op = await fetch(location, { headers: { authorization: `Bearer ${await tokenFor(ISV_USER)}` } });
  assert.is(op.status, 200);
  assert.is(sb.state.getResource(uami), undefined);
  assertError(await arm("GET", `${rgPath(isv.subscriptionId, "doomed-rg")}?${RG_API}`), 404, "ResourceGroupNotFound");
});

Groups("a managed resource group names its application in managedBy and cannot be deleted on its own", async () => {
  const mrg = await arm("GET", `${mrgPath(fabrikam)}?api-version=2019-10-01`);
  assert.is(mrg.status, 200);
  assert.is(mrg.json.managedBy, fabrikam.managedAppId);
  assertError(await arm("DELETE", `${mrgPath(fabrikam)}?${RG_API}`), 409, "ManagedResourceGroupDeletionNotAllowed", new RegExp(fabrikam.managedAppId));
  assert.ok(sb.state.getResource(mrgPath(fabrikam)));
});

Groups("a principal without rights gets 403 AuthorizationFailed in ARM's words", async () => {
  const a = await arm("PUT", `${rgPath(isv.subscriptionId, "nobody-rg")}?${RG_API}`, { who: NOBODY, body: { location: "westeurope" } });
  assertError(a, 403, "AuthorizationFailed",
    `The client '${NOBODY.objectId}' with object id '${NOBODY.objectId}' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '${isvSub}/resourceGroups/nobody-rg' or the scope is invalid. If access was recently granted, please refresh your credentials.`);
});

Groups.run();

// ---------------------------------------------------------------- managed applications

const Apps = suite("Microsoft.Solutions/applications");

Apps("GET answers the shape of docs/azure-behaviour.md §5.1 at every supported api-version", async () => {
  for (const v of ["2018-09-01-preview", "2019-07-01", "2021-07-01", "2023-12-01-preview"]) {
    const a = await arm("GET", `${fabrikam.managedAppId}?api-version=${v}`);
    assert.is(a.status, 200, v);
    assert.is(a.json.id, fabrikam.managedAppId);
    assert.is(a.json.type, "Microsoft.Solutions/applications");
    assert.is(a.json.kind, "MarketPlace");
    assert.is(a.json.plan.name, fabrikam.planId);
    assert.is(a.json.properties.managedResourceGroupId, `/subscriptions/${fabrikam.subscriptionId}/resourceGroups/${fabrikam.managedResourceGroup}`);
    assert.is(a.json.properties.billingDetails.resourceUsageId, fabrikam.resourceUsageId);
    assert.is(a.json.properties.provisioningState, "Succeeded");
    assert.is(a.json.identity.type, "SystemAssigned");
    assert.equal(a.json.properties.authorizations, [{ principalId: isv.userObjectId, roleDefinitionId: ROLE.Owner }]);
    assert.is(a.json.tenantId, undefined, "no sandbox bookkeeping on the wire");
  }
});

Apps("the application resolves from both id forms: its own id and the MRG's managedBy", async () => {
  const mrg = await arm("GET", `${mrgPath(fabrikam)}?${RG_API}`);
  const viaManagedBy = await arm("GET", `${mrg.json.managedBy}?api-version=2019-07-01`);
  const lower = await arm("GET", `${fabrikam.managedAppId.replace("/resourceGroups/", "/resourcegroups/").toLowerCase()}?api-version=2019-07-01`);
  assert.is(viaManagedBy.status, 200);
  assert.is(lower.status, 200);
  assert.equal(viaManagedBy.json, lower.json);
});

Apps("lists by resource group and by subscription; other principals are refused", async () => {
  const byRg = await arm("GET", `${rgPath(fabrikam.subscriptionId, fabrikam.resourceGroup)}/providers/Microsoft.Solutions/applications?api-version=2019-07-01`);
  assert.equal(byRg.json.value.map((x: { id: string }) => x.id), [fabrikam.managedAppId]);
  const bySub = await arm("GET", `/subscriptions/${tailwind.subscriptionId}/providers/Microsoft.Solutions/applications?api-version=2019-07-01`);
  assert.equal(bySub.json.value.map((x: { id: string }) => x.id), [tailwind.managedAppId]);
  assertError(await arm("GET", `${fabrikam.managedAppId}?api-version=2019-07-01`, { who: CUSTOMER_NOBODY }), 403, "AuthorizationFailed", /Microsoft\.Solutions\/applications\/read/);
});

Apps("listTokens without identities: a token of the app's system identity, xms_mirid = app id, snake_case and camelCase fields", async () => {
  const a = await arm("POST", `${fabrikam.managedAppId}/listTokens?api-version=2019-07-01`, { body: { authorizationAudience: "20e940b3-4c77-4b0b-9a53-9e16a1b010a7" } });
  assert.is(a.status, 200, JSON.stringify(a.json));
  assert.is(a.json.value.length, 1);
  const t = a.json.value[0];
  assert.equal(Object.keys(t).sort(), [
    "accessToken", "access_token", "authorizationAudience", "expiresIn", "expiresOn", "expires_in", "expires_on",
    "notBefore", "not_before", "resourceId", "tokenType", "token_type",
  ]);
  assert.is(t.token_type, "Bearer");
  assert.is(t.tokenType, "Bearer");
  assert.is(t.accessToken, t.access_token);
  assert.is(t.expiresOn, t.expires_on);
  assert.is(t.expiresIn, t.expires_in);
  assert.is(t.notBefore, t.not_before);
  assert.is(t.resourceId, fabrikam.managedAppId);
  const { payload } = await jose.jwtVerify(t.access_token, jose.createLocalJWKSet(sb.tokens.jwks()), { currentDate: new Date(sb.state.now()) });
  const app = sb.state.getResource(fabrikam.managedAppId)!;
  assert.is(payload.oid, (app.identity as { principalId: string }).principalId);
  assert.is(payload.tid, fabrikam.tenantId);
  assert.is(payload.aud, "20e940b3-4c77-4b0b-9a53-9e16a1b010a7");
  assert.is(payload.xms_mirid, fabrikam.managedAppId);
  assert.is(t.expires_on, String(payload.exp));
  assert.ok(Number(t.expires_in) > 86000);
});

Apps("listTokens for a user-assigned identity of the MRG; default audience is ARM; unknown identities are refused", async () => {
  const uamiId = `${mrgPath(tailwind)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/lt-uami`;
  const created = await arm("PUT", `${uamiId}?${MSI_API}`, { body: { location: "westeurope" } });
  assert.is(created.status, 201);
  const a = await arm("POST", `${tailwind.managedAppId}/listTokens?api-version=2021-07-01`, { body: { userAssignedIdentities: [uamiId] } });
  assert.is(a.status, 200, JSON.stringify(a.json));
  const t = a.json.value[0];
  assert.is(t.resourceId, uamiId);
  assert.is(t.authorizationAudience, ARM_AUDIENCE);
  const claims = jose.decodeJwt(t.access_token);
  assert.is(claims.oid, created.json.properties.principalId);
  assert.is(claims.appid, created.json.properties.clientId);
  assert.is(claims.xms_mirid, tailwind.managedAppId);
  const foreign = `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/not-tailwinds`;
  assertError(await arm("POST", `${tailwind.managedAppId}/listTokens?api-version=2021-07-01`, { body: { userAssignedIdentities: [foreign] } }), 400, "BadRequest", /not associated/);
});

Apps("listTokens needs the caller's authorization on the app", async () => {
  assertError(await arm("POST", `${fabrikam.managedAppId}/listTokens?api-version=2019-07-01`, { who: CUSTOMER_NOBODY, body: {} }), 403, "AuthorizationFailed", /listTokens\/action/);
});

Apps("refreshPermissions: 202 with an Azure-AsyncOperation URL that reports Succeeded", async () => {
  const a = await arm("POST", `${woodgrove.managedAppId}/refreshPermissions?api-version=2019-07-01`);
  assert.is(a.status, 202);
  const url = a.headers.get("azure-asyncoperation")!;
  assert.ok(url.startsWith(ARM), url);
  const op = await fetch(url, { headers: { authorization: `Bearer ${await tokenFor(ISV_USER)}` } });
  assert.is(op.status, 200);
  assert.is((await op.json()).status, "Succeeded");
  assertError(await arm("POST", `${woodgrove.managedAppId}/refreshPermissions?api-version=2018-09-01-preview`), 400, "InvalidResourceType");
});

Apps.run();

// ---------------------------------------------------------------- identities and federated credentials (@azure/arm-msi)

const Msi = suite("@azure/arm-msi: user-assigned identities and federated credentials");
const msiFor = (c: typeof fabrikam, who: Who = ISV_USER) =>
  new ManagedServiceIdentityClient(credential(who), c.subscriptionId, { endpoint: ARM, credentialScopes: [`${ARM_AUDIENCE}.default`] });
const msi = msiFor(fabrikam);
const MRG = fabrikam.managedResourceGroup;
const ISSUER = "https://idp.example.com/public";
const fic = (subject: string, extra: Record<string, unknown> = {}) => ({ issuer: ISSUER, subject, audiences: ["api://AzureADTokenExchange"], ...extra });

Msi("createOrUpdate makes an identity in the customer's tenant; a re-PUT keeps principalId and clientId", async () => {
  const first = await msi.userAssignedIdentities.createOrUpdate(MRG, "metering-submission-uami", { location: "westeurope", tags: { purpose: "metering" } });
  assert.is(first.id, `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami`);
  assert.is(first.tenantId, fabrikam.tenantId);
  assert.match(first.principalId!, /^[0-9a-f-]{36}$/);
  assert.match(first.clientId!, /^[0-9a-f-]{36}$/);
  assert.is.not(first.principalId, first.clientId);
  const again = await msi.userAssignedIdentities.createOrUpdate(MRG, "metering-submission-uami", { location: "westeurope" });
  assert.is(again.principalId, first.principalId);
  assert.is(again.clientId, first.clientId);
  const got = await msi.userAssignedIdentities.get(MRG, "metering-submission-uami");
  assert.is(got.clientId, first.clientId);
  assert.is(sb.state.findIdentityByClientId(first.clientId!)?.id, first.id);
});

Msi("the identity lists by resource group and by subscription", async () => {
  const byRg = [];
  for await (const x of msi.userAssignedIdentities.listByResourceGroup(MRG)) byRg.push(x.name);
  assert.ok(byRg.includes("metering-submission-uami"));
  const bySub = [];
  for await (const x of msi.userAssignedIdentities.listBySubscription()) bySub.push(x.name);
  assert.ok(bySub.includes("metering-submission-uami"));
});

Msi("an identity without federated credentials lists none (200, empty page)", async () => {
  await msi.userAssignedIdentities.createOrUpdate(MRG, "no-credentials-yet", { location: "westeurope" });
  const names = [];
  for await (const x of msi.federatedIdentityCredentials.list(MRG, "no-credentials-yet")) names.push(x.name);
  assert.equal(names, []);
  await msi.userAssignedIdentities.delete(MRG, "no-credentials-yet");
});

Msi("a federated credential is created (201 body parsed), read, listed and carries createdAtMs for Entra", async () => {
  const before = sb.state.now();
  const created = await msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "fed", fic("metering-submission-via-uami"));
  assert.is(created.name, "fed");
  assert.is(created.issuer, ISSUER);
  assert.equal(created.audiences, ["api://AzureADTokenExchange"]);
  const got = await msi.federatedIdentityCredentials.get(MRG, "metering-submission-uami", "fed");
  assert.is(got.subject, "metering-submission-via-uami");
  const names = [];
  for await (const x of msi.federatedIdentityCredentials.list(MRG, "metering-submission-uami")) names.push(x.name);
  assert.equal(names, ["fed"]);
  const stored = sb.state.federatedCredentialsOf(created.id!.replace(/\/federatedIdentityCredentials\/fed$/, ""));
  assert.is(stored.length, 1);
  assert.ok(stored[0].createdAtMs >= before);
});

Msi("re-PUT of the same credential is accepted and keeps createdAtMs", async () => {
  const id = `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami/federatedIdentityCredentials/fed`;
  const createdAt = sb.state.getResource(id)!.createdAtMs;
  await new Promise((r) => setTimeout(r, 5));
  await msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "fed", fic("metering-submission-via-uami"));
  assert.is(sb.state.getResource(id)!.createdAtMs, createdAt);
});

Msi("name rules: 3-120 characters of letters, digits, - and _, starting alphanumeric", async () => {
  for (const name of ["ab", "-abc", "_abc", "a b c", "a.bc", "x".repeat(121)]) {
    const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", name, fic(`s-${name.length}`)));
    assert.is(err.statusCode, 400, name);
    assert.is(err.code, "BadRequest", name);
  }
  const ok = await msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "A" + "b".repeat(119), fic("long-name-subject"));
  assert.is(ok.name!.length, 120);
  await msi.federatedIdentityCredentials.delete(MRG, "metering-submission-uami", ok.name!);
});

Msi("issuer and subject are required, at most 600 characters; the issuer is an https URL", async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ subject: "s", audiences: ["a"] }, /issuer/],
    [{ issuer: `https://x.example/${"i".repeat(600)}`, subject: "s", audiences: ["a"] }, /600/],
    [{ issuer: "http://idp.example.com", subject: "s", audiences: ["a"] }, /https/],
    [{ issuer: "not a url", subject: "s", audiences: ["a"] }, /https/],
    [{ issuer: ISSUER, audiences: ["a"] }, /subject/],
    [{ issuer: ISSUER, subject: "s".repeat(601), audiences: ["a"] }, /600/],
  ];
  for (const [props, message] of cases) {
    const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "rules", props as never));
    assert.is(err.statusCode, 400, JSON.stringify(props).slice(0, 80));
    assert.match(err.message, message);
  }
});

Msi("exactly one audience: none or two are refused with Entra's message", async () => {
  for (const audiences of [[], ["api://AzureADTokenExchange", "api://other"]]) {
    const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "aud", { issuer: ISSUER, subject: "aud", audiences }));
    assert.is(err.statusCode, 400);
    assert.is(err.message, "Federated identity credentials must have exactly one audience.");
  }
});

Msi("claimsMatchingExpression is refused on a user-assigned identity (raw REST: arm-msi 2.2.0 has no such property)", async () => {
  const path = `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami/federatedIdentityCredentials/cme?api-version=2025-01-31-preview`;
  const properties = { issuer: ISSUER, subject: "cme", audiences: ["api://AzureADTokenExchange"], claimsMatchingExpression: { value: "claims['sub'] startswith 'x'", languageVersion: 1 } };
  assertError(await arm("PUT", path, { body: { properties } }), 400, "BadRequest", /claimsMatchingExpression/);
});

Msi("issuer+subject must be unique per identity (another name is refused)", async () => {
  const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "metering-submission-uami", "fed-copy", fic("metering-submission-via-uami")));
  assert.is(err.statusCode, 400);
  assert.is(err.message, "Issuer and subject combination already exists for this Managed Identity.");
});

Msi("at most 20 credentials per identity", async () => {
  await msi.userAssignedIdentities.createOrUpdate(MRG, "crowded", { location: "westeurope" });
  for (let i = 0; i < 20; i++) await msi.federatedIdentityCredentials.createOrUpdate(MRG, "crowded", `fic-${i}`, fic(`subject-${i}`));
  const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "crowded", "fic-20", fic("subject-20")));
  assert.is(err.statusCode, 400);
  assert.match(err.message, /at most 20/);
  // Updating one of the twenty is still fine.
  await msi.federatedIdentityCredentials.createOrUpdate(MRG, "crowded", "fic-0", fic("subject-0b"));
});

Msi("concurrent writes on one identity: one succeeds, the other gets 409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity", async () => {
  await msi.userAssignedIdentities.createOrUpdate(MRG, "busy", { location: "westeurope" });
  const results = await Promise.allSettled([
    msi.federatedIdentityCredentials.createOrUpdate(MRG, "busy", "one", fic("one")),
    msi.federatedIdentityCredentials.createOrUpdate(MRG, "busy", "two", fic("two")),
  ]);
  const rejected = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  assert.is(rejected.length, 1, JSON.stringify(results.map((r) => r.status)));
  assert.is(rejected[0].reason.statusCode, 409);
  assert.is(rejected[0].reason.code, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity");
  // Serialized, the second write goes through.
  await msi.federatedIdentityCredentials.createOrUpdate(MRG, "busy", "two", fic("two"));
});

Msi("a credential on a missing identity: 404; delete of a credential and of the identity", async () => {
  const err = await rejection(msi.federatedIdentityCredentials.createOrUpdate(MRG, "ghost", "fed", fic("g")));
  assert.is(err.statusCode, 404);
  await msi.federatedIdentityCredentials.delete(MRG, "busy", "one");
  const gone = await rejection(msi.federatedIdentityCredentials.get(MRG, "busy", "one"));
  assert.is(gone.statusCode, 404);
  await msi.userAssignedIdentities.delete(MRG, "busy");
  assert.is(sb.state.getResource(`${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/busy/federatedIdentityCredentials/two`), undefined);
  const missing = await rejection(msi.userAssignedIdentities.get(MRG, "busy"));
  assert.is(missing.statusCode, 404);
  assert.is(missing.code, "ResourceNotFound");
});

Msi("a customer-tenant principal without a role is refused with 403, also for HEAD", async () => {
  const err = await rejection(msiFor(fabrikam, CUSTOMER_NOBODY).userAssignedIdentities.get(MRG, "metering-submission-uami"));
  assert.is(err.statusCode, 403);
  assert.is(err.code, "AuthorizationFailed");
  const path = `${mrgPath(fabrikam)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/metering-submission-uami?${MSI_API}`;
  assert.is((await arm("HEAD", path)).status, 204);
  assert.is((await arm("HEAD", path.replace("metering-submission-uami", "no-such-uami"))).status, 404);
  assert.is((await arm("HEAD", path, { who: CUSTOMER_NOBODY })).status, 403);
});

Msi.run();

// ---------------------------------------------------------------- role assignments

const Rbac = suite("role assignments and role definitions");

Rbac("a Reader assignment lets a principal read but not write; deleting it takes the access away", async () => {
  const reader: Who = { tenantId: isv.tenantId, objectId: randomUUID() };
  const rg = await createGroup("rbac-rg");
  assertError(await arm("GET", `${rg}?${RG_API}`, { who: reader }), 403, "AuthorizationFailed");
  const name = await grant(rg, reader.objectId, ROLE.Reader);
  assert.is((await arm("GET", `${rg}?${RG_API}`, { who: reader })).status, 200);
  assertError(await arm("PUT", `${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/r?${MSI_API}`, { who: reader, body: { location: "westeurope" } }),
    403, "AuthorizationFailed", /'Microsoft\.ManagedIdentity\/userAssignedIdentities\/write'/);
  const del = await arm("DELETE", `${rg}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`);
  assert.is(del.status, 200);
  assert.is(del.json.name, name);
  assertError(await arm("GET", `${rg}?${RG_API}`, { who: reader }), 403, "AuthorizationFailed");
});

Rbac("a principalType the directory contradicts is 400 UnmatchedPrincipalType; the right one is recorded", async () => {
  const rg = `${isvSub}/resourceGroups/rbac-rg`;
  const put = (principalId: string, principalType: string) => arm("PUT", `${rg}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, {
    body: { properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Reader}`, principalId, principalType } },
  });
  const mi = isv.managedIdentity!.principalId;
  assertError(await put(mi, "User"), 400, "UnmatchedPrincipalType", new RegExp(`has type 'ServicePrincipal' , which is different from specified PrinciaplType 'User'`));
  assertError(await put(isv.userObjectId, "ServicePrincipal"), 400, "UnmatchedPrincipalType", /has type 'User'/);
  const made = await put(mi, "ServicePrincipal");
  assert.is(made.status, 201);
  assert.is(made.json.properties.principalType, "ServicePrincipal");
  // A principal the directory does not know is taken as given (a replication delay, another directory).
  assert.is((await put(randomUUID(), "User")).status, 201);
});

Rbac("PUT records scope, role and principal; GET returns it; a second name for the same grant is 409 RoleAssignmentExists", async () => {
  const principal = randomUUID();
  const rg = `${isvSub}/resourceGroups/rbac-rg`;
  const name = await grant(rg, principal, ROLE.KeyVaultCryptoUser);
  const got = await arm("GET", `${rg}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`);
  assert.is(got.json.id, `${rg}/providers/Microsoft.Authorization/roleAssignments/${name}`);
  assert.is(got.json.properties.scope, rg);
  assert.is(got.json.properties.principalId, principal);
  assert.is(got.json.properties.roleDefinitionId, `${isvSub}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultCryptoUser}`);
  const again = await arm("PUT", `${rg}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, {
    body: { properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.KeyVaultCryptoUser}`, principalId: principal } },
  });
  assertError(again, 409, "RoleAssignmentExists");
});

Rbac("invalid names, unknown role definitions and unknown filters are refused", async () => {
  const rg = `${isvSub}/resourceGroups/rbac-rg`;
  const body = { properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Reader}`, principalId: randomUUID() } };
  assertError(await arm("PUT", `${rg}/providers/Microsoft.Authorization/roleAssignments/not-a-guid?api-version=2022-04-01`, { body }), 400, "InvalidRoleAssignmentId");
  const unknownRole = { properties: { ...body.properties, roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${randomUUID()}` } };
  assertError(await arm("PUT", `${rg}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, { body: unknownRole }), 400, "RoleDefinitionDoesNotExist");
  assertError(await arm("GET", `${rg}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=roleName eq 'x'`), 400, "UnsupportedQuery");
});

Rbac("Contributor cannot assign roles (Microsoft.Authorization/*/Write is a notAction)", async () => {
  const contributor: Who = { tenantId: isv.tenantId, objectId: randomUUID() };
  const rg = `${isvSub}/resourceGroups/rbac-rg`;
  await grant(rg, contributor.objectId, ROLE.Contributor);
  const a = await arm("PUT", `${rg}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, {
    who: contributor, body: { properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Reader}`, principalId: randomUUID() } },
  });
  assertError(a, 403, "AuthorizationFailed", /Microsoft\.Authorization\/roleAssignments\/write/);
  assert.is((await arm("PUT", `${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/by-contributor?${MSI_API}`, { who: contributor, body: { location: "westeurope" } })).status, 201);
});

Rbac("list with $filter=atScope() shows assignments at and above the scope; principalId eq filters; &tenantId= is accepted", async () => {
  const rg = `${isvSub}/resourceGroups/rbac-rg`;
  const atRg = await arm("GET", `${rg}/providers/Microsoft.Authorization/roleAssignments?api-version=2019-04-01-preview&tenantId=${isv.tenantId}&$filter=atScope()`);
  assert.is(atRg.status, 200);
  const scopes = atRg.json.value.map((r: { properties: { scope: string } }) => r.properties.scope);
  assert.ok(scopes.includes(isvSub), "the seeded Owner at the subscription is above");
  assert.ok(scopes.every((s: string) => s === isvSub || s === rg), JSON.stringify(scopes));
  const atSub = await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()`);
  assert.ok(atSub.json.value.every((r: { properties: { scope: string } }) => r.properties.scope === isvSub));
  const all = await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01`);
  assert.ok(all.json.value.some((r: { properties: { scope: string } }) => r.properties.scope === rg), "without a filter, below too");
  const mine = await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId eq '${isv.userObjectId}'`);
  assert.ok(mine.json.value.length >= 1);
  assert.ok(mine.json.value.every((r: { properties: { principalId: string } }) => r.properties.principalId === isv.userObjectId));
});

Rbac("role definitions: GET a built-in by id and by name filter", async () => {
  const owner = await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Owner}?api-version=2022-04-01`);
  assert.is(owner.json.properties.roleName, "Owner");
  assert.is(owner.json.id, `${isvSub}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Owner}`);
  const byName = await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName eq 'Key Vault Crypto Officer'`);
  assert.equal(byName.json.value.map((d: { name: string }) => d.name), [ROLE.KeyVaultCryptoOfficer]);
  assertError(await arm("GET", `${isvSub}/providers/Microsoft.Authorization/roleDefinitions/${randomUUID()}?api-version=2022-04-01`), 404, "RoleDefinitionDoesNotExist");
});

Rbac.run();

// ---------------------------------------------------------------- deployments

// Template deployments themselves: arm-deployments.test.mts.
const Deploy = suite("Microsoft.Resources/deployments requests");

Deploy("a deployment without a valid mode is refused; an unknown deployment is 404 DeploymentNotFound", async () => {
  const rg = await createGroup("deploy-rg");
  assertError(await arm("PUT", `${rg}/providers/Microsoft.Resources/deployments/bad?api-version=2022-09-01`, { body: { properties: { mode: "Sometimes" } } }), 400, "InvalidRequestContent");
  assertError(await arm("GET", `${rg}/providers/Microsoft.Resources/deployments/none?api-version=2022-09-01`), 404, "DeploymentNotFound");
});

Deploy.run();

// ---------------------------------------------------------------- Resource Graph

const Graph = suite("Resource Graph");
const graph = (body: unknown, who: Who = ISV_USER, v = "2021-03-01") => arm("POST", `/providers/Microsoft.ResourceGraph/resources?api-version=${v}`, { who, body });

Graph("the original tool's connect-customer query answers the app's MRG, kind, location, state, plan and billing", async () => {
  const mrgId = `/subscriptions/${fabrikam.subscriptionId}/resourceGroups/${fabrikam.managedResourceGroup}`;
  const query = [
    "resources",
    '| where type =~ "microsoft.solutions/applications"',
    `| where properties.managedResourceGroupId =~ "${mrgId.toUpperCase()}"`,
    "| extend provisioningState = properties.provisioningState",
    "| extend managedResourceGroupId = properties.managedResourceGroupId",
    '| extend billing = parse_json(strcat("{\\"resourceUri\\": \\"", id, "\\", \\"resourceId\\": \\"", properties.billingDetails.resourceUsageId, "\\"}"))',
    "| project managedResourceGroupId, kind, location, provisioningState, plan, billing",
  ].join("\n");
  const a = await graph({ subscriptions: [fabrikam.subscriptionId], query });
  assert.is(a.status, 200, JSON.stringify(a.json));
  assert.is(a.json.totalRecords, 1);
  assert.is(a.json.count, 1);
  assert.is(a.json.resultTruncated, "false");
  assert.equal(a.json.data[0], {
    managedResourceGroupId: mrgId,
    kind: "MarketPlace",
    location: "westeurope",
    provisioningState: "Succeeded",
    plan: { name: "silver", publisher: "contoso-isv", product: "metered-analytics", version: "1.0.0", promotionCode: "" },
    billing: { resourceUri: fabrikam.managedAppId, resourceId: fabrikam.resourceUsageId },
  });
});

Graph("the original tool's list-customers query derives each MRG name with substring/indexof(occurrence = 4)", async () => {
  const query = `resources
| where type =~ "microsoft.solutions/applications"
| extend managedResourceGroupName = substring(properties.managedResourceGroupId, 1 + indexof(properties.managedResourceGroupId, match = "/", start = 0, length = -1, occurrence = 4))
| extend managedAppId = id
| project subscriptionId, managedResourceGroupName, managedAppId`;
  const a = await graph({ query });
  assert.is(a.status, 200, JSON.stringify(a.json));
  const rows = a.json.data.sort((x: { managedAppId: string }, y: { managedAppId: string }) => x.managedAppId.localeCompare(y.managedAppId));
  const want = [fabrikam, tailwind, woodgrove].map((c) => ({ subscriptionId: c.subscriptionId, managedResourceGroupName: c.managedResourceGroup, managedAppId: c.managedAppId }))
    .sort((x, y) => x.managedAppId.localeCompare(y.managedAppId));
  assert.equal(rows, want);
});

Graph("rows exist only for resources the caller may read", async () => {
  const query = 'resources | where type =~ "microsoft.solutions/applications" | project id';
  const a = await graph({ query }, NOBODY);
  assert.is(a.status, 200);
  assert.is(a.json.totalRecords, 0);
  assert.equal(a.json.data, []);
  const scoped = await graph({ query, subscriptions: [tailwind.subscriptionId] });
  assert.equal(scoped.json.data, [{ id: tailwind.managedAppId }]);
});

Graph("$skipToken pages through every row with the same query; another query cannot use the token", async () => {
  await createGroup("graph-rg");
  for (let i = 0; i < 7; i++) {
    assert.is((await arm("PUT", `${isvSub}/resourceGroups/graph-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/page-${i}?${MSI_API}`, { body: { location: "westeurope" } })).status, 201);
  }
  const query = 'resources | where type =~ "Microsoft.ManagedIdentity/userAssignedIdentities" and resourceGroup == "graph-rg" | project id, name';
  const seen: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const a = await graph({ query, options: { $top: 3, ...(token ? { $skipToken: token } : {}) } }, ISV_USER, "2022-10-01");
    assert.is(a.status, 200, JSON.stringify(a.json));
    assert.is(a.json.totalRecords, 7);
    seen.push(...a.json.data.map((r: { name: string }) => r.name));
    token = a.json.$skipToken;
    assert.is(a.json.resultTruncated, token ? "true" : "false");
    pages++;
  } while (token && pages < 10);
  assert.is(pages, 3);
  assert.equal(seen.sort(), [0, 1, 2, 3, 4, 5, 6].map((i) => `page-${i}`));
  const first = await graph({ query, options: { $top: 3 } });
  const other = await graph({ query: `${query} | take 5`, options: { $top: 3, $skipToken: first.json.$skipToken } });
  assertError(other, 400, "BadRequest", /skipToken/);
});

Graph("without id in the projection a truncated result has no $skipToken; table format has columns and rows", async () => {
  const query = 'resources | where type =~ "microsoft.managedidentity/userassignedidentities" and resourceGroup == "graph-rg" | project name';
  const a = await graph({ query, options: { $top: 2 } }, ISV_USER, "2024-04-01");
  assert.is(a.json.resultTruncated, "true");
  assert.is(a.json.$skipToken, undefined);
  const t = await graph({ query: `${query} | order by name asc | take 2`, options: { resultFormat: "table" } });
  assert.equal(t.json.data, { columns: [{ name: "name", type: "string" }], rows: [["page-0"], ["page-1"]] });
});

Graph("anything outside the KQL subset is a 400 naming it", async () => {
  const cases: Array<[string, RegExp]> = [
    ["resources | summarize count() by type", /'summarize'/],
    ['resources | where name contains "x"', /'contains'/],
    ["resources | extend x = bag_keys(properties)", /'bag_keys'/],
    ["resources | project nosuchcolumn", /'nosuchcolumn'/],
    ["authorizationresources | project id", /'authorizationresources'/],
    ["resources | where", /end of query/],
  ];
  for (const [query, message] of cases) {
    const a = await graph({ query });
    assertError(a, 400, "BadRequest", message);
    assert.is(a.json.error.details[0].code, "InvalidQuery");
  }
  assertError(await graph({ query: "resources", options: { $top: 1001 } }), 400, "BadRequest", /\$top/);
  assertError(await graph({ query: "resources" }, ISV_USER, "2019-04-01"), 400, "InvalidApiVersionParameter");
});

Graph.run();

// ---------------------------------------------------------------- storage

const Storage = suite("Microsoft.Storage on Azurite");
const STORAGE_API = "api-version=2025-06-01";

Storage("account names follow Azure's rules; primaryEndpoints.blob is Azurite's endpoint", async () => {
  const rg = await createGroup("storage-rg");
  assertError(await arm("PUT", `${rg}/providers/Microsoft.Storage/storageAccounts/Bad_Name?${STORAGE_API}`, { body: { location: "westeurope", kind: "StorageV2", sku: { name: "Standard_LRS" } } }),
    400, "AccountNameInvalid", /Bad_Name is not a valid storage account name/);
  const a = await arm("PUT", `${rg}/providers/Microsoft.Storage/storageAccounts/idpsandbox1?${STORAGE_API}`, {
    body: { location: "westeurope", kind: "StorageV2", sku: { name: "Standard_LRS" }, properties: { allowBlobPublicAccess: true, minimumTlsVersion: "TLS1_2" } },
  });
  assert.is(a.status, 201, JSON.stringify(a.json));
  assert.is(a.json.properties.primaryEndpoints.blob, `${sb.endpoints.blob}/`);
  assert.is(a.json.properties.allowBlobPublicAccess, true);
  const keys = await arm("POST", `${rg}/providers/Microsoft.Storage/storageAccounts/idpsandbox1/listKeys?${STORAGE_API}`);
  assert.is(keys.json.keys[0].value, AZURITE_ACCOUNT.key);
});

Storage("a container with publicAccess Blob is really created in Azurite and serves blobs to anonymous callers", async () => {
  const acct = `${isvSub}/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/idpsandbox1`;
  assert.is((await arm("PUT", `${acct}/blobServices/default?${STORAGE_API}`, { body: { properties: {} } })).status, 200);
  const c = await arm("PUT", `${acct}/blobServices/default/containers/public?${STORAGE_API}`, { body: { properties: { publicAccess: "Blob" } } });
  assert.is(c.status, 201, JSON.stringify(c.json));
  assert.is(c.json.properties.publicAccess, "Blob");
  const service = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
  const doc = JSON.stringify({ issuer: "https://example" });
  await service.getContainerClient("public").getBlockBlobClient(".well-known/openid-configuration").upload(doc, doc.length, { blobHTTPHeaders: { blobContentType: "application/json" } });
  const anonymous = await fetch(`${sb.endpoints.blob}/public/.well-known/openid-configuration`);
  assert.is(anonymous.status, 200);
  assert.is(await anonymous.text(), doc);
  const got = await arm("GET", `${acct}/blobServices/default/containers/public?${STORAGE_API}`);
  assert.is(got.json.name, "public");
});

Storage("an account that disallows public access gets a private container: anonymous reads fail", async () => {
  const rg = `${isvSub}/resourceGroups/storage-rg`;
  const acct = `${rg}/providers/Microsoft.Storage/storageAccounts/privatesandbox1`;
  assert.is((await arm("PUT", `${acct}?${STORAGE_API}`, { body: { location: "westeurope", kind: "StorageV2", sku: { name: "Standard_LRS" } } })).status, 201);
  assert.is((await arm("PUT", `${acct}/blobServices/default/containers/private?${STORAGE_API}`, { body: { properties: { publicAccess: "Blob" } } })).status, 201);
  const service = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
  await service.getContainerClient("private").getBlockBlobClient("secret.txt").upload("s", 1);
  const anonymous = await fetch(`${sb.endpoints.blob}/private/secret.txt`);
  await anonymous.body?.cancel();
  assert.ok(anonymous.status >= 400, `HTTP ${anonymous.status}`);
});

Storage("container names follow Azure's rules; DELETE removes the container from Azurite", async () => {
  const acct = `${isvSub}/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/idpsandbox1`;
  assertError(await arm("PUT", `${acct}/blobServices/default/containers/Bad--Name?${STORAGE_API}`, { body: {} }), 400, "ContainerOperationFailure");
  assert.is((await arm("PUT", `${acct}/blobServices/default/containers/scratch?${STORAGE_API}`, { body: {} })).status, 201);
  const service = new BlobServiceClient(sb.endpoints.blob, new StorageSharedKeyCredential(AZURITE_ACCOUNT.name, AZURITE_ACCOUNT.key));
  assert.ok(await service.getContainerClient("scratch").exists());
  assert.is((await arm("DELETE", `${acct}/blobServices/default/containers/scratch?${STORAGE_API}`)).status, 200);
  assert.not.ok(await service.getContainerClient("scratch").exists());
  assertError(await arm("GET", `${acct}/blobServices/default/containers/scratch?${STORAGE_API}`), 404, "ContainerNotFound");
});

Storage.after(() => sb.stop());
Storage.run();
