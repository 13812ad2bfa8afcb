// Microsoft.Storage: storage accounts, their blob service and containers, listKeys.
// primaryEndpoints.web is the sandbox's static website endpoint (one for all accounts, as Azurite
// has one account).
//
// Azurite serves one account (devstoreaccount1), so EVERY storage account created here maps onto
// it: primaryEndpoints.blob is Azurite's endpoint, listKeys returns Azurite's key, and containers
// of different accounts share Azurite's single container namespace. A container PUT really
// creates the container in Azurite, with the anonymous access the ARM request asks for.
import type { Route } from "../../core/http.mts";
import { scopeContains, type ArmResource } from "../../core/state.mts";
import { Arm, fail, ok, rgId, systemData, tagsOf, toWire, type ArmCall } from "./core.mts";

const ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts";
const BLOB_SERVICE_TYPE = "Microsoft.Storage/storageAccounts/blobServices";
const CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers";
const ACCOUNT_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Storage/storageAccounts";
const KINDS = ["Storage", "StorageV2", "BlobStorage", "FileStorage", "BlockBlobStorage"];
const PUBLIC_ACCESS = ["None", "Blob", "Container"];

type Access = "blob" | "container" | undefined;

export function storageRoutes(arm: Arm): Route[] {
  const { state, ctx } = arm;

  const accountId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${ACCOUNT_TYPE}/${a.p.accountName}`;

  const accountOr404 = (a: ArmCall): ArmResource => {
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const r = state.getResource(accountId(a));
    if (!r || r.type !== ACCOUNT_TYPE) arm.notFound(ACCOUNT_TYPE, a.p.accountName, a.p.resourceGroupName);
    return r;
  };

  const requireDefault = (a: ArmCall) => {
    if (a.p.blobServicesName.toLowerCase() !== "default") {
      fail(400, "InvalidResourceName", `The blob service name '${a.p.blobServicesName}' is invalid; it must be 'default'.`);
    }
  };

  const azurite = async () => {
    if (!ctx.azurite) fail(503, "ServiceUnavailable", "Blob storage is not running in this sandbox (it was started without Azurite).");
    const { BlobServiceClient, StorageSharedKeyCredential } = await import("@azure/storage-blob");
    return new BlobServiceClient(ctx.azurite.blobEndpoint, new StorageSharedKeyCredential(ctx.azurite.accountName, ctx.azurite.accountKey));
  };

  /** Anonymous access Azurite should grant: the container's setting, unless the account disallows public access. */
  const effectiveAccess = (account: ArmResource, container: ArmResource): Access => {
    if (account.properties.allowBlobPublicAccess !== true) return undefined;
    const p = String(container.properties.publicAccess ?? "None");
    return p === "Blob" ? "blob" : p === "Container" ? "container" : undefined;
  };

  const applyInAzurite = async (name: string, access: Access) => {
    const client = (await azurite()).getContainerClient(name);
    try {
      const created = await client.createIfNotExists(access ? { access } : {});
      if (!created.succeeded) await client.setAccessPolicy(access);
    } catch (err) {
      const e = err as { statusCode?: number; message?: string };
      fail(e.statusCode === 409 ? 409 : 400, "ContainerOperationFailure", String(e.message ?? err).split("\n")[0]);
    }
  };

  const containersOf = (account: ArmResource) =>
    state.listResources((r) => r.type === CONTAINER_TYPE && scopeContains(account.id, r.id));

  return [
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.Storage/storageAccounts", type: ACCOUNT_TYPE,
      handler: (a) => ok({
        value: state.ofType(ACCOUNT_TYPE)
          .filter((r) => r.subscriptionId === a.sub.subscriptionId && arm.allowed(a.caller.oid, r.id, `${ACCOUNT_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
      }),
    }),
    arm.route({
      method: "GET", path: ACCOUNT_BASE, type: ACCOUNT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, rgId(a.sub.subscriptionId, a.p.resourceGroupName), `${ACCOUNT_TYPE}/read`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        return ok({ value: state.ofType(ACCOUNT_TYPE).filter((r) => scopeContains(rg.id, r.id)).sort((x, y) => x.id.localeCompare(y.id)).map(toWire) });
      },
    }),
    arm.route({
      method: "PUT", path: `${ACCOUNT_BASE}/:accountName`, type: ACCOUNT_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, accountId(a), `${ACCOUNT_TYPE}/write`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        const name = a.p.accountName;
        if (!/^[a-z0-9]{3,24}$/.test(name)) {
          fail(400, "AccountNameInvalid", `${name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.`);
        }
        const taken = state.ofType(ACCOUNT_TYPE).find((r) => r.name === name && r.id.toLowerCase() !== accountId(a).toLowerCase());
        if (taken) fail(409, "StorageAccountAlreadyTaken", `The storage account named ${name} is already taken.`);
        const body = a.body<{ location?: string; kind?: string; sku?: { name?: string }; tags?: Record<string, string>; properties?: Record<string, unknown> }>();
        const location = arm.location(body, ACCOUNT_TYPE);
        if (!body.sku?.name) fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'sku' not found in JSON.'.");
        if (!body.kind || !KINDS.includes(body.kind)) {
          fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'The value '${body.kind ?? ""}' of 'kind' is invalid; expected one of ${KINDS.join(", ")}.'.`);
        }
        const existing = state.getResource(accountId(a));
        const given = body.properties ?? {};
        const blob = ctx.azurite ? `${ctx.azurite.blobEndpoint}/` : `https://${name}.blob.core.windows.net/`;
        // Every StorageV2 account has a static website endpoint (the website itself is off until
        // Set Blob Service Properties switches it on); the sandbox's is sandbox/services/storage/static-website.mts.
        const web = ctx.endpoints.web ? `${ctx.endpoints.web}/` : `https://${name}.z6.web.core.windows.net/`;
        const r: ArmResource = {
          id: existing?.id ?? `${rg.id}/providers/${ACCOUNT_TYPE}/${name}`,
          name, type: ACCOUNT_TYPE, location, kind: body.kind,
          sku: { name: body.sku.name, tier: body.sku.name.startsWith("Premium") ? "Premium" : "Standard" },
          tags: tagsOf(body) ?? existing?.tags ?? {},
          properties: {
            ...(existing?.properties ?? {}),
            ...given,
            // New accounts disallow anonymous blob access unless the request allows it (Azure's default since 2023).
            allowBlobPublicAccess: (given.allowBlobPublicAccess ?? existing?.properties.allowBlobPublicAccess) === true,
            minimumTlsVersion: given.minimumTlsVersion ?? existing?.properties.minimumTlsVersion ?? "TLS1_2",
            supportsHttpsTrafficOnly: given.supportsHttpsTrafficOnly ?? existing?.properties.supportsHttpsTrafficOnly ?? true,
            ...(body.kind === "StorageV2" || body.kind === "BlobStorage" ? { accessTier: given.accessTier ?? "Hot" } : {}),
            provisioningState: "Succeeded",
            creationTime: existing?.properties.creationTime ?? new Date(state.now()).toISOString(),
            primaryEndpoints: { blob, ...(body.kind === "StorageV2" || body.kind === "BlockBlobStorage" ? { web } : {}) },
            primaryLocation: location,
            statusOfPrimary: "available",
          },
          systemData: systemData(a.caller, state.now(), existing?.systemData as Record<string, unknown> | undefined),
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        state.putResource(r);
        // A changed allowBlobPublicAccess changes what anonymous callers may read in existing containers.
        for (const c of containersOf(r)) await applyInAzurite(c.name, effectiveAccess(r, c));
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
    arm.route({
      method: "GET", path: `${ACCOUNT_BASE}/:accountName`, type: ACCOUNT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, accountId(a), `${ACCOUNT_TYPE}/read`);
        return ok(toWire(accountOr404(a)));
      },
    }),
    arm.route({
      method: "DELETE", path: `${ACCOUNT_BASE}/:accountName`, type: ACCOUNT_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, accountId(a), `${ACCOUNT_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const r = state.getResource(accountId(a));
        if (!r || r.type !== ACCOUNT_TYPE) return ok(undefined, 204);
        const mine = containersOf(r);
        state.deleteResource(r.id);
        // Only containers no other account also claims leave Azurite's shared namespace.
        const claimed = new Set(state.ofType(CONTAINER_TYPE).map((c) => c.name));
        for (const c of mine) if (!claimed.has(c.name)) await (await azurite()).getContainerClient(c.name).deleteIfExists();
        return ok(undefined, 200);
      },
    }),
    arm.route({
      method: "POST", path: `${ACCOUNT_BASE}/:accountName/listKeys`, type: ACCOUNT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, accountId(a), `${ACCOUNT_TYPE}/listkeys/action`);
        const r = accountOr404(a);
        if (!ctx.azurite) fail(503, "ServiceUnavailable", "Blob storage is not running in this sandbox (it was started without Azurite).");
        // Azurite's account has one key; both of Azure's key slots show it.
        const creationTime = String(r.properties.creationTime);
        return ok({
          keys: ["key1", "key2"].map((keyName) => ({ keyName, value: ctx.azurite!.accountKey, permissions: "FULL", creationTime })),
        });
      },
    }),

    // ---- blob service
    arm.route({
      method: "GET", path: `${ACCOUNT_BASE}/:accountName/blobServices`, type: BLOB_SERVICE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, accountId(a), `${BLOB_SERVICE_TYPE}/read`);
        const acct = accountOr404(a);
        return ok({ value: [blobServiceWire(state, acct)] });
      },
    }),
    arm.route({
      method: "GET", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName`, type: BLOB_SERVICE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, `${accountId(a)}/blobServices/default`, `${BLOB_SERVICE_TYPE}/read`);
        requireDefault(a);
        return ok(blobServiceWire(state, accountOr404(a)));
      },
    }),
    arm.route({
      method: "PUT", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName`, type: BLOB_SERVICE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, `${accountId(a)}/blobServices/default`, `${BLOB_SERVICE_TYPE}/write`);
        requireDefault(a);
        const acct = accountOr404(a);
        const body = a.body<{ properties?: Record<string, unknown> }>();
        const id = `${acct.id}/blobServices/default`;
        const existing = state.getResource(id);
        state.putResource({
          id, name: "default", type: BLOB_SERVICE_TYPE,
          properties: { ...(existing?.properties ?? {}), ...(body.properties ?? {}) },
          tenantId: acct.tenantId, subscriptionId: acct.subscriptionId, resourceGroup: acct.resourceGroup,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        });
        return ok(blobServiceWire(state, acct));
      },
    }),

    // ---- containers
    arm.route({
      method: "GET", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName/containers`, type: CONTAINER_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, `${accountId(a)}/blobServices/default`, `${CONTAINER_TYPE}/read`);
        requireDefault(a);
        const acct = accountOr404(a);
        return ok({ value: containersOf(acct).sort((x, y) => x.name.localeCompare(y.name)).map(toWire) });
      },
    }),
    arm.route({
      method: "PUT", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName/containers/:containerName`, type: CONTAINER_TYPE,
      handler: async (a) => {
        const id = `${accountId(a)}/blobServices/default/containers/${a.p.containerName}`;
        arm.authorize(a.caller, id, `${CONTAINER_TYPE}/write`);
        requireDefault(a);
        const acct = accountOr404(a);
        const name = a.p.containerName;
        if (!/^(?=.{3,63}$)[a-z0-9](?!.*--)[a-z0-9-]*[a-z0-9]$/.test(name)) {
          fail(400, "ContainerOperationFailure", "The specified resource name contains invalid characters.");
        }
        const body = a.body<{ properties?: { publicAccess?: string; metadata?: Record<string, string> } }>();
        const publicAccess = body.properties?.publicAccess ?? "None";
        if (!PUBLIC_ACCESS.includes(publicAccess)) {
          fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'The value '${publicAccess}' of 'publicAccess' is invalid; expected None, Blob or Container.'.`);
        }
        const existing = state.getResource(id);
        const now = new Date(state.now()).toISOString();
        const r: ArmResource = {
          id: existing?.id ?? `${acct.id}/blobServices/default/containers/${name}`,
          name, type: CONTAINER_TYPE,
          etag: `"0x${state.now().toString(16).toUpperCase()}"`,
          // The requested setting is recorded; with allowBlobPublicAccess false Azure keeps but does not
          // honour it, and so does Azurite here (the container is made private). Real Azure may instead
          // refuse the request with PublicAccessNotPermitted (unconfirmed).
          properties: {
            publicAccess, metadata: body.properties?.metadata ?? {},
            leaseStatus: "Unlocked", leaseState: "Available", hasImmutabilityPolicy: false, hasLegalHold: false,
            defaultEncryptionScope: "$account-encryption-key", denyEncryptionScopeOverride: false,
            deleted: false, remainingRetentionDays: 0, lastModifiedTime: now,
          },
          tenantId: acct.tenantId, subscriptionId: acct.subscriptionId, resourceGroup: acct.resourceGroup,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        await applyInAzurite(name, effectiveAccess(acct, r));
        state.putResource(r);
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
    arm.route({
      method: "GET", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName/containers/:containerName`, type: CONTAINER_TYPE,
      handler: (a) => {
        const id = `${accountId(a)}/blobServices/default/containers/${a.p.containerName}`;
        arm.authorize(a.caller, id, `${CONTAINER_TYPE}/read`);
        requireDefault(a);
        accountOr404(a);
        const r = state.getResource(id);
        if (!r || r.type !== CONTAINER_TYPE) fail(404, "ContainerNotFound", "The specified container does not exist.");
        return ok(toWire(r));
      },
    }),
    arm.route({
      method: "DELETE", path: `${ACCOUNT_BASE}/:accountName/blobServices/:blobServicesName/containers/:containerName`, type: CONTAINER_TYPE,
      handler: async (a) => {
        const id = `${accountId(a)}/blobServices/default/containers/${a.p.containerName}`;
        arm.authorize(a.caller, id, `${CONTAINER_TYPE}/delete`);
        requireDefault(a);
        accountOr404(a);
        const r = state.getResource(id);
        if (!r || r.type !== CONTAINER_TYPE) return ok(undefined, 204);
        state.deleteResource(r.id);
        if (!state.ofType(CONTAINER_TYPE).some((c) => c.name === r.name)) await (await azurite()).getContainerClient(r.name).deleteIfExists();
        return ok(undefined, 200);
      },
    }),
  ];
}

function blobServiceWire(state: Arm["state"], acct: ArmResource): Record<string, unknown> {
  const stored = state.getResource(`${acct.id}/blobServices/default`);
  return {
    id: `${acct.id}/blobServices/default`,
    name: "default",
    type: BLOB_SERVICE_TYPE,
    sku: acct.sku,
    properties: { cors: { corsRules: [] }, deleteRetentionPolicy: { enabled: false }, ...(stored?.properties ?? {}) },
  };
}
