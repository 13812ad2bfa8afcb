// The metering emulator's rules for one usage event (docs/azure-behaviour.md §1.2, §1.5, §1.7):
// reading the event, who may bill which managed app, the per-event checks in their order,
// and the first-write-wins ledger of accepted events (listAcceptedEvents: all of them, in order).
// No HTTP here; service.mts does the wire.
import { randomUUID } from "node:crypto";
import { scopeContains, type ArmResource, type SandboxState } from "../../core/state.mts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** One usage event as the client sent it (every field optional: the spec has no `required` list). */
export interface UsageEventInput {
  resourceId?: string;
  resourceUri?: string;
  quantity?: number;
  dimension?: string;
  /** Verbatim, echoed as sent. */
  effectiveStartTime?: string;
  planId?: string;
}

/** A body the real service could not even bind (wrong JSON type, unparseable date): a 400 for the whole request. */
export class UsageInputError extends Error {
  target: string;
  constructor(target: string, message: string) {
    super(message);
    this.name = "UsageInputError";
    this.target = target;
  }
}

const STRING_FIELDS = ["resourceId", "resourceUri", "dimension", "effectiveStartTime", "planId"] as const;

/**
 * Reads one event the way model binding would: `null` counts as absent, unknown fields are
 * ignored, a field of the wrong JSON type or a date-time that does not parse rejects the request.
 * `where` prefixes targets (`request[3].`) for batch items.
 */
export function readUsageEvent(raw: unknown, where = ""): UsageEventInput {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new UsageInputError(where.replace(/\.$/, "") || "usageEventRequest", "A usage event must be a JSON object.");
  }
  const o = raw as Record<string, unknown>;
  const out: UsageEventInput = {};
  for (const f of STRING_FIELDS) {
    const v = o[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw new UsageInputError(`${where}${f}`, `The value of '${f}' must be a string.`);
    out[f] = v;
  }
  if (o.quantity !== undefined && o.quantity !== null) {
    if (typeof o.quantity !== "number") throw new UsageInputError(`${where}quantity`, "The value of 'quantity' must be a number.");
    out.quantity = o.quantity;
  }
  if (out.effectiveStartTime !== undefined && parseUtcTime(out.effectiveStartTime) === undefined) {
    throw new UsageInputError(`${where}effectiveStartTime`, `The value '${out.effectiveStartTime}' is not a valid date-time.`);
  }
  return out;
}

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * ISO 8601 date or date-time to epoch milliseconds (fractional below 1 ms: 7 fraction digits are
 * kept); a time without a zone is UTC (docs/azure-behaviour.md §1.2, unconfirmed). Undefined when it does not parse.
 */
export function parseUtcTime(text: string): number | undefined {
  const m = TIME_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone = "Z"] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCDate() !== day) return undefined; // 2024-02-30
  date.setUTCHours(hour, minute, second, 0);
  let offsetMin = 0;
  if (zone.toUpperCase() !== "Z") {
    const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    if (Number(z[2]) > 14 || Number(z[3]) > 59) return undefined;
    offsetMin = (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
  }
  return date.getTime() + (frac ? Number(`0.${frac}`) * 1000 : 0) - offsetMin * 60_000;
}

/** The UTC day (epoch ms at 00:00) a time falls in. */
export function utcDayOf(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

// ---------------------------------------------------------------- who may bill what

/** Verified access-token claims; the caller check reads oid, appid (or azp) and xms_mirid. */
export type CallerClaims = Record<string, unknown>;

const lower = (v: unknown): string => (typeof v === "string" ? v.toLowerCase() : "");

/**
 * Whether the token's identity may bill `app` (docs/azure-behaviour.md §1.7): a managed identity of the app's
 * managed resource group. That is a user-assigned identity whose ARM id lies under the MRG
 * (found by `oid` = principalId, else by `appid` = clientId), the app's own system- or
 * user-assigned identities (the tokens `listTokens` hands out), or the system-assigned identity
 * of a resource inside the MRG (`xms_mirid` names it). Created after purchase counts too (the original tool's).
 */
export function callerMayBill(state: SandboxState, app: ArmResource, claims: CallerClaims): boolean {
  const mrg = String(app.properties.managedResourceGroupId ?? "");
  if (!mrg) return false;
  const oid = lower(claims.oid);
  const appid = lower(claims.appid ?? claims.azp);
  const identity = (app.identity ?? {}) as { principalId?: string; userAssignedIdentities?: Record<string, { principalId?: string }> };
  if (oid && lower(identity.principalId) === oid) return true;
  if (oid && Object.values(identity.userAssignedIdentities ?? {}).some((u) => lower(u?.principalId) === oid)) return true;
  const uami = (oid ? state.findIdentityByPrincipalId(oid) : undefined) ?? (appid ? state.findIdentityByClientId(appid) : undefined);
  if (uami) return scopeContains(mrg, uami.id);
  const mirid = typeof claims.xms_mirid === "string" ? claims.xms_mirid : "";
  if (oid && mirid && scopeContains(mrg, mirid)) {
    const holder = state.getResource(mirid);
    return lower((holder?.identity as { principalId?: string } | undefined)?.principalId) === oid;
  }
  return false;
}

/**
 * The managed apps `claims` may bill (callerMayBill), found through the indexes instead of by
 * trying every app: the apps whose own identity the token is, and the apps whose managed
 * resource group holds the token's user-assigned identity or its `xms_mirid` resource.
 */
export function appsCallerMayBill(state: SandboxState, claims: CallerClaims): ArmResource[] {
  const oid = lower(claims.oid);
  const appid = lower(claims.appid ?? claims.azp);
  const candidates = new Set<ArmResource>(oid ? state.appsWithIdentity(oid) : []);
  const uami = (oid ? state.findIdentityByPrincipalId(oid) : undefined) ?? (appid ? state.findIdentityByClientId(appid) : undefined);
  if (uami) for (const app of state.appsCovering(uami.id)) candidates.add(app);
  const mirid = typeof claims.xms_mirid === "string" ? claims.xms_mirid : "";
  if (mirid) for (const app of state.appsCovering(mirid)) candidates.add(app);
  return [...candidates].filter((app) => callerMayBill(state, app, claims));
}

// ---------------------------------------------------------------- the checks

/** Failures a batch item can carry; "Generic" is sent as options.metering.errorStatusName. */
export type FailureStatus =
  | "Expired" | "ResourceNotFound" | "ResourceNotAuthorized" | "ResourceNotActive"
  | "InvalidDimension" | "InvalidQuantity" | "Generic";

export type Verdict =
  | { status: "Accepted"; event: AcceptedEvent }
  | { status: "Duplicate"; original: AcceptedEvent }
  | { status: FailureStatus; target: string; message: string };

// Verbatim texts are from the table in docs/azure-behaviour.md §1.4; the rest are the sandbox's own (unconfirmed).
export const MESSAGES = {
  idMissing: "The resourceId is required.",
  notFound: "The resourceId value provided cannot be found or this resource is not active.",
  notAuthorized: "Client is not authorized for this usage resource.",
  dimension: "The payload dimension is invalid.",
  planId: "The payload planId is invalid.",
  quantity: "The quantity is invalid.",
  expired: "The effective time provided is has expired or is in future.",
  timeMissing: "The effectiveStartTime is required.",
} as const;

const fail = (status: FailureStatus, target: string, message: string): Verdict => ({ status, target, message });

/** Formats epoch ms as the service's messageTime: UTC with 7 fraction digits. */
export function formatMessageTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$10000Z");
}

/**
 * The accepted events and their duplicate index. Events live in the admin-visible list
 * (`accepted()`); the index is rebuilt whenever that list was replaced or shrank, or the
 * dedupe switch changed, so it can never disagree with it.
 */
export class UsageLedger {
  private state: SandboxState;
  private accepted: () => AcceptedEvent[];
  private index = new Map<string, AcceptedEvent>();
  private indexed: { list: AcceptedEvent[] | undefined; length: number; includesPlan: boolean } = { list: undefined, length: 0, includesPlan: false };

  constructor(state: SandboxState, accepted: () => AcceptedEvent[]) {
    this.state = state;
    this.accepted = accepted;
  }

  /**
   * Runs one event through the checks in the order of docs/azure-behaviour.md §1.7 (id present → resolves →
   * caller → active → dimension → quantity → window → dedupe) and records it when accepted.
   * The caller check needs the resolved app, so it sits right after resolution: nothing about
   * an app (its state, its plan) is told to a caller that may not bill it.
   */
  submit(input: UsageEventInput, claims: CallerClaims, nowMs: number): Verdict {
    const { state } = this;
    const opts = state.options.metering;
    if (!input.resourceId && !input.resourceUri) return fail("Generic", "ResourceId", MESSAGES.idMissing);

    const app = this.resolve(input);
    if (!app) return fail("ResourceNotFound", "resourceId", MESSAGES.notFound);
    if (!callerMayBill(state, app, claims)) return fail("ResourceNotAuthorized", "resourceId", MESSAGES.notAuthorized);
    const billing = app.properties.billingDetails as { resourceUsageId?: string } | null | undefined;
    if (app.properties.provisioningState !== "Succeeded" || !billing?.resourceUsageId) {
      // The verbatim ResourceNotFound text names both cases ("cannot be found or … not active").
      return fail("ResourceNotActive", "resourceId", MESSAGES.notFound);
    }

    const plan = (app.plan ?? {}) as { name?: string; product?: string };
    const dimensions = state.dimensionsOf(String(plan.product ?? ""), String(plan.name ?? "")) ?? [];
    // Exact, case-sensitive match (docs/azure-behaviour.md §1.5, "unknowns": the sandbox matches exactly).
    if (input.dimension === undefined || !dimensions.includes(input.dimension)) return fail("InvalidDimension", "dimension", MESSAGES.dimension);
    const planId = input.planId;
    if (planId === undefined || planId !== plan.name) return fail("InvalidDimension", "planId", MESSAGES.planId);

    if (typeof input.quantity !== "number" || !Number.isFinite(input.quantity) || input.quantity <= 0) {
      return fail("InvalidQuantity", "quantity", MESSAGES.quantity);
    }

    if (input.effectiveStartTime === undefined) return fail("Generic", "effectiveStartTime", MESSAGES.timeMissing);
    const t = parseUtcTime(input.effectiveStartTime)!; // readUsageEvent rejected what does not parse
    const age = nowMs - t;
    if (age < -opts.futureSkewS * 1000 || age >= DAY_MS) return fail("Expired", "effectiveStartTime", MESSAGES.expired);

    const resourceUsageId = billing.resourceUsageId;
    const key = this.keyOf(resourceUsageId, input.dimension, t, planId, opts.dedupeIncludesPlan);
    const index = this.currentIndex();
    const original = index.get(key);
    if (original) return { status: "Duplicate", original };

    const event: AcceptedEvent = {
      usageEventId: randomUUID(),
      resourceId: resourceUsageId,
      resourceUri: app.id,
      planId,
      dimension: input.dimension,
      quantity: input.quantity,
      effectiveStartTime: input.effectiveStartTime,
      messageTime: formatMessageTime(nowMs),
    };
    this.accepted().push(event);
    index.set(key, event);
    this.indexed.length++;
    return { status: "Accepted", event };
  }

  /** resourceId = billingDetails.resourceUsageId, resourceUri = app id (case-insensitive); both sent = both must name one app. */
  private resolve(input: UsageEventInput): ArmResource | undefined {
    // Indexed lookups (per resourceUsageId, per app id): no scan of every app per event.
    const byId = input.resourceId === undefined ? undefined : this.state.appsByResourceUsageId(input.resourceId.trim())[0];
    const uri = input.resourceUri?.trim().replace(/\/+$/, "").toLowerCase();
    const byUri = uri === undefined ? undefined : [this.state.managedApp(uri)].find((a) => a !== undefined && a.id.toLowerCase() === uri);
    if (input.resourceId !== undefined && input.resourceUri !== undefined) return byId && byId === byUri ? byId : undefined;
    return byId ?? byUri;
  }

  /** One event per resource + dimension + UTC hour (docs/azure-behaviour.md §1.5); planId only when switched on. */
  private keyOf(resourceUsageId: string, dimension: string, timeMs: number, planId: string, includesPlan: boolean): string {
    const hour = Math.floor(timeMs / HOUR_MS);
    return [resourceUsageId.toLowerCase(), dimension, hour, ...(includesPlan ? [planId] : [])].join("\n");
  }

  private currentIndex(): Map<string, AcceptedEvent> {
    const list = this.accepted();
    const includesPlan = this.state.options.metering.dedupeIncludesPlan;
    const i = this.indexed;
    if (i.list !== list || i.length !== list.length || i.includesPlan !== includesPlan) {
      this.index = new Map();
      for (const e of list) {
        const key = this.keyOf(e.resourceId, e.dimension, parseUtcTime(e.effectiveStartTime) ?? 0, e.planId, includesPlan);
        if (!this.index.has(key)) this.index.set(key, e);
      }
      this.indexed = { list, length: list.length, includesPlan };
    }
    return this.index;
  }
}

export interface AcceptedEvent {
  usageEventId: string;
  resourceId: string;
  resourceUri: string;
  planId: string;
  dimension: string;
  quantity: number;
  effectiveStartTime: string;
  messageTime: string;
}

/** Every accepted usage event, in order of acceptance (the admin API's GET /metering/events). */
export function listAcceptedEvents(state: SandboxState): AcceptedEvent[] {
  return state.store<AcceptedEvent[]>("metering.accepted", () => []);
}
