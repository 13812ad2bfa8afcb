// Reads the managed applications the ISV can see, through `az rest` (ARM-relative URLs, so
// az's cloud and credentials apply): the app behind a managed resource group, and the list
// of all apps from Resource Graph.
// deno-lint-ignore-file no-explicit-any -- ARM's resource bodies are read field by field, whatever their shape
import { ArmError, AzError, ManagedAppNotBillableError, NotManagedResourceGroupError } from "../core/errors.mts";
import type { AzRest, AzRunOptions } from "./az.mts";
import type { ExchangeRecorder } from "../audit/records.mts";

const RESOURCE_GROUPS_API_VERSION = "2021-04-01";
const MANAGED_APPS_API_VERSION = "2019-07-01";
export const RESOURCE_GRAPH_API_VERSION = "2021-03-01";
const RESOURCE_GRAPH_PAGE_SIZE = 1000;
/** Stops a Resource Graph listing that keeps handing out pages (a broken $skipToken loop). */
const RESOURCE_GRAPH_MAX_PAGES = 1000;

export interface ArmOptions extends AzRunOptions {
  /** Replaces `az rest` (tests). */
  azRest?: AzRest;
  /** Writes the exchanges of calls that name an operation to the audit log (the publisher context's `arm()`). */
  record?: ExchangeRecorder;
}

async function _rest(options: ArmOptions): Promise<AzRest> {
  if (options.azRest) return options.azRest;
  return (await import("./az.mts")).rest;
}

/** What 1-connect-customer needs to know about the app that manages an MRG. */
export interface ManagedApp {
  /** `/subscriptions/…/resourceGroups/…/providers/Microsoft.Solutions/applications/<name>`: the usage event's `resourceUri`. */
  id: string;
  /** `plan.name`: the usage event's `planId`. */
  planName?: string;
  /** `properties.billingDetails.resourceUsageId`: the usage event's `resourceId`. */
  resourceUsageId?: string;
  provisioningState?: string;
  kind?: string;
  managedResourceGroupId?: string;
  /** `properties.publisherTenantId`: the tenant the publisher acts from. */
  publisherTenantId?: string;
}

function _azOptions(options: ArmOptions): AzRunOptions {
  return { command: options.command, env: options.env };
}

function _encode(segment: string): string {
  return encodeURIComponent(segment);
}

/** Splits `/subscriptions/<sub>/resourceGroups/<rg>…` into its parts; undefined when it is not one. */
export function parseResourceGroupId(id: unknown): { subscriptionId: string; resourceGroup: string } | undefined {
  if (typeof id !== "string") return undefined;
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)/i.exec(id);
  return m ? { subscriptionId: m[1], resourceGroup: m[2] } : undefined;
}

function _toManagedApp(raw: Record<string, any>): ManagedApp {
  const props = raw.properties ?? {};
  return {
    id: raw.id,
    planName: raw.plan?.name ?? undefined,
    resourceUsageId: props.billingDetails?.resourceUsageId ?? undefined,
    provisioningState: props.provisioningState ?? undefined,
    kind: raw.kind ?? undefined,
    managedResourceGroupId: props.managedResourceGroupId ?? undefined,
    ...(typeof props.publisherTenantId === "string" ? { publisherTenantId: props.publisherTenantId } : {}),
  };
}

/**
 * Finds the managed application that manages a resource group: the group's `managedBy`,
 * then the application itself. Throws NotManagedResourceGroupError when nothing manages it.
 */
export async function getManagedAppForResourceGroup(
  options: { subscriptionId: string; managedResourceGroup: string } & ArmOptions,
): Promise<ManagedApp> {
  const { id, raw } = await getManagedAppResource(options);
  return { ..._toManagedApp(raw), id: raw.id ?? id };
}

/** The managed application of a resource group as ARM returns it (all the fields of docs/azure-behaviour.md §5.1), with its id. */
export async function getManagedAppResource(
  options: { subscriptionId: string; managedResourceGroup: string } & ArmOptions,
): Promise<{ id: string; raw: Record<string, any> }> {
  const rest = await _rest(options);
  const where = `${options.subscriptionId}/${options.managedResourceGroup}`;
  const { armRequest } = await import("./arm-resource.mts");
  const group = (await armRequest({
    ...options,
    azRest: rest,
    method: "GET",
    url: `/subscriptions/${_encode(options.subscriptionId)}/resourceGroups/${_encode(options.managedResourceGroup)}?api-version=${RESOURCE_GROUPS_API_VERSION}`,
    what: `resource group ${where}`,
    hint: "check the subscription and the managed resource group's name",
  })) as { managedBy?: string } | null;
  const appId = group?.managedBy;
  if (typeof appId !== "string" || !/\/providers\/Microsoft\.Solutions\/applications\//i.test(appId)) {
    throw new NotManagedResourceGroupError(
      `Cannot find the managed application of ${where}: the resource group is not managed by one (managedBy is ${JSON.stringify(appId ?? null)})`,
    );
  }
  let raw: Record<string, any>;
  try {
    raw = (await rest({ ..._azOptions(options), method: "GET", url: `${appId}?api-version=${MANAGED_APPS_API_VERSION}` })) as Record<string, any>;
  } catch (cause) {
    const line = cause instanceof AzError ? cause.errorLine ?? cause.message : String(cause);
    throw new ArmError(`Cannot read managed application ${appId}: ${line} (the ISV user needs access to the app, e.g. through the plan's authorizations)`, { cause });
  }
  if (!raw || typeof raw !== "object") throw new ArmError(`Cannot read managed application ${appId}: empty answer`);
  return { id: raw.id ?? appId, raw };
}

/** Like getManagedAppForResourceGroup, but insists the app can be billed (has resourceUsageId and a plan). */
export async function getBillableManagedApp(
  options: { subscriptionId: string; managedResourceGroup: string } & ArmOptions,
): Promise<ManagedApp & { planName: string; resourceUsageId: string }> {
  const app = await getManagedAppForResourceGroup(options);
  if (!app.resourceUsageId || !app.planName) {
    const missing = [!app.resourceUsageId && "properties.billingDetails.resourceUsageId", !app.planName && "plan.name"].filter(Boolean).join(" and ");
    throw new ManagedAppNotBillableError(
      `Cannot bill managed application ${app.id}: it has no ${missing} (provisioningState ${app.provisioningState ?? "unknown"}; only Marketplace apps that finished provisioning can be metered)`,
    );
  }
  return app as ManagedApp & { planName: string; resourceUsageId: string };
}

/** Resource Graph query listing the managed applications, in the style of the original tool's (docs/azure-behaviour.md §5.6), with plan, state and billing id. */
export const MANAGED_APPS_QUERY = [
  "resources",
  '| where type =~ "microsoft.solutions/applications"',
  "| extend managedResourceGroupId = properties.managedResourceGroupId",
  "| extend provisioningState = properties.provisioningState",
  "| extend resourceUsageId = properties.billingDetails.resourceUsageId",
  "| project id, subscriptionId, managedResourceGroupId, plan, provisioningState, resourceUsageId",
].join("\n");

/** Runs a Resource Graph query, following `$skipToken` pages with the same query. */
export async function queryResourceGraph(options: { query: string } & ArmOptions): Promise<Record<string, unknown>[]> {
  const rest = await _rest(options);
  const rows: Record<string, unknown>[] = [];
  let skipToken: string | undefined;
  const seen = new Set<string>();
  for (let page = 0; page < RESOURCE_GRAPH_MAX_PAGES; page++) {
    const body = {
      query: options.query,
      options: { resultFormat: "objectArray", $top: RESOURCE_GRAPH_PAGE_SIZE, ...(skipToken ? { $skipToken: skipToken } : {}) },
    };
    const answer = (await rest({
      ..._azOptions(options),
      method: "POST",
      url: `/providers/Microsoft.ResourceGraph/resources?api-version=${RESOURCE_GRAPH_API_VERSION}`,
      body,
    })) as { data?: unknown; $skipToken?: string } | null;
    if (!answer || !Array.isArray(answer.data)) {
      throw new ArmError(`Cannot read Resource Graph answer: no data array (got ${JSON.stringify(answer)?.slice(0, 80)})`);
    }
    rows.push(...(answer.data as Record<string, unknown>[]));
    skipToken = answer.$skipToken || undefined;
    if (!skipToken) return rows;
    if (seen.has(skipToken)) throw new ArmError("Cannot page Resource Graph results: the same $skipToken came back twice");
    seen.add(skipToken);
  }
  throw new ArmError(`Cannot page Resource Graph results: more than ${RESOURCE_GRAPH_MAX_PAGES} pages`);
}

/** One row of the customer list. */
export interface ManagedAppRow {
  managedAppId: string;
  /** Subscription of the managed resource group (= the config key). */
  subscriptionId: string;
  managedResourceGroup: string;
  planName?: string;
  provisioningState?: string;
  resourceUsageId?: string;
}

/** Lists every managed application the signed-in ISV user can see, sorted by subscription and MRG. */
export async function listManagedApps(options: ArmOptions = {}): Promise<ManagedAppRow[]> {
  const rows = await queryResourceGraph({ ...options, query: MANAGED_APPS_QUERY });
  const apps = rows.map((row): ManagedAppRow => {
    const mrg = parseResourceGroupId(row.managedResourceGroupId);
    const plan = row.plan as { name?: string } | null | undefined;
    return {
      managedAppId: String(row.id ?? ""),
      subscriptionId: mrg?.subscriptionId ?? String(row.subscriptionId ?? ""),
      managedResourceGroup: mrg?.resourceGroup ?? "",
      planName: plan?.name ?? undefined,
      provisioningState: typeof row.provisioningState === "string" ? row.provisioningState : undefined,
      resourceUsageId: typeof row.resourceUsageId === "string" && row.resourceUsageId ? row.resourceUsageId : undefined,
    };
  });
  return apps.sort((a, b) =>
    a.subscriptionId.localeCompare(b.subscriptionId) || a.managedResourceGroup.localeCompare(b.managedResourceGroup)
  );
}
