// Microsoft.ManagedIdentity: user-assigned identities and their federated identity credentials,
// with Entra's FIC rules (docs/azure-behaviour.md §2.1, §5.3) and the 409 on concurrent writes to one identity.
import type { Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import { Arm, fail, newGuid, ok, rgId, subscriptionScope, systemData, tagsOf, toWire, type ArmCall } from "./core.mts";

const UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities";
const FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";
const UAMI_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.ManagedIdentity/userAssignedIdentities";

/** Entra's limit of credentials per identity (docs/azure-behaviour.md §2.1). */
const MAX_FICS_PER_IDENTITY = 20;
const MAX_FIC_FIELD_CHARS = 600;
/**
 * How long a FIC write holds its identity. Azure refuses a second write to the same identity while
 * one is in flight (409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity); a
 * short hold makes truly concurrent requests collide here too, as they do there.
 */
const FIC_WRITE_HOLD_MS = 50;
/** Regions without UAMI FIC support (docs/azure-behaviour.md §2.1; the list changes over time). */
const FIC_UNSUPPORTED_REGIONS = ["eastasia", "israelcentral", "italynorth", "malaysiasouth", "mexicocentral", "qatarcentral", "spaincentral"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bad(message: string): never {
  fail(400, "BadRequest", message);
}

export function identityRoutes(arm: Arm): Route[] {
  const { state } = arm;
  const inFlight = new Set<string>();

  const uamiId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${UAMI_TYPE}/${a.p.resourceName}`;
  const ficId = (a: ArmCall) => `${uamiId(a)}/federatedIdentityCredentials/${a.p.federatedIdentityCredentialResourceName}`;

  const requireRg = (a: ArmCall) => arm.rgOr404(a.sub, a.p.resourceGroupName);

  /** The identity a FIC hangs on, or `missing` for the error of the operation. */
  const parentOf = (a: ArmCall, missing: "parent" | "resource"): ArmResource => {
    const uami = state.getResource(uamiId(a));
    if (!uami || uami.type !== UAMI_TYPE) {
      if (missing === "parent") fail(404, "ParentResourceNotFound", `Can not perform requested operation on nested resource. Parent resource '${a.p.resourceName}' not found.`);
      arm.notFound(UAMI_TYPE, a.p.resourceName, a.p.resourceGroupName);
    }
    return uami;
  };

  /** Runs one FIC write while holding its identity; a concurrent write gets Azure's 409. */
  const exclusive = async <T,>(uami: ArmResource, fn: () => T): Promise<T> => {
    const key = uami.id.toLowerCase();
    if (inFlight.has(key)) {
      fail(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
        `Too many Federated Identity Credentials are written concurrently for the managed identity '${key}'. Concurrent Federated Identity Credentials writes under the same managed identity are not supported.`);
    }
    inFlight.add(key);
    try {
      await sleep(FIC_WRITE_HOLD_MS);
      return fn();
    } finally {
      inFlight.delete(key);
    }
  };

  const validateFic = (a: ArmCall, uami: ArmResource, body: Record<string, unknown>): { issuer: string; subject: string; audiences: string[] } => {
    const name = a.p.federatedIdentityCredentialResourceName;
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/.test(name)) {
      bad(`The federated identity credential name '${name}' is invalid. It must be 3 to 120 characters long, start with a letter or digit, and contain only letters, digits, '-' and '_'.`);
    }
    const props = body.properties as Record<string, unknown> | undefined;
    if (!props || typeof props !== "object") bad("The request body must contain 'properties' with 'issuer', 'subject' and 'audiences'.");
    const { issuer, subject, audiences } = props as { issuer?: unknown; subject?: unknown; audiences?: unknown };
    if (typeof issuer !== "string" || !issuer) bad("The 'issuer' of a federated identity credential is required.");
    if (issuer.length > MAX_FIC_FIELD_CHARS) bad(`The 'issuer' of a federated identity credential can have at most ${MAX_FIC_FIELD_CHARS} characters.`);
    let url: URL | undefined;
    try {
      url = new URL(issuer);
    } catch { /* below */ }
    const httpOk = state.options.entra.allowHttpIssuer && url?.protocol === "http:";
    if (!url || (url.protocol !== "https:" && !httpOk)) bad(`The issuer '${issuer}' is not a valid URL with the https scheme.`);
    if (typeof subject !== "string" || !subject) bad("The 'subject' of a federated identity credential is required.");
    if (subject.length > MAX_FIC_FIELD_CHARS) bad(`The 'subject' of a federated identity credential can have at most ${MAX_FIC_FIELD_CHARS} characters.`);
    if (!Array.isArray(audiences) || audiences.length !== 1 || typeof audiences[0] !== "string" || !audiences[0]) {
      bad("Federated identity credentials must have exactly one audience.");
    }
    if ((audiences[0] as string).length > MAX_FIC_FIELD_CHARS) bad(`An audience of a federated identity credential can have at most ${MAX_FIC_FIELD_CHARS} characters.`);
    // Only GitHub/GitLab/Terraform Cloud issuers on app registrations support it; on a UAMI with a
    // custom issuer it is unconfirmed (docs/azure-behaviour.md §2.1) → refused.
    if (props.claimsMatchingExpression !== undefined && props.claimsMatchingExpression !== null) {
      bad("'claimsMatchingExpression' is not supported for federated identity credentials of user-assigned managed identities with this issuer.");
    }
    if (FIC_UNSUPPORTED_REGIONS.includes(String(uami.location))) {
      bad(`Federated identity credentials on user-assigned managed identities are not supported in region '${uami.location}'.`);
    }
    const self = ficId(a).toLowerCase();
    const siblings = state.federatedCredentialsOf(uami.id).filter((f) => f.id.toLowerCase() !== self);
    if (siblings.length >= MAX_FICS_PER_IDENTITY) {
      bad(`A managed identity can have at most ${MAX_FICS_PER_IDENTITY} federated identity credentials; '${uami.name}' already has ${siblings.length}.`);
    }
    if (siblings.some((f) => f.properties.issuer === issuer && f.properties.subject === subject)) {
      bad("Issuer and subject combination already exists for this Managed Identity.");
    }
    return { issuer, subject, audiences: [audiences[0] as string] };
  };

  const paged = (a: ArmCall, items: Record<string, unknown>[]) => {
    const top = a.c.url.searchParams.get("$top");
    const skip = Number(a.c.url.searchParams.get("$skiptoken") ?? "0");
    // Without $top every item comes in one page, also when there is none.
    const n = top === null ? Math.max(items.length, 1) : Number(top);
    if (!Number.isInteger(n) || n < 1) bad(`The value '${top}' of $top is invalid.`);
    if (!Number.isInteger(skip) || skip < 0) bad("The $skiptoken is invalid.");
    const page = items.slice(skip, skip + n);
    let nextLink: string | undefined;
    if (skip + n < items.length) {
      const u = new URL(arm.baseUrlAsCalled(a.c) + a.c.url.pathname + a.c.url.search);
      u.searchParams.set("$skiptoken", String(skip + n));
      nextLink = u.toString();
    }
    return ok({ value: page, ...(nextLink ? { nextLink } : {}) });
  };

  return [
    // ---- identities
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.ManagedIdentity/userAssignedIdentities", type: UAMI_TYPE,
      handler: (a) => ok({
        value: state.ofTypeUnder(UAMI_TYPE, subscriptionScope(a.sub.subscriptionId))
          .filter((r) => arm.allowed(a.caller.oid, r.id, `${UAMI_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
      }),
    }),
    arm.route({
      method: "GET", path: UAMI_BASE, type: UAMI_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, rgId(a.sub.subscriptionId, a.p.resourceGroupName), `${UAMI_TYPE}/read`);
        const rg = requireRg(a);
        return ok({
          value: state.ofTypeUnder(UAMI_TYPE, rg.id).sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
        });
      },
    }),
    arm.route({
      method: "PUT", path: `${UAMI_BASE}/:resourceName`, type: UAMI_TYPE,
      handler: (a) => {
        const id = uamiId(a);
        arm.authorize(a.caller, id, `${UAMI_TYPE}/write`);
        const rg = requireRg(a);
        const name = a.p.resourceName;
        if (!/^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$/.test(name)) {
          fail(400, "InvalidResourceName", `Resource name '${name}' is invalid. The name can be between 3 and 128 characters long, must start with a letter or number, and may contain only letters, numbers, hyphens and underscores.`);
        }
        const body = a.body<{ location?: string; tags?: Record<string, string> }>();
        const location = arm.location(body, UAMI_TYPE);
        const existing = state.getResource(id);
        const props = existing?.properties ?? { isolationScope: "None", tenantId: a.sub.tenantId, principalId: newGuid(), clientId: newGuid() };
        const r: ArmResource = {
          id: existing?.id ?? `${rg.id}/providers/${UAMI_TYPE}/${name}`,
          name: existing?.name ?? name,
          type: UAMI_TYPE,
          location,
          tags: tagsOf(body) ?? existing?.tags ?? {},
          properties: props,
          systemData: systemData(a.caller, state.now(), existing?.systemData as Record<string, unknown> | undefined),
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        state.putResource(r);
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
    arm.route({
      method: "PATCH", path: `${UAMI_BASE}/:resourceName`, type: UAMI_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, uamiId(a), `${UAMI_TYPE}/write`);
        requireRg(a);
        const r = state.getResource(uamiId(a));
        if (!r || r.type !== UAMI_TYPE) arm.notFound(UAMI_TYPE, a.p.resourceName, a.p.resourceGroupName);
        const body = a.body<{ tags?: Record<string, string> }>();
        r.tags = tagsOf(body) ?? r.tags;
        r.systemData = systemData(a.caller, state.now(), r.systemData as Record<string, unknown>);
        return ok(toWire(r));
      },
    }),
    arm.route({
      method: "GET", path: `${UAMI_BASE}/:resourceName`, type: UAMI_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, uamiId(a), `${UAMI_TYPE}/read`);
        requireRg(a);
        const r = state.getResource(uamiId(a));
        if (!r || r.type !== UAMI_TYPE) arm.notFound(UAMI_TYPE, a.p.resourceName, a.p.resourceGroupName);
        return ok(toWire(r));
      },
    }),
    arm.route({
      method: "DELETE", path: `${UAMI_BASE}/:resourceName`, type: UAMI_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, uamiId(a), `${UAMI_TYPE}/delete`);
        requireRg(a);
        const r = state.getResource(uamiId(a));
        if (!r || r.type !== UAMI_TYPE) return ok(undefined, 204);
        state.deleteResource(r.id);
        return ok(undefined, 200);
      },
    }),

    // ---- federated identity credentials
    arm.route({
      method: "GET", path: `${UAMI_BASE}/:resourceName/federatedIdentityCredentials`, type: FIC_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, uamiId(a), `${FIC_TYPE}/read`);
        requireRg(a);
        const uami = parentOf(a, "resource");
        const items = state.federatedCredentialsOf(uami.id).sort((x, y) => x.createdAtMs - y.createdAtMs || x.name.localeCompare(y.name)).map(toWire);
        return paged(a, items);
      },
    }),
    arm.route({
      method: "PUT", path: `${UAMI_BASE}/:resourceName/federatedIdentityCredentials/:federatedIdentityCredentialResourceName`, type: FIC_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, ficId(a), `${FIC_TYPE}/write`);
        requireRg(a);
        const uami = parentOf(a, "parent");
        const body = a.body();
        return await exclusive(uami, () => {
          const props = validateFic(a, uami, body);
          const existing = state.getResource(ficId(a));
          const r: ArmResource = {
            id: existing?.id ?? `${uami.id}/federatedIdentityCredentials/${a.p.federatedIdentityCredentialResourceName}`,
            name: existing?.name ?? a.p.federatedIdentityCredentialResourceName,
            type: FIC_TYPE,
            properties: props,
            systemData: systemData(a.caller, state.now(), existing?.systemData as Record<string, unknown> | undefined),
            tenantId: uami.tenantId, subscriptionId: uami.subscriptionId, resourceGroup: uami.resourceGroup,
            // Entra's propagation-delay option counts from here (docs/azure-behaviour.md §2.1).
            createdAtMs: existing?.createdAtMs ?? state.now(),
          };
          state.putResource(r);
          return ok(toWire(r), existing ? 200 : 201);
        });
      },
    }),
    arm.route({
      method: "GET", path: `${UAMI_BASE}/:resourceName/federatedIdentityCredentials/:federatedIdentityCredentialResourceName`, type: FIC_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, ficId(a), `${FIC_TYPE}/read`);
        requireRg(a);
        parentOf(a, "resource");
        const r = state.getResource(ficId(a));
        if (!r || r.type !== FIC_TYPE) {
          arm.notFound(FIC_TYPE, `${a.p.resourceName}/${a.p.federatedIdentityCredentialResourceName}`, a.p.resourceGroupName);
        }
        return ok(toWire(r));
      },
    }),
    arm.route({
      method: "DELETE", path: `${UAMI_BASE}/:resourceName/federatedIdentityCredentials/:federatedIdentityCredentialResourceName`, type: FIC_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, ficId(a), `${FIC_TYPE}/delete`);
        requireRg(a);
        const uami = state.getResource(uamiId(a));
        if (!uami || uami.type !== UAMI_TYPE) return ok(undefined, 204);
        return await exclusive(uami, () => ok(undefined, state.deleteResource(ficId(a)) ? 200 : 204));
      },
    }),
  ];
}
