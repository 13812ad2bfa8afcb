// The sandbox's admin API (plain HTTP): the world, recorded usage events and tokens, request
// counters, fault injection, behaviour switches, the clock, and the az stand-in's back end.
import { HttpReplyError, parseJsonBody, parseJsonObject, type FaultSpec, type Reply, type RouteContext, type ServiceDef } from "../core/http.mts";
import { idKey, mergeOptions, scopeContains, type Subscription } from "../core/state.mts";
import type { SandboxContext } from "../core/context.mts";
import { vaultStore } from "./keyvault/store.mts";
import { listAcceptedEvents } from "./metering/usage.mts";
import { readReportOverride, reportOverrides } from "./metering/report.mts";
import { appDirectory } from "./entra/applications.mts";
import { namespaceStore, sweepLocks, type SbMessage } from "./servicebus/store.mts";
import { containerAppsAdminRoutes } from "./jobs/admin.mts";

/** A message as the admin API shows it: body as UTF-8 text, properties, delivery state. */
function _messageView(m: SbMessage) {
  return {
    sequenceNumber: m.sequenceNumber,
    messageId: m.messageId,
    body: m.body.toString("utf8"),
    contentType: m.contentType ?? null,
    label: m.sender.Label ?? null,
    correlationId: m.sender.CorrelationId ?? null,
    userProperties: m.userProperties,
    deliveryCount: m.deliveryCount,
    locked: m.lock !== undefined,
    enqueuedTimeUtc: new Date(m.enqueuedAtMs).toISOString(),
    ...(m.deadLetterReason ? { deadLetterReason: m.deadLetterReason } : {}),
  };
}

const bad = (message: string): Reply => ({ status: 400, body: { error: { code: "BadRequest", message } } });

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new HttpReplyError(bad(err.message));
    throw err;
  }
}

/** The back end of the az stand-in: who is signed in, which subscription is selected, user tokens. */
export function createAzContext(ctx: SandboxContext) {
  const { state, tokens } = ctx;
  const user = state.seed.isv.user;
  // A subscription outside the ISV's tenant is visible when the user holds a role at one of its
  // resources: a role assignment at or above a resource of it, or a managed app authorization
  // on an MRG holding a resource of it. Decided per subscription from the user's grants and the
  // indexes (a command naming --subscription looks at that one only, never at every customer).
  const p = user.objectId.toLowerCase();
  /** Whether a resource of subscription `subId` lies at or beneath `scope`. */
  const holdsResourceOf = (scope: string, subId: string): boolean => {
    const s = idKey(scope);
    const subScope = `/subscriptions/${subId.toLowerCase()}`;
    if (s === "" || scopeContains(s, subScope)) return state.resourcesUnder(subScope).some((r) => r.subscriptionId === subId);
    if (!scopeContains(subScope, s)) return false;
    return state.getResource(s)?.subscriptionId === subId || state.resourcesUnder(s).some((r) => r.subscriptionId === subId);
  };
  const isGranted = (subId: string): boolean => {
    for (const ra of state.roleAssignmentsOf(p)) {
      if (holdsResourceOf(String((ra.properties as { scope?: string }).scope ?? ""), subId)) return true;
    }
    const subScope = `/subscriptions/${subId}`;
    // Apps whose MRG is in the subscription, or at or above it (an MRG id of "" covers everything).
    for (const app of new Set([...state.appsWithMrgUnder(subScope), ...state.appsCovering(subScope)])) {
      const mrg = String(app.properties.managedResourceGroupId ?? "");
      const auths = (app.properties.authorizations ?? []) as Array<{ principalId: string }>;
      if (auths.some((a) => a.principalId.toLowerCase() === p) && holdsResourceOf(mrg, subId)) return true;
    }
    return false;
  };
  const isVisible = (s: Subscription) => s.tenantId === state.seed.isv.tenantId || isGranted(s.subscriptionId);
  const visibleSubscriptions = () => [...state.subscriptions.values()].filter(isVisible);
  /** A visible subscription by id (one lookup) or by display name (any case for both). */
  const findSubscription = (idOrName: string): Subscription | undefined => {
    const byId = state.subscriptions.get(idOrName.toLowerCase());
    if (byId) return isVisible(byId) ? byId : undefined;
    const name = idOrName.toLowerCase();
    return visibleSubscriptions().find((s) => s.displayName.toLowerCase() === name);
  };
  return {
    armEndpoint: ctx.endpoints.arm,
    graphEndpoint: ctx.endpoints.graph,
    fetch: globalThis.fetch.bind(globalThis),
    async getUserToken(o: { resource: string; tenantId?: string }) {
      const tenantId = o.tenantId ?? state.seed.isv.tenantId;
      if (!state.tenants.has(tenantId)) throw new Error(`AADSTS90002: Tenant '${tenantId}' not found.`);
      const lifetimeS = state.options.entra.userTokenLifetimeS;
      const { token, claims } = await tokens.issue({
        tenantId,
        audience: o.resource,
        objectId: user.objectId,
        idtyp: "user",
        lifetimeS,
        grant: "az",
        extraClaims: { upn: user.upn, unique_name: user.upn, name: user.displayName, scp: "user_impersonation", amr: ["pwd"], appid: "04b07795-8ddb-461a-bbee-02f9e1bf7b46" },
      });
      return { accessToken: token, expiresOnEpochS: Number(claims.exp), tenantId };
    },
    account: {
      get() {
        const s = state.subscriptions.get(state.azSubscriptionId)!;
        return { subscriptionId: s.subscriptionId, subscriptionName: s.displayName, tenantId: s.tenantId, user: { name: user.upn, type: "user" as const } };
      },
      set(idOrName: string) {
        const s = findSubscription(idOrName);
        if (!s) throw new Error(`The subscription of '${idOrName}' doesn't exist in cloud 'AzureCloud'.`);
        state.azSubscriptionId = s.subscriptionId;
      },
    },
    listSubscriptions() {
      return visibleSubscriptions().map((s) => ({ subscriptionId: s.subscriptionId, name: s.displayName, tenantId: s.tenantId }));
    },
    findSubscription(idOrName: string) {
      const s = findSubscription(idOrName);
      return s && { subscriptionId: s.subscriptionId, name: s.displayName, tenantId: s.tenantId };
    },
  };
}

export function createAdminService(ctx: SandboxContext): ServiceDef {
  const { state, obs, tokens } = ctx;
  const json = (body: unknown, status = 200): Reply => ({ status, body });
  let azContext: ReturnType<typeof createAzContext> | undefined;
  /** What each webhook sink received, oldest first (in memory: a sink is for the test that posts to it). */
  const webhooks = new Map<string, Array<{ receivedAt: string; contentType: string | null; userAgent: string | null; body: unknown }>>();

  return {
    name: "admin",
    notFound: (c, allowed) =>
      allowed.length
        ? { status: 405, headers: { Allow: allowed.join(", ") }, body: { error: { code: "MethodNotAllowed", message: `${c.method} is not allowed here.` } } }
        : { status: 501, body: { error: { code: "NotImplemented", message: `The admin API has no route ${c.method} ${c.url.pathname}.` } } },
    routes: [
      { method: "GET", path: "/world", handler: () => json(state.summary()) },
      { method: "GET", path: "/metering/events", handler: () => json(listAcceptedEvents(state)) },
      { method: "GET", path: "/metering/report-overrides", handler: () => json(reportOverrides(state)) },
      {
        // Makes GET /api/usageEvents report other figures for a day's row than were sent (or a row nobody sent).
        method: "POST", path: "/metering/report-overrides", handler: (c) => {
          const body = parseJsonBody<unknown>(c, bad);
          const list = guard(() => (Array.isArray(body) ? body : [body]).map(readReportOverride));
          reportOverrides(state).push(...list);
          return json(list, 201);
        },
      },
      {
        method: "DELETE", path: "/metering/report-overrides", handler: () => {
          reportOverrides(state).length = 0;
          return { status: 204 };
        },
      },
      {
        // App registrations with their federated credentials, and service principals (Entra's directory).
        method: "GET", path: "/entra/applications", handler: () => {
          const dir = appDirectory(state);
          return json({
            applications: dir.list().map((a) => ({ ...a, fics: a.fics.map((f) => ({ ...f, createdAt: new Date(f.createdAtMs).toISOString() })) })),
            servicePrincipals: [...dir.servicePrincipals.values()],
          });
        },
      },
      { method: "GET", path: "/requests", handler: () => json(obs.counters) },
      {
        method: "DELETE", path: "/requests", handler: () => {
          obs.counters = {};
          return { status: 204 };
        },
      },
      { method: "GET", path: "/tokens", handler: () => json(tokens.issued) },
      // CPU seconds spent on work a real service does on its own hardware (Key Vault's signatures).
      { method: "GET", path: "/cpu", handler: () => json(obs.cpuSeconds) },
      {
        // Every queue (filter: ?namespace=NAME&queue=NAME): its messages, dead letters and completions.
        method: "GET", path: "/servicebus/queues", handler: (c) => {
          const nsName = c.url.searchParams.get("namespace")?.toLowerCase();
          const queueName = c.url.searchParams.get("queue")?.toLowerCase();
          const out = [];
          for (const ns of namespaceStore(state).values()) {
            if (nsName && ns.name.toLowerCase() !== nsName) continue;
            for (const q of ns.queues.values()) {
              if (queueName && q.name.toLowerCase() !== queueName) continue;
              sweepLocks(q, state.now());
              out.push({
                namespace: ns.name, namespaceId: ns.id, queue: q.name, queueId: q.id,
                lockDurationMs: q.lockDurationMs, maxDeliveryCount: q.maxDeliveryCount, completedCount: q.completedCount,
                messages: q.messages.map(_messageView), deadLetters: q.deadLetters.map(_messageView),
              });
            }
          }
          return json(out);
        },
      },
      {
        // Every secret of every vault (filter: ?vault=NAME), latest version first in `versions`.
        method: "GET", path: "/keyvault/secrets", handler: (c) => {
          const vaultName = c.url.searchParams.get("vault")?.toLowerCase();
          const out = [];
          for (const v of vaultStore(state).values()) {
            if (vaultName && v.name.toLowerCase() !== vaultName) continue;
            for (const s of v.secrets.values()) {
              out.push({
                vault: v.name, vaultId: v.id, name: s.name,
                value: s.versions.at(-1)!.value, contentType: s.versions.at(-1)!.contentType ?? null,
                versions: s.versions.map((x) => x.version).reverse(),
              });
            }
          }
          return json(out);
        },
      },
      {
        // A webhook sink (a Teams or Slack incoming webhook, a Logic App): takes any POST and
        // answers 200 "ok" as Slack does; GET lists what it received, JSON bodies parsed.
        method: "POST", path: "/webhooks/:name", handler: (c) => {
          const text = c.text();
          let body: unknown = text;
          if (/json/i.test(c.header("content-type") ?? "")) {
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
          }
          const received = webhooks.get(c.params.name) ?? [];
          received.push({
            receivedAt: new Date(state.now()).toISOString(), contentType: c.header("content-type") ?? null, userAgent: c.header("user-agent") ?? null, body,
          });
          webhooks.set(c.params.name, received);
          return { status: 200, headers: { "Content-Type": "text/plain" }, body: "ok" };
        },
      },
      { method: "GET", path: "/webhooks/:name", handler: (c) => json(webhooks.get(c.params.name) ?? []) },
      ...containerAppsAdminRoutes(ctx),
      { method: "GET", path: "/faults", handler: () => json(obs.faults) },
      {
        method: "POST", path: "/faults", handler: (c: RouteContext) => {
          // One fault or an array of them; each is checked (a JSON object) before any is added.
          const body = parseJsonBody<FaultSpec | FaultSpec[]>(c, bad);
          return json(guard(() => obs.addFaults(Array.isArray(body) ? body : [body])), 201);
        },
      },
      {
        method: "DELETE", path: "/faults", handler: () => {
          obs.faults = [];
          return { status: 204 };
        },
      },
      { method: "GET", path: "/options", handler: () => json(state.options) },
      {
        method: "PATCH", path: "/options", handler: (c) => {
          const patch = parseJsonObject(c, bad);
          state.options = guard(() => mergeOptions(state.options, patch));
          return json(state.options);
        },
      },
      {
        method: "POST", path: "/clock", handler: (c) => {
          const body = parseJsonObject<{ offsetMs?: unknown }>(c, bad);
          if (typeof body.offsetMs !== "number" || !Number.isFinite(body.offsetMs)) throw new HttpReplyError(bad("'offsetMs' must be a finite number."));
          state.clockOffsetMs = body.offsetMs;
          return json({ offsetMs: state.clockOffsetMs, now: new Date(state.now()).toISOString() });
        },
      },
      {
        method: "GET", path: "/role-assignments", handler: (c) => {
          const scope = c.url.searchParams.get("scope") ?? "";
          return json(state.ofType("Microsoft.Authorization/roleAssignments").filter((r) => scopeContains(scope, String(r.properties.scope ?? ""))));
        },
      },
      {
        method: "POST", path: "/az", handler: async (c) => {
          const body = parseJsonObject<{ argv?: unknown; cwd?: unknown; stdin?: unknown }>(c, bad);
          if (!Array.isArray(body.argv) || !body.argv.every((a) => typeof a === "string") || typeof body.cwd !== "string") {
            throw new HttpReplyError(bad("Expected {argv: string[], cwd: string, stdin?: string}."));
          }
          const { runAz } = await import("../az/commands.mts");
          azContext ??= createAzContext(ctx);
          azContext.armEndpoint = ctx.endpoints.arm;
          azContext.graphEndpoint = ctx.endpoints.graph;
          const result = await runAz(
            { argv: body.argv as string[], cwd: body.cwd, stdin: typeof body.stdin === "string" ? body.stdin : undefined },
            azContext,
          );
          return json(result);
        },
      },
    ],
  };
}
