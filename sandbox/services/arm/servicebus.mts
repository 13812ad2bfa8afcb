// Microsoft.ServiceBus through ARM: namespaces (each opens its own data-plane port; its
// serviceBusEndpoint is that port's URL) and their queues, with the properties a client reads
// (lockDuration, maxDeliveryCount, message counts). Messages live in servicebus/store.mts.
import type { Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import { Arm, fail, ok, rgId, subscriptionScope, systemData, tagsOf, toWire, type ArmCall } from "./core.mts";
import { namespaceStore, newQueue, parseDurationMs, sweepLocks, type SbQueue } from "../servicebus/store.mts";

const NS_TYPE = "Microsoft.ServiceBus/namespaces";
const QUEUE_TYPE = "Microsoft.ServiceBus/namespaces/queues";
const NS_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.ServiceBus/namespaces";
const SKUS = ["Basic", "Standard", "Premium"];
/** Service Bus defaults (ARM reference of Microsoft.ServiceBus/namespaces/queues). */
const DEFAULT_LOCK_DURATION = "PT1M";
const DEFAULT_MAX_DELIVERY_COUNT = 10;
const MIN_LOCK_MS = 5_000;
const MAX_LOCK_MS = 5 * 60_000;

export function serviceBusRoutes(arm: Arm): Route[] {
  const { state, ctx } = arm;
  const store = namespaceStore(state);

  const nsId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${NS_TYPE}/${a.p.namespaceName}`;
  const queueId = (a: ArmCall) => `${nsId(a)}/queues/${a.p.queueName}`;

  const nsOr404 = (a: ArmCall, parent = false): ArmResource => {
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const r = state.getResource(nsId(a));
    if (!r || r.type !== NS_TYPE) {
      if (parent) fail(404, "ParentResourceNotFound", `Can not perform requested operation on nested resource. Parent resource '${a.p.namespaceName}' not found.`);
      arm.notFound(NS_TYPE, a.p.namespaceName, a.p.resourceGroupName);
    }
    return r;
  };

  /** The queue's wire view with live message counts. */
  const queueWire = (r: ArmResource): Record<string, unknown> => {
    const ns = store.get(r.id.split("/queues/")[0].toLowerCase());
    const q = ns?.queues.get(r.name.toLowerCase());
    if (q) sweepLocks(q, state.now());
    const active = q?.messages.length ?? 0;
    const dead = q?.deadLetters.length ?? 0;
    return {
      ...toWire(r),
      properties: {
        ...r.properties,
        messageCount: active + dead,
        countDetails: { activeMessageCount: active, deadLetterMessageCount: dead, scheduledMessageCount: 0, transferMessageCount: 0, transferDeadLetterMessageCount: 0 },
      },
    };
  };

  const putNamespace = async (a: ArmCall) => {
    const id = nsId(a);
    arm.authorize(a.caller, id, `${NS_TYPE}/write`);
    const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
    const name = a.p.namespaceName;
    if (!/^[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]$/.test(name) || /-(sb|mgmt)$/i.test(name)) {
      fail(400, "BadRequest", `The specified namespace name '${name}' is invalid. It must be 6-50 characters of letters, numbers and hyphens, start with a letter, end with a letter or number, and not end with '-sb' or '-mgmt'.`);
    }
    const taken = state.ofType(NS_TYPE).find((r) => r.name.toLowerCase() === name.toLowerCase() && r.id.toLowerCase() !== id.toLowerCase());
    if (taken) fail(409, "Conflict", `Namespace name '${name}' is already taken: Service Bus namespace names are globally unique.`);
    const body = a.body<{ location?: string; tags?: Record<string, string>; sku?: { name?: unknown }; properties?: Record<string, unknown> }>();
    const location = arm.location(body, NS_TYPE);
    const skuName = String(body.sku?.name ?? "Standard");
    const sku = SKUS.find((s) => s.toLowerCase() === skuName.toLowerCase());
    if (!sku) fail(400, "BadRequest", `The SKU '${skuName}' is invalid; use Basic, Standard or Premium.`);
    const existing = state.getResource(id);
    const fullId = existing?.id ?? `${rg.id}/providers/${NS_TYPE}/${name}`;
    const endpoint = await ctx.serviceBus.openNamespace({ id: fullId, name, tenantId: a.sub.tenantId });
    const now = new Date(state.now()).toISOString();
    const r: ArmResource = {
      id: fullId, name: existing?.name ?? name, type: NS_TYPE, location,
      sku: { name: sku, tier: sku },
      tags: tagsOf(body) ?? existing?.tags ?? {},
      properties: {
        minimumTlsVersion: "1.2",
        publicNetworkAccess: "Enabled",
        disableLocalAuth: false,
        zoneRedundant: false,
        ...(body.properties ?? {}),
        provisioningState: "Succeeded",
        status: "Active",
        createdAt: existing?.properties.createdAt ?? now,
        updatedAt: now,
        serviceBusEndpoint: endpoint,
        metricId: `${a.sub.subscriptionId}:${name}`,
      },
      systemData: systemData(a.caller, state.now(), existing?.systemData as Record<string, unknown> | undefined),
      tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
      createdAtMs: existing?.createdAtMs ?? state.now(),
    };
    state.putResource(r);
    return ok(toWire(r), existing ? 200 : 201);
  };

  const putQueue = (a: ArmCall) => {
    const id = queueId(a);
    arm.authorize(a.caller, id, `${QUEUE_TYPE}/write`);
    const ns = nsOr404(a, true);
    const name = a.p.queueName;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/.test(name) || /[._-]$/.test(name)) {
      fail(400, "BadRequest", `The queue name '${name}' is invalid. It can contain letters, numbers, periods, hyphens and underscores, must start and end with a letter or number, and be at most 260 characters.`);
    }
    const body = a.body<{ properties?: Record<string, unknown> }>();
    const given = body.properties ?? {};
    const lockDuration = String(given.lockDuration ?? DEFAULT_LOCK_DURATION);
    const lockMs = parseDurationMs(lockDuration);
    if (lockMs === undefined || lockMs < MIN_LOCK_MS || lockMs > MAX_LOCK_MS) {
      fail(400, "BadRequest", `The lockDuration '${lockDuration}' is invalid: it must be an ISO 8601 duration from PT5S to PT5M.`);
    }
    const maxDeliveryCount = given.maxDeliveryCount ?? DEFAULT_MAX_DELIVERY_COUNT;
    if (typeof maxDeliveryCount !== "number" || !Number.isInteger(maxDeliveryCount) || maxDeliveryCount < 1) {
      fail(400, "BadRequest", "The maxDeliveryCount must be an integer of at least 1.");
    }
    if (given.requiresSession === true) fail(400, "BadRequest", "Session-enabled queues (requiresSession) are not supported by the sandbox.");
    const existing = state.getResource(id);
    const fullId = existing?.id ?? `${ns.id}/queues/${name}`;
    const data = store.get(ns.id.toLowerCase())!;
    let q: SbQueue | undefined = data.queues.get(name.toLowerCase());
    if (!q) {
      q = newQueue(fullId, existing?.name ?? name, { lockDurationMs: lockMs, maxDeliveryCount });
      data.queues.set(name.toLowerCase(), q);
    } else {
      q.lockDurationMs = lockMs;
      q.maxDeliveryCount = maxDeliveryCount;
    }
    const now = new Date(state.now()).toISOString();
    const r: ArmResource = {
      id: fullId, name: existing?.name ?? name, type: QUEUE_TYPE, location: ns.location,
      properties: {
        maxSizeInMegabytes: 1024,
        requiresDuplicateDetection: false,
        requiresSession: false,
        defaultMessageTimeToLive: "P14D",
        deadLetteringOnMessageExpiration: false,
        enableBatchedOperations: true,
        enablePartitioning: false,
        enableExpress: false,
        ...given,
        lockDuration,
        maxDeliveryCount,
        status: "Active",
        createdAt: existing?.properties.createdAt ?? now,
        updatedAt: now,
        accessedAt: now,
      },
      tenantId: ns.tenantId, subscriptionId: ns.subscriptionId, resourceGroup: ns.resourceGroup,
      createdAtMs: existing?.createdAtMs ?? state.now(),
    };
    state.putResource(r);
    return ok(queueWire(r), existing ? 200 : 201);
  };

  const queueOr404 = (a: ArmCall): ArmResource => {
    nsOr404(a);
    const r = state.getResource(queueId(a));
    if (!r || r.type !== QUEUE_TYPE) arm.notFound(QUEUE_TYPE, `${a.p.namespaceName}/${a.p.queueName}`, a.p.resourceGroupName);
    return r;
  };

  return [
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.ServiceBus/namespaces", type: NS_TYPE,
      handler: (a) => ok({
        value: state.ofTypeUnder(NS_TYPE, subscriptionScope(a.sub.subscriptionId))
          .filter((r) => arm.allowed(a.caller.oid, r.id, `${NS_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
      }),
    }),
    arm.route({
      method: "GET", path: NS_BASE, type: NS_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, rgId(a.sub.subscriptionId, a.p.resourceGroupName), `${NS_TYPE}/read`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        return ok({ value: state.ofTypeUnder(NS_TYPE, rg.id).sort((x, y) => x.id.localeCompare(y.id)).map(toWire) });
      },
    }),
    arm.route({ method: "PUT", path: `${NS_BASE}/:namespaceName`, type: NS_TYPE, handler: putNamespace }),
    arm.route({
      method: "GET", path: `${NS_BASE}/:namespaceName`, type: NS_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, nsId(a), `${NS_TYPE}/read`);
        return ok(toWire(nsOr404(a)));
      },
    }),
    arm.route({
      method: "DELETE", path: `${NS_BASE}/:namespaceName`, type: NS_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, nsId(a), `${NS_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const r = state.getResource(nsId(a));
        if (!r || r.type !== NS_TYPE) return ok(undefined, 204);
        state.deleteResource(r.id);
        await ctx.serviceBus.closeNamespace(r.id);
        return ok(undefined, 200);
      },
    }),
    arm.route({
      method: "GET", path: `${NS_BASE}/:namespaceName/queues`, type: QUEUE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, nsId(a), `${QUEUE_TYPE}/read`);
        const ns = nsOr404(a);
        return ok({ value: state.ofTypeUnder(QUEUE_TYPE, ns.id).sort((x, y) => x.id.localeCompare(y.id)).map(queueWire) });
      },
    }),
    arm.route({ method: "PUT", path: `${NS_BASE}/:namespaceName/queues/:queueName`, type: QUEUE_TYPE, handler: putQueue }),
    arm.route({
      method: "GET", path: `${NS_BASE}/:namespaceName/queues/:queueName`, type: QUEUE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, queueId(a), `${QUEUE_TYPE}/read`);
        return ok(queueWire(queueOr404(a)));
      },
    }),
    arm.route({
      method: "DELETE", path: `${NS_BASE}/:namespaceName/queues/:queueName`, type: QUEUE_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, queueId(a), `${QUEUE_TYPE}/delete`);
        nsOr404(a);
        const r = state.getResource(queueId(a));
        if (!r || r.type !== QUEUE_TYPE) return ok(undefined, 204);
        state.deleteResource(r.id);
        store.get(nsId(a).toLowerCase())?.queues.delete(a.p.queueName.toLowerCase());
        return ok(undefined, 200);
      },
    }),
  ];
}
