// The sandbox's Marketplace "purchase" of a managed application offer (admin API `POST
// /offers/purchase`): what Azure does when a customer buys a plan. It creates the managed
// application in the customer's resource group (its plan, its managed resource group, the
// publisher's authorizations as the world's offer defines them, a system-assigned identity when
// the createUiDefinition turns one on), deploys the offer's mainTemplate INTO the managed resource
// group through ARM's own deployments route (the same template engine every deployment uses),
// and gives the application its billingDetails once that deployment succeeded.
//
// At purchase time Azure runs the mainTemplate inside the customer's tenant, as the managed
// applications resource provider, not as the publisher: the deployment is same-tenant, so role
// assignments in it need no delegatedManagedIdentityResourceId. The sandbox plays that provider as
// a service principal of the customer's tenant (SOLUTIONS_RP_OBJECT_ID) holding Owner on the MRG
// (how Azure authorizes it is not visible to a customer: unconfirmed, a sandbox choice).
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { createInProcessDispatcher, type Reply, type ServiceDef } from "../core/http.mts";
import { ROLE, type ArmResource } from "../core/state.mts";
import type { SandboxContext } from "../core/context.mts";

const APP_TYPE = "Microsoft.Solutions/applications";
const DEPLOYMENTS_API = "2022-09-01";
/** The sandbox's stand-in for the managed applications resource provider's principal in a customer tenant. */
export const SOLUTIONS_RP_OBJECT_ID = "3f8d7c1e-1b2a-4c5d-9e6f-a1b2c3d4e5f6";
/** The mainTemplate parameter the purchase fills with the application's system-assigned principal id (a sandbox convention). */
export const APP_PRINCIPAL_PARAMETER = "managedApplicationPrincipalId";
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAME_RE = /^[-\w.()]{1,90}$/;

export interface PurchaseRequest {
  tenantId: string;
  subscriptionId: string;
  /** For a tenant or subscription the world does not have yet. */
  tenantName?: string;
  subscriptionName?: string;
  location?: string;
  /** The customer's resource group holding the application (created when missing). */
  resourceGroup?: string;
  applicationName?: string;
  managedResourceGroup?: string;
  plan: { product: string; name: string; version?: string };
  /** The compiled mainTemplate (ARM JSON), or a path to mainTemplate.json / .bicep (compiled by the az stand-in's compiler). */
  template?: Record<string, unknown>;
  templatePath?: string;
  /** The createUiDefinition (JSON or a path): its `managedIdentity` output turns the system-assigned identity on. */
  createUiDefinition?: Record<string, unknown>;
  createUiDefinitionPath?: string;
  /** Explicitly on or off, whatever the createUiDefinition says. */
  systemAssignedIdentity?: boolean;
  /** mainTemplate parameter values (plain values, as createUiDefinition outputs are). */
  parameters?: Record<string, unknown>;
}

class PurchaseError extends Error {
  reply: Reply;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.reply = { status, body: { error: { code, message } } };
  }
}
const bad = (message: string) => new PurchaseError(400, "BadRequest", message);

function _string(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v === "") throw bad(`'${key}' must be a non-empty string.`);
  return v;
}

async function _jsonFile(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw bad(`Cannot read the ${what} '${path}': no such file.`);
  }
  if (extname(path).toLowerCase() === ".bicep") {
    const { compileBicep, parseBicep } = await import("../az/bicep/evaluate.mts");
    const { BicepSyntaxError } = await import("../az/bicep/errors.mts");
    try {
      return compileBicep(parseBicep(text, path)) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof BicepSyntaxError) throw bad(`Cannot compile the ${what}: ${e.message}`);
      throw e;
    }
  }
  try {
    const v = JSON.parse(text.replace(/^\uFEFF/, ""));
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch { /* below */ }
  throw bad(`The ${what} '${path}' is not a JSON object.`);
}

/** Whether the createUiDefinition gives the application a system-assigned identity (its `managedIdentity` output). */
export function uiDefinitionWantsSystemIdentity(uiDef: Record<string, unknown>): boolean {
  const params = uiDef.parameters as { outputs?: Record<string, unknown>; steps?: unknown[] } | undefined;
  const output = params?.outputs?.managedIdentity;
  if (output === undefined) return false;
  if (typeof output === "object" && output !== null) return /SystemAssigned/i.test(String((output as { Type?: unknown; type?: unknown }).Type ?? (output as { type?: unknown }).type ?? ""));
  // An IdentitySelector's value: its system-assigned switch's default decides (the customer keeps it on here).
  const text = JSON.stringify(params?.steps ?? []);
  return /Microsoft\.ManagedIdentity\.IdentitySelector/.test(text) && !/"systemAssignedIdentity"\s*:\s*"Off"/i.test(text);
}

/** Runs one purchase; answers 201 with the application and the deployment's outcome, or an error reply. */
export async function purchaseOffer(ctx: SandboxContext, armDef: ServiceDef, body: Record<string, unknown>): Promise<Reply> {
  try {
    return await _purchase(ctx, armDef, body);
  } catch (e) {
    if (e instanceof PurchaseError) return e.reply;
    throw e;
  }
}

async function _purchase(ctx: SandboxContext, armDef: ServiceDef, body: Record<string, unknown>): Promise<Reply> {
  const { state } = ctx;
  const seed = state.seed;
  // GUIDs as the world spells them (lower case), whatever the caller sent.
  const tenantId = _string(body, "tenantId", true)!.toLowerCase();
  const subscriptionId = _string(body, "subscriptionId", true)!.toLowerCase();
  if (!GUID_RE.test(tenantId) || !GUID_RE.test(subscriptionId)) throw bad("'tenantId' and 'subscriptionId' must be GUIDs.");
  const plan = body.plan as PurchaseRequest["plan"] | undefined;
  if (!plan || typeof plan !== "object" || typeof plan.product !== "string" || typeof plan.name !== "string") throw bad("'plan' must be {product, name, version?}.");
  const offer = seed.offers.find((o) => o.product === plan.product);
  if (!offer) throw bad(`The world has no offer '${plan.product}'; it has ${seed.offers.map((o) => `'${o.product}'`).join(", ")}.`);
  if (!offer.plans.some((p) => p.name === plan.name)) throw bad(`The offer '${plan.product}' has no plan '${plan.name}'; it has ${offer.plans.map((p) => `'${p.name}'`).join(", ")}.`);
  if ((body.template === undefined) === (body.templatePath === undefined)) throw bad("Give exactly one of 'template' (the compiled mainTemplate) and 'templatePath'.");
  if (body.template !== undefined && (typeof body.template !== "object" || body.template === null || Array.isArray(body.template))) throw bad("'template' must be a JSON object.");
  const template = body.template as Record<string, unknown> ?? await _jsonFile(_string(body, "templatePath", true)!, "template");
  const uiDef = body.createUiDefinition !== undefined
    ? body.createUiDefinition as Record<string, unknown>
    : body.createUiDefinitionPath !== undefined ? await _jsonFile(_string(body, "createUiDefinitionPath", true)!, "createUiDefinition") : undefined;
  if (body.systemAssignedIdentity !== undefined && typeof body.systemAssignedIdentity !== "boolean") throw bad("'systemAssignedIdentity' must be a boolean.");
  const parameters = body.parameters ?? {};
  if (typeof parameters !== "object" || parameters === null || Array.isArray(parameters)) throw bad("'parameters' must be an object of values.");

  // The customer's tenant and subscription: the world's, or new ones.
  const existingSub = state.subscriptions.get(subscriptionId);
  if (existingSub && existingSub.tenantId.toLowerCase() !== tenantId.toLowerCase()) {
    throw bad(`The subscription '${subscriptionId}' belongs to tenant '${existingSub.tenantId}', not '${tenantId}'.`);
  }
  const tenantName = _string(body, "tenantName", false) ?? `customer${tenantId.slice(0, 8)}`;
  if (!state.tenants.has(tenantId)) {
    const domain = `${tenantName}.onmicrosoft.com`;
    state.tenants.set(tenantId, { tenantId, displayName: tenantName, defaultDomain: domain, domains: [domain] });
  }
  if (!existingSub) {
    state.subscriptions.set(subscriptionId, { subscriptionId, displayName: _string(body, "subscriptionName", false) ?? `${tenantName} subscription`, tenantId, state: "Enabled" });
  }
  const location = _string(body, "location", false) ?? seed.isv.location;
  const rgName = _string(body, "resourceGroup", false) ?? `${plan.product}-apps`;
  const appName = _string(body, "applicationName", false) ?? plan.product;
  const mrgName = _string(body, "managedResourceGroup", false) ?? `mrg-${plan.product}-${randomUUID().slice(0, 8)}`;
  for (const [k, v] of [["resourceGroup", rgName], ["applicationName", appName], ["managedResourceGroup", mrgName]]) {
    if (!NAME_RE.test(v)) throw bad(`'${k}' '${v}' is not a valid name (letters, digits, - _ . ( ), at most 90).`);
  }
  const sub = `/subscriptions/${subscriptionId}`;
  const rgId = `${sub}/resourceGroups/${rgName}`;
  const mrgId = `${sub}/resourceGroups/${mrgName}`;
  const appId = `${rgId}/providers/${APP_TYPE}/${appName}`;
  if (state.getResource(appId)) throw new PurchaseError(409, "Conflict", `The application '${appId}' exists already.`);
  if (state.getResource(mrgId)) throw new PurchaseError(409, "Conflict", `The managed resource group '${mrgId}' exists already; a purchase creates its own.`);

  const now = state.now();
  const base = { tenantId, subscriptionId, location, createdAtMs: now };
  if (!state.getResource(rgId)) {
    state.putResource({ ...base, id: rgId, name: rgName, type: "Microsoft.Resources/resourceGroups", resourceGroup: rgName, properties: { provisioningState: "Succeeded" } });
  }
  const systemIdentity = body.systemAssignedIdentity ?? (uiDef ? uiDefinitionWantsSystemIdentity(uiDef) : false);
  const principalId = systemIdentity ? randomUUID() : undefined;
  const authorizations = (offer.authorizations ?? [{ principalId: seed.isv.user.objectId, roleDefinitionId: ROLE.Owner }]).map((a) => ({ ...a }));
  const app: ArmResource = {
    ...base, id: appId, name: appName, type: APP_TYPE, resourceGroup: rgName, kind: "MarketPlace", managedBy: undefined,
    plan: { name: plan.name, publisher: offer.publisher, product: plan.product, version: plan.version ?? "1.0.0", promotionCode: "" },
    identity: principalId ? { type: "SystemAssigned", principalId, tenantId } : { type: "None" },
    properties: {
      managedResourceGroupId: mrgId,
      provisioningState: "Accepted",
      billingDetails: null,
      publisherTenantId: seed.isv.tenantId,
      customerSupport: { contactName: "", email: "", phone: "" },
      authorizations,
      createdBy: { oid: randomUUID(), puid: "", applicationId: "" },
      jitAccessPolicy: { jitAccessEnabled: false },
    },
  };
  state.putResource(app);
  state.putResource({ ...base, id: mrgId, name: mrgName, type: "Microsoft.Resources/resourceGroups", resourceGroup: mrgName, managedBy: appId, properties: { provisioningState: "Succeeded" } });
  // The resource provider's right to deploy into the MRG (see the header).
  state.putResource({
    ...base, id: `${mrgId}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`, name: "", type: "Microsoft.Authorization/roleAssignments",
    properties: { principalId: SOLUTIONS_RP_OBJECT_ID, principalType: "ServicePrincipal", scope: mrgId, roleDefinitionId: `${sub}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.Owner}` },
  });

  // The mainTemplate's parameters: the given values, plus the application's identity where the template asks for it.
  const declared = (template.parameters ?? {}) as Record<string, unknown>;
  const values: Record<string, unknown> = { ...parameters as Record<string, unknown> };
  if (principalId && APP_PRINCIPAL_PARAMETER in declared && !(APP_PRINCIPAL_PARAMETER in values)) values[APP_PRINCIPAL_PARAMETER] = principalId;
  const { token } = await ctx.tokens.issue({
    tenantId, audience: "https://management.azure.com/", objectId: SOLUTIONS_RP_OBJECT_ID, idtyp: "app", lifetimeS: 3600, grant: "purchase",
  });
  const dispatch = createInProcessDispatcher(armDef);
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const deploymentPath = `${mrgId}/providers/Microsoft.Resources/deployments/${appName}`;
  const put = await dispatch({
    method: "PUT", url: `${deploymentPath}?api-version=${DEPLOYMENTS_API}`, headers,
    body: { properties: { mode: "Incremental", template, parameters: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { value: v }])) } },
  });
  let deployment = put.body as { properties?: { provisioningState?: string; error?: unknown; outputs?: unknown } } | undefined;
  if (put.status < 300) {
    // Azure's purchase waits for the deployment; so does this route (bounded: 60 s).
    for (let i = 0; i < 6000 && !["Succeeded", "Failed", "Canceled"].includes(String(deployment?.properties?.provisioningState)); i++) {
      await new Promise((r) => setTimeout(r, 10));
      deployment = (await dispatch({ method: "GET", url: `${deploymentPath}?api-version=${DEPLOYMENTS_API}`, headers })).body as typeof deployment;
    }
  }
  const succeeded = put.status < 300 && deployment?.properties?.provisioningState === "Succeeded";
  const error = put.status >= 300 ? (put.body as { error?: unknown })?.error : deployment?.properties?.error;
  const final = state.getResource(appId)!;
  state.putResource({
    ...final,
    properties: {
      ...final.properties,
      provisioningState: succeeded ? "Succeeded" : "Failed",
      // billingDetails only exist once provisioning succeeded (docs/azure-behaviour.md §5.1).
      billingDetails: succeeded ? { resourceUsageId: randomUUID() } : null,
    },
  });
  const purchased = state.getResource(appId)!;
  return {
    status: 201,
    body: {
      application: {
        id: purchased.id, name: purchased.name, plan: purchased.plan, identity: purchased.identity, ...purchased.properties,
        managedResourceGroup: mrgName, tenantId, subscriptionId,
      },
      deployment: {
        id: deploymentPath, provisioningState: succeeded ? "Succeeded" : String(deployment?.properties?.provisioningState ?? "Failed"),
        ...(deployment?.properties?.outputs ? { outputs: deployment.properties.outputs } : {}), ...(error ? { error } : {}),
      },
    },
  };
}
