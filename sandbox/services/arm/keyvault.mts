// Microsoft.KeyVault through ARM: vaults (each opens its own data-plane port), keys and secrets.
// Keys and secrets live in the data plane's store (keyvault/store.mts); ARM reads them from there.
import type { Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import { Arm, fail, isGuid, ok, rgId, subscriptionScope, systemData, tagsOf, toWire, type ArmCall } from "./core.mts";
import {
  KvError, createKeyVersion, findKey, findSecret, keyArmView, secretArmView, setSecretVersion, vaultStore, type VaultData,
} from "../keyvault/store.mts";

const VAULT_TYPE = "Microsoft.KeyVault/vaults";
const KEY_TYPE = "Microsoft.KeyVault/vaults/keys";
const SECRET_TYPE = "Microsoft.KeyVault/vaults/secrets";
const VAULT_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.KeyVault/vaults";

export function keyVaultRoutes(arm: Arm): Route[] {
  const { state, ctx } = arm;
  const store = vaultStore(state);

  const vaultId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${VAULT_TYPE}/${a.p.vaultName}`;

  const vaultOr404 = (a: ArmCall, parent = false): { res: ArmResource; data: VaultData } => {
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const res = state.getResource(vaultId(a));
    const data = store.get(vaultId(a).toLowerCase());
    if (!res || res.type !== VAULT_TYPE || !data) {
      if (parent) fail(404, "ParentResourceNotFound", `Can not perform requested operation on nested resource. Parent resource '${a.p.vaultName}' not found.`);
      arm.notFound(VAULT_TYPE, a.p.vaultName, a.p.resourceGroupName);
    }
    return { res, data };
  };

  /** Data-plane failures in ARM's shape. */
  const viaArm = async <T,>(fn: () => T | Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KvError) fail(err.status === 404 ? 404 : 400, err.status === 404 ? "ResourceNotFound" : "BadRequest", err.message);
      throw err;
    }
  };

  const putVault = async (a: ArmCall) => {
    const id = vaultId(a);
    arm.authorize(a.caller, id, `${VAULT_TYPE}/write`);
    const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
    const name = a.p.vaultName;
    if (!/^(?=.{3,24}$)[a-zA-Z](?!.*--)[a-zA-Z0-9-]*[a-zA-Z0-9]$/.test(name)) {
      fail(400, "VaultNameNotValid", `The vault name '${name}' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens. Follow this link for more information: https://go.microsoft.com/fwlink/?linkid=2147742`);
    }
    const taken = state.ofType(VAULT_TYPE).find((r) => r.name.toLowerCase() === name.toLowerCase() && r.id.toLowerCase() !== id.toLowerCase());
    if (taken) {
      fail(409, "VaultAlreadyExists", `The vault name '${name}' is already in use. Vault names are globally unique so it is possible that the name is already taken. If you are sure that the vault name was not taken then it is possible that a vault with the same name was recently deleted but not purged after being placed in a recoverable state. If the vault is in a recoverable state then the vault will need to be purged before reusing the name. For more information on VaultAlreadyExists, soft delete and purging a vault follow this link https://go.microsoft.com/fwlink/?linkid=2147740.`);
    }
    const body = a.body<{ location?: string; tags?: Record<string, string>; properties?: Record<string, unknown> }>();
    const location = arm.location(body, VAULT_TYPE);
    const given = body.properties;
    if (!given || typeof given !== "object") fail(400, "BadRequest", "The parameter 'properties' is required.");
    const tenantId = given.tenantId;
    if (typeof tenantId !== "string" || !isGuid(tenantId)) fail(400, "BadRequest", "The parameter 'properties.tenantId' must be a tenant id (GUID).");
    const sku = given.sku as { family?: string; name?: string } | undefined;
    if (!sku || sku.family !== "A" || !["standard", "premium"].includes(String(sku.name).toLowerCase())) {
      fail(400, "BadRequest", "The parameter 'properties.sku' must be {\"family\": \"A\", \"name\": \"standard\" | \"premium\"}.");
    }
    const existing = state.getResource(id);
    const vaultUri = await ctx.keyVault.openVault({ id: existing?.id ?? `${rg.id}/providers/${VAULT_TYPE}/${name}`, name, tenantId });
    const data = store.get(id.toLowerCase());
    if (data) data.tenantId = tenantId;
    const r: ArmResource = {
      id: existing?.id ?? `${rg.id}/providers/${VAULT_TYPE}/${name}`,
      name: existing?.name ?? name,
      type: VAULT_TYPE,
      location,
      tags: tagsOf(body) ?? existing?.tags ?? {},
      properties: {
        enabledForDeployment: false,
        enabledForDiskEncryption: false,
        enabledForTemplateDeployment: false,
        enableSoftDelete: true,
        softDeleteRetentionInDays: 90,
        enableRbacAuthorization: false,
        publicNetworkAccess: "Enabled",
        ...given,
        sku: { family: "A", name: String(sku.name).toLowerCase() },
        tenantId,
        accessPolicies: Array.isArray(given.accessPolicies) ? given.accessPolicies : [],
        vaultUri,
        provisioningState: "Succeeded",
      },
      systemData: systemData(a.caller, state.now(), existing?.systemData as Record<string, unknown> | undefined),
      tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
      createdAtMs: existing?.createdAtMs ?? state.now(),
    };
    state.putResource(r);
    return ok(toWire(r), existing ? 200 : 201);
  };

  return [
    // ---- vaults
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.KeyVault/vaults", type: VAULT_TYPE,
      handler: (a) => ok({
        value: state.ofTypeUnder(VAULT_TYPE, subscriptionScope(a.sub.subscriptionId))
          .filter((r) => arm.allowed(a.caller.oid, r.id, `${VAULT_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
      }),
    }),
    arm.route({
      method: "GET", path: VAULT_BASE, type: VAULT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, rgId(a.sub.subscriptionId, a.p.resourceGroupName), `${VAULT_TYPE}/read`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        return ok({ value: state.ofTypeUnder(VAULT_TYPE, rg.id).sort((x, y) => x.id.localeCompare(y.id)).map(toWire) });
      },
    }),
    arm.route({ method: "PUT", path: `${VAULT_BASE}/:vaultName`, type: VAULT_TYPE, handler: putVault }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName`, type: VAULT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, vaultId(a), `${VAULT_TYPE}/read`);
        return ok(toWire(vaultOr404(a).res));
      },
    }),
    arm.route({
      method: "DELETE", path: `${VAULT_BASE}/:vaultName`, type: VAULT_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, vaultId(a), `${VAULT_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const res = state.getResource(vaultId(a));
        if (!res || res.type !== VAULT_TYPE) return ok(undefined, 204);
        // Soft delete is not modelled: the vault, its keys and secrets are gone at once.
        state.deleteResource(res.id);
        await ctx.keyVault.closeVault?.(res.id);
        return ok(undefined, 200);
      },
    }),

    // ---- keys (Keys_CreateIfNotExist: "If it already exists, then the existing key is returned
    // without any write operations being performed. This API does not create subsequent versions,
    // and does not update existing keys." So a redeployment never rotates the key.)
    arm.route({
      method: "PUT", path: `${VAULT_BASE}/:vaultName/keys/:keyName`, type: KEY_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/keys/${a.p.keyName}`, `${KEY_TYPE}/write`);
        const { res, data } = vaultOr404(a, true);
        const existing = data.keys.get(a.p.keyName.toLowerCase());
        if (existing) return ok(keyArmView(res, data, existing.name, existing.versions.at(-1)!));
        const body = a.body<{ tags?: unknown; properties?: { kty?: unknown; keySize?: unknown; keyOps?: unknown; attributes?: unknown } }>();
        const p = body.properties ?? {};
        const kv = await viaArm(() => createKeyVersion(data, a.p.keyName, { kty: p.kty, keySize: p.keySize, keyOps: p.keyOps, attributes: p.attributes, tags: body.tags }, Math.floor(state.now() / 1000)));
        return ok(keyArmView(res, data, a.p.keyName, kv));
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/keys`, type: KEY_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, vaultId(a), `${KEY_TYPE}/read`);
        const { res, data } = vaultOr404(a);
        return ok({ value: [...data.keys.values()].map((e) => keyArmView(res, data, e.name, e.versions.at(-1)!)) });
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/keys/:keyName`, type: KEY_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/keys/${a.p.keyName}`, `${KEY_TYPE}/read`);
        const { res, data } = vaultOr404(a);
        const { name, kv } = await viaArm(() => findKey(data, a.p.keyName));
        return ok(keyArmView(res, data, name, kv));
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/keys/:keyName/versions`, type: KEY_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/keys/${a.p.keyName}`, `${KEY_TYPE}/versions/read`);
        const { res, data } = vaultOr404(a);
        const { name } = await viaArm(() => findKey(data, a.p.keyName));
        return ok({ value: data.keys.get(name.toLowerCase())!.versions.map((v) => ({ ...keyArmView(res, data, name, v), id: `${res.id}/keys/${name}/versions/${v.version}`, name: v.version, type: `${KEY_TYPE}/versions` })) });
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/keys/:keyName/versions/:keyVersion`, type: KEY_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/keys/${a.p.keyName}`, `${KEY_TYPE}/versions/read`);
        const { res, data } = vaultOr404(a);
        const { name, kv } = await viaArm(() => findKey(data, a.p.keyName, a.p.keyVersion));
        return ok({ ...keyArmView(res, data, name, kv), id: `${res.id}/keys/${name}/versions/${kv.version}`, name: kv.version, type: `${KEY_TYPE}/versions` });
      },
    }),

    // ---- secrets
    arm.route({
      method: "PUT", path: `${VAULT_BASE}/:vaultName/secrets/:secretName`, type: SECRET_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/secrets/${a.p.secretName}`, `${SECRET_TYPE}/write`);
        const { res, data } = vaultOr404(a, true);
        const body = a.body<{ tags?: unknown; properties?: { value?: unknown; contentType?: unknown; attributes?: unknown } }>();
        const p = body.properties ?? {};
        const current = data.secrets.get(a.p.secretName.toLowerCase())?.versions.at(-1);
        // A redeployment with the same value and content type adds no version (unconfirmed on Azure).
        if (current && (p.value === undefined || p.value === current.value) && (p.contentType ?? current.contentType) === current.contentType) {
          return ok(secretArmView(res, data, data.secrets.get(a.p.secretName.toLowerCase())!.name, current));
        }
        const sv = await viaArm(() => setSecretVersion(data, a.p.secretName, { value: p.value, contentType: p.contentType, attributes: p.attributes, tags: body.tags }, Math.floor(state.now() / 1000)));
        return ok(secretArmView(res, data, a.p.secretName, sv), current ? 200 : 201);
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/secrets`, type: SECRET_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, vaultId(a), `${SECRET_TYPE}/read`);
        const { res, data } = vaultOr404(a);
        return ok({ value: [...data.secrets.values()].map((e) => secretArmView(res, data, e.name, e.versions.at(-1)!)) });
      },
    }),
    arm.route({
      method: "GET", path: `${VAULT_BASE}/:vaultName/secrets/:secretName`, type: SECRET_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, `${vaultId(a)}/secrets/${a.p.secretName}`, `${SECRET_TYPE}/read`);
        const { res, data } = vaultOr404(a);
        const { name, sv } = await viaArm(() => findSecret(data, a.p.secretName));
        return ok(secretArmView(res, data, name, sv));
      },
    }),
  ];
}
