// Resource Graph: POST /providers/Microsoft.ResourceGraph/resources (docs/azure-behaviour.md §5.6) over the
// KQL subset of kql.mts (parsing) and kql-eval.mts (running). RBAC applies before the query: a
// row exists only for a resource the caller may read, across every subscription. Paging follows
// Microsoft's rules: $skipToken is resent with the same query and scopes, and only queries that
// project `id` can be paged.
import { createHash } from "node:crypto";
import type { Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import { Arm, fail, ok, type ArmCall } from "./core.mts";
import { runKql } from "./kql-eval.mts";
import { KqlError, parseKql } from "./kql.mts";
import { isTracked } from "./resources.mts";

const GRAPH_TYPE = "Microsoft.ResourceGraph/resources";
const MAX_TOP = 1000;
/** Rows per page when the request sets no $top (what az graph query asks for by default). */
const DEFAULT_TOP = 100;

const RESOURCE_COLUMNS = ["id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId", "managedBy", "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"];
const CONTAINER_COLUMNS = ["id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId", "managedBy", "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"];

interface GraphRequest {
  subscriptions?: unknown;
  managementGroups?: unknown;
  query?: unknown;
  options?: { $top?: unknown; $skip?: unknown; $skipToken?: unknown; resultFormat?: unknown; [k: string]: unknown };
}

/** A row of the `resources` table: Resource Graph lower-cases type and resourceGroup. */
function resourceRow(r: ArmResource): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    type: r.type.toLowerCase(),
    tenantId: r.tenantId,
    kind: r.kind ?? "",
    location: r.location ?? "",
    resourceGroup: (r.resourceGroup ?? "").toLowerCase(),
    subscriptionId: r.subscriptionId,
    managedBy: r.managedBy ?? "",
    sku: r.sku ?? null,
    plan: r.plan ?? null,
    properties: r.properties ?? {},
    tags: r.tags ?? null,
    identity: r.identity ?? null,
    zones: null,
    extendedLocation: null,
  };
}

function graphError(message: string, detailCode: string, detailMessage: string): never {
  fail(400, "BadRequest", message, undefined, [
    { code: "InvalidQuery", message: "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying." },
    { code: detailCode, message: detailMessage },
  ]);
}

function columnType(values: unknown[]): string {
  const v = values.find((x) => x !== null && x !== undefined);
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "real";
  return "object";
}

export function graphRoutes(arm: Arm): Route[] {
  const { state } = arm;

  const query = (a: ArmCall) => {
    const body = a.body<GraphRequest>();
    if (typeof body.query !== "string" || !body.query.trim()) graphError("The request has no query.", "ParserFailure", "Property 'query' is required.");
    if (body.managementGroups !== undefined && body.managementGroups !== null) {
      graphError("Management group scopes are not modelled by the sandbox.", "UnsupportedScope", "Use 'subscriptions' or no scope.");
    }
    let subs: string[] | undefined;
    if (body.subscriptions !== undefined && body.subscriptions !== null) {
      if (!Array.isArray(body.subscriptions) || !body.subscriptions.every((s) => typeof s === "string")) {
        graphError("'subscriptions' must be an array of subscription ids.", "InvalidScope", "'subscriptions' must be an array of subscription ids.");
      }
      subs = (body.subscriptions as string[]).map((s) => s.toLowerCase());
    }
    if (body.options !== undefined && body.options !== null && (typeof body.options !== "object" || Array.isArray(body.options))) {
      graphError("'options' must be an object.", "InvalidParameter", "'options' must be an object with $top, $skip, $skipToken or resultFormat.");
    }
    const o = body.options ?? {};
    const format = o.resultFormat ?? "objectArray";
    if (format !== "objectArray" && format !== "table") graphError(`The result format '${String(format)}' is invalid.`, "InvalidParameter", "resultFormat must be 'objectArray' or 'table'.");
    const top = o.$top ?? DEFAULT_TOP;
    if (typeof top !== "number" || !Number.isInteger(top) || top < 1 || top > MAX_TOP) {
      graphError(`The $top value '${String(o.$top)}' is invalid.`, "InvalidParameter", `$top must be an integer between 1 and ${MAX_TOP}.`);
    }
    const skip = o.$skip ?? 0;
    if (typeof skip !== "number" || !Number.isInteger(skip) || skip < 0) graphError(`The $skip value '${String(o.$skip)}' is invalid.`, "InvalidParameter", "$skip must be a non-negative integer.");

    // A token belongs to one query and one set of scopes.
    const fingerprint = createHash("sha256").update(JSON.stringify([body.query, subs ?? null])).digest("base64url").slice(0, 16);
    let offset = skip;
    if (o.$skipToken !== undefined && o.$skipToken !== null) {
      let parsed: { f?: string; o?: number } = {};
      try {
        parsed = JSON.parse(Buffer.from(String(o.$skipToken), "base64url").toString("utf8"));
      } catch { /* invalid below */ }
      if (parsed.f !== fingerprint || typeof parsed.o !== "number") {
        graphError("The $skipToken is invalid for this request.", "InvalidSkipToken", "Resend a $skipToken with the same query and scopes it was returned for.");
      }
      offset = parsed.o;
    }

    let q;
    try {
      q = parseKql(body.query);
    } catch (err) {
      if (err instanceof KqlError) graphError(`Query is invalid: ${err.message}`, err.code, err.message);
      throw err;
    }
    const table = q.table.toLowerCase();
    let rows: Record<string, unknown>[];
    let base: string[];
    const scopes = subs && new Set(subs);
    const inScope = (sub: string) => !scopes || scopes.has(sub.toLowerCase());
    // With subscriptions named, only their resources are visited (from the id-prefix index).
    const underScopes = () => [...scopes!].flatMap((s) => state.resourcesUnder(`/subscriptions/${s}`));
    if (table === "resources") {
      base = RESOURCE_COLUMNS;
      rows = (scopes ? underScopes() : state.listResources()).filter((r) => isTracked(r) && inScope(r.subscriptionId) && arm.allowed(a.caller.oid, r.id, `${r.type}/read`)).map(resourceRow);
    } else if (table === "resourcecontainers") {
      base = CONTAINER_COLUMNS;
      rows = [
        ...(scopes ? [...scopes].map((s) => state.subscriptions.get(s)).filter((s) => s !== undefined) : [...state.subscriptions.values()])
          .filter((s) => arm.hasAnyRoleAround(a.caller.oid, `/subscriptions/${s.subscriptionId}`)).map((s) => ({
          ...Object.fromEntries(CONTAINER_COLUMNS.map((c) => [c, null])),
          id: `/subscriptions/${s.subscriptionId}`, name: s.displayName, type: "microsoft.resources/subscriptions", tenantId: s.tenantId,
          kind: "", location: "", resourceGroup: "", subscriptionId: s.subscriptionId, managedBy: "", properties: { state: s.state },
        })),
        ...(scopes ? underScopes().filter((r) => r.type.toLowerCase() === "microsoft.resources/resourcegroups") : state.ofType("Microsoft.Resources/resourceGroups"))
          .filter((r) => inScope(r.subscriptionId) && arm.allowed(a.caller.oid, r.id, "Microsoft.Resources/subscriptions/resourceGroups/read"))
          .map((r) => ({ ...resourceRow(r), type: "microsoft.resources/subscriptions/resourcegroups" })),
      ];
    } else {
      graphError(`Query is invalid: the table '${q.table}' is not supported by the sandbox's Resource Graph.`, "UnknownTable", `Table '${q.table}' is not supported (supported: resources, resourcecontainers).`);
    }
    rows.sort((x, y) => String(x.id).localeCompare(String(y.id)));

    let result;
    try {
      result = runKql(q, rows, base);
    } catch (err) {
      if (err instanceof KqlError) graphError(`Query is invalid: ${err.message}`, err.code, err.message);
      throw err;
    }
    const total = result.rows.length;
    const pageRows = result.rows.slice(offset, offset + top);
    const truncated = offset + pageRows.length < total;
    const skipToken = truncated && result.columns.includes("id")
      ? Buffer.from(JSON.stringify({ f: fingerprint, o: offset + pageRows.length })).toString("base64url")
      : undefined;
    const data = format === "table"
      ? {
        columns: result.columns.map((name) => ({ name, type: columnType(pageRows.map((r) => r[name])) })),
        rows: pageRows.map((r) => result.columns.map((c) => r[c])),
      }
      : pageRows;
    return ok({
      totalRecords: total,
      count: pageRows.length,
      resultTruncated: truncated ? "true" : "false",
      ...(skipToken ? { $skipToken: skipToken } : {}),
      data,
      facets: [],
    });
  };

  return [arm.route({ method: "POST", path: "/providers/Microsoft.ResourceGraph/resources", type: GRAPH_TYPE, handler: query })];
}
