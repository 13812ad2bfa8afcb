// Microsoft.Resources/deployments at resource-group scope, as ARM runs them
// (docs/azure-behaviour.md §5.5): `POST …/validate` is the preflight (200 with the validated
// resources, 400 InvalidTemplate / InvalidTemplateDeployment); `PUT` validates the same way,
// answers 201 with provisioningState Accepted and an Azure-AsyncOperation header, then runs the
// template (template/engine.mts) in the background: Running, each resource PUT through the same
// route handlers a direct PUT of that resource uses (with the caller's token, so RBAC applies),
// then Succeeded with `outputs` ({type, value}) or Failed with DeploymentFailed.
// `…/operationStatuses/{id}` is what clients poll; `…/operations` lists one operation per resource.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { InternalRequest, Reply, Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import type { ArmError, Value } from "./template/types.mts";
import { Arm, fail, ok, rgId, tagsOf, toWire, type ArmCall } from "./core.mts";
import { jsonPositions } from "./json-positions.mts";
import { ProviderError, TemplateDeploymentError, TemplateValidationError, deployTemplate, validateTemplate, type PlannedResource, type TemplateScope, type ValidatedTemplate } from "./template/engine.mts";

const DEPLOYMENT_TYPE = "Microsoft.Resources/deployments";
const BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Resources/deployments";
/** Where the REST spec puts a resource group deployment's operations (Deployment Operations - List / Get). */
const OPERATIONS_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/deployments";
/** How long clients should wait between polls (seconds): ARM sends Retry-After on running deployments. */
const RETRY_AFTER_S = "1";

/**
 * What environment() returns: Azure public cloud's values as Microsoft's template-functions
 * documentation shows them (the sandbox stands in for that cloud).
 */
const ENVIRONMENT: { [k: string]: Value } = {
  name: "AzureCloud",
  gallery: "https://gallery.azure.com/",
  graph: "https://graph.windows.net/",
  portal: "https://portal.azure.com",
  graphAudience: "https://graph.windows.net/",
  activeDirectoryDataLake: "https://datalake.azure.net/",
  batch: "https://batch.core.windows.net/",
  media: "https://rest.media.azure.net",
  sqlManagement: "https://management.core.windows.net:8443/",
  vmImageAliasDoc: "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
  resourceManager: "https://management.azure.com/",
  authentication: {
    loginEndpoint: "https://login.microsoftonline.com/",
    audiences: ["https://management.core.windows.net/", "https://management.azure.com/"],
    tenant: "common",
    identityProvider: "AAD",
  },
  suffixes: {
    acrLoginServer: ".azurecr.io",
    azureDatalakeAnalyticsCatalogAndJob: "azuredatalakeanalytics.net",
    azureDatalakeStoreFileSystem: "azuredatalakestore.net",
    azureFrontDoorEndpointSuffix: "azurefd.net",
    keyvaultDns: ".vault.azure.net",
    sqlServerHostname: ".database.windows.net",
    storage: "core.windows.net",
  },
};

interface DeploymentOperation {
  id: string;
  operationId: string;
  properties: Record<string, unknown>;
}

interface DeploymentRun {
  opId: string;
  status: "Accepted" | "Running" | "Succeeded" | "Failed";
  error?: ArmError;
  startedMs: number;
  operations: DeploymentOperation[];
}

interface DeploymentBody {
  location?: unknown;
  tags?: Record<string, string>;
  properties?: Record<string, unknown>;
}

const duration = (ms: number) => `PT${(Math.max(0, ms) / 1000).toFixed(7).replace(/\.?0+$/, "") || "0"}S`;
const templateHash = (template: unknown) => BigInt("0x" + createHash("sha256").update(JSON.stringify(template)).digest("hex").slice(0, 15)).toString();
const operationId = () => randomBytes(8).toString("hex").toUpperCase();

/**
 * ARM's TemplateViolation names the line and column of the offending value in the request as
 * sent; the template engine names only its path (`properties.template.resources[0].name`), so the
 * positions are read here from the request's text. A path the text does not have (a value the
 * engine computed) keeps 0, 0.
 */
function withTemplatePositions(error: ArmError, requestText: string): ArmError {
  const infos = (error.additionalInfo ?? []) as Array<{ type?: string; info?: { lineNumber?: number; linePosition?: number; path?: string } }>;
  if (!infos.some((x) => x.type === "TemplateViolation" && typeof x.info?.path === "string")) return error;
  const positions = jsonPositions(requestText);
  return {
    ...error,
    additionalInfo: infos.map((x) => {
      const at = x.type === "TemplateViolation" && x.info?.path ? positions.get(x.info.path.toLowerCase()) : undefined;
      return at ? { ...x, info: { ...x.info, lineNumber: at.line, linePosition: at.column } } : x;
    }),
  };
}

export function deploymentRoutes(arm: Arm): Route[] {
  const { state } = arm;
  const runs = () => state.store("arm.deploymentRuns", () => new Map<string, DeploymentRun>());
  const idOf = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${DEPLOYMENT_TYPE}/${a.p.deploymentName}`;

  const getOr404 = (a: ArmCall): ArmResource => {
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const r = state.getResource(idOf(a));
    if (!r || r.type !== DEPLOYMENT_TYPE) fail(404, "DeploymentNotFound", `Deployment '${a.p.deploymentName}' could not be found.`);
    return r;
  };

  /** The checks PUT and validate share; returns the validated template or throws the 400. */
  const preflight = async (a: ArmCall, rg: ArmResource) => {
    const name = a.p.deploymentName;
    if (!/^[-\w.()]{1,64}$/.test(name)) {
      fail(400, "InvalidDeploymentName", `The deployment name '${name}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen and period characters, and can be at most 64 characters long.`);
    }
    const body = a.body<DeploymentBody>();
    const props = body.properties;
    if (!props || typeof props !== "object") fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'.");
    if (typeof props.mode !== "string" || !["incremental", "complete"].includes(props.mode.toLowerCase())) {
      fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'The deployment mode '${String(props.mode ?? "")}' is invalid; expected Incremental or Complete.'.`);
    }
    if (props.mode.toLowerCase() === "complete") {
      fail(400, "InvalidTemplateDeployment", `The template deployment '${name}' is not valid: mode 'Complete' (deleting resources the template does not name) is not supported by the sandbox; use Incremental.`);
    }
    if (props.templateLink !== undefined || props.parametersLink !== undefined) {
      fail(400, "InvalidTemplateDeployment", `The template deployment '${name}' is not valid: 'templateLink' and 'parametersLink' are not supported by the sandbox; send 'template' and 'parameters'.`);
    }
    if (props.template === undefined || props.template === null) {
      fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'The 'template' property must be provided: a deployment needs a template.'.");
    }
    const user = a.caller;
    const scope: TemplateScope = {
      subscriptionId: a.sub.subscriptionId,
      tenantId: a.sub.tenantId,
      resourceGroup: { id: rg.id, name: rg.name ?? a.p.resourceGroupName, location: String(rg.location ?? ""), ...(rg.tags ? { tags: rg.tags as Record<string, string> } : {}) },
      deploymentName: name,
      deployer: { objectId: user.oid, tenantId: user.tid },
      environment: ENVIRONMENT,
    };
    try {
      return { body, props, validated: await validateTemplate(props.template, props.parameters, scope) };
    } catch (e) {
      if (e instanceof TemplateValidationError) throw Object.assign(new Error(e.message), { reply: { status: 400, body: { error: withTemplatePositions(e.error, a.c.text()) } } as Reply });
      throw e;
    }
  };

  /** preflight() with a validation failure answered as ARM does (400 and the error). */
  const checked = async (a: ArmCall, rg: ArmResource) => {
    try {
      return await preflight(a, rg);
    } catch (e) {
      const reply = (e as { reply?: Reply }).reply;
      if (reply) return reply;
      throw e;
    }
  };

  const summary = (v: ValidatedTemplate) => ({
    providers: [...new Set(v.resources.map((r) => r.type.split("/")[0]))].map((namespace) => ({
      namespace,
      resourceTypes: [...new Set(v.resources.filter((r) => r.type.split("/")[0] === namespace).map((r) => r.type.split("/").slice(1).join("/")))].map((resourceType) => ({ resourceType, locations: [] })),
    })),
    dependencies: v.resources.filter((r) => r.dependsOn.length).map((r) => ({
      id: r.id, resourceType: r.type, resourceName: r.name,
      dependsOn: r.dependsOn.map((d) => {
        const t = v.resources.find((x) => x.id === d)!;
        return { id: d, resourceType: t.type, resourceName: t.name };
      }),
    })),
  });

  /** Runs the deployment: the resources through ARM's own route handlers, then the outputs. */
  const run = async (deploymentId: string, v: ValidatedTemplate, auth: string, correlationId: string) => {
    const record = () => state.getResource(deploymentId);
    const r0 = record();
    const runInfo = runs().get(deploymentId.toLowerCase());
    if (!r0 || !runInfo) return;
    const update = (props: Record<string, unknown>) => {
      const r = record();
      if (r) state.putResource({ ...r, properties: { ...r.properties, ...props } });
    };
    runInfo.status = "Running";
    update({ provisioningState: "Running" });
    const call = async (method: string, id: string, apiVersion: string, body?: unknown) => {
      const req: InternalRequest = {
        method, url: `${id}?api-version=${encodeURIComponent(apiVersion)}`, body,
        headers: { authorization: auth, "content-type": "application/json", "x-ms-correlation-request-id": correlationId },
      };
      const reply = await arm.dispatch(req);
      const json = (reply.body ?? {}) as Record<string, unknown>;
      if (reply.status >= 400) {
        const err = (json as { error?: ArmError }).error;
        throw new ProviderError(reply.status, err && typeof err.code === "string" ? err : { code: `Http${reply.status}`, message: `The resource provider answered HTTP ${reply.status}.` });
      }
      return { status: reply.status, json };
    };
    /** A PUT as ARM's deployment engine does it: an accepted (202) or still-provisioning resource is read back until final. */
    const put = async (id: string, apiVersion: string, body: unknown) => {
      let r = await call("PUT", id, apiVersion, body);
      const final = (j: Record<string, unknown>) => {
        const s = String((j.properties as { provisioningState?: unknown } | undefined)?.provisioningState ?? "Succeeded").toLowerCase();
        return ["succeeded", "failed", "canceled"].includes(s);
      };
      // A nested deployment (a Bicep module) runs a whole template: it gets longer than a resource.
      const polls = r.json.type === DEPLOYMENT_TYPE ? 6000 : 100;
      for (let i = 0; (r.status === 202 || !final(r.json)) && i < polls; i++) {
        await new Promise((res) => setTimeout(res, 10));
        r = await call("GET", id, apiVersion);
      }
      const s = String((r.json.properties as { provisioningState?: unknown } | undefined)?.provisioningState ?? "Succeeded");
      const nestedError = (r.json.properties as { error?: ArmError } | undefined)?.error;
      if (s.toLowerCase() !== "succeeded" && nestedError) throw new ProviderError(200, nestedError);
      if (s.toLowerCase() !== "succeeded") throw new ProviderError(200, { code: "ResourceDeploymentFailure", message: `The resource operation completed with terminal provisioning state '${s}'.` });
      return r.json;
    };
    const started = new Map<PlannedResource, number>();
    const ops = new Map<PlannedResource, DeploymentOperation>();
    try {
      const result = await deployTemplate(v, {
        put,
        get: async (id, apiVersion) => (await call("GET", id, apiVersion)).json,
      }, deploymentId, {
        started: (r) => {
          started.set(r, state.now());
          const opId = operationId();
          const op: DeploymentOperation = {
            id: `${deploymentId}/operations/${opId}`, operationId: opId,
            properties: {
              provisioningOperation: "Create", provisioningState: "Running", timestamp: new Date(state.now()).toISOString(), duration: "PT0S",
              trackingId: randomUUID(), serviceRequestId: randomUUID(),
              targetResource: { id: r.id, resourceType: r.type, resourceName: r.name, apiVersion: r.apiVersion },
            },
          };
          ops.set(r, op);
          runInfo.operations.push(op);
        },
        finished: (r, res) => {
          const op = ops.get(r)!;
          Object.assign(op.properties, {
            provisioningState: res.ok ? "Succeeded" : "Failed",
            timestamp: new Date(state.now()).toISOString(),
            duration: duration(state.now() - (started.get(r) ?? state.now())),
            statusCode: res.ok ? "OK" : res.status === 400 ? "BadRequest" : res.status === 403 ? "Forbidden" : res.status === 404 ? "NotFound" : res.status === 409 ? "Conflict" : `Http${res.status}`,
            ...(res.ok ? {} : { statusMessage: { status: "Failed", error: res.error } }),
          });
        },
      });
      const opId = operationId();
      runInfo.operations.push({
        id: `${deploymentId}/operations/${opId}`, operationId: opId,
        properties: { provisioningOperation: "EvaluateDeploymentOutput", provisioningState: "Succeeded", timestamp: new Date(state.now()).toISOString(), duration: "PT0S", trackingId: randomUUID(), statusCode: "OK" },
      });
      runInfo.status = "Succeeded";
      update({ provisioningState: "Succeeded", outputs: result.outputs, outputResources: result.outputResources, duration: duration(state.now() - runInfo.startedMs), timestamp: new Date(state.now()).toISOString() });
    } catch (e) {
      const error: ArmError = e instanceof TemplateDeploymentError
        ? e.error
        : { code: "InternalServerError", message: `The sandbox's template engine failed: ${(e as Error).message}` };
      if (!(e instanceof TemplateDeploymentError)) arm.ctx.log(`[arm] deployment ${deploymentId}: ${(e as Error).stack ?? e}`);
      runInfo.status = "Failed";
      runInfo.error = error;
      update({
        provisioningState: "Failed", error, duration: duration(state.now() - runInfo.startedMs), timestamp: new Date(state.now()).toISOString(),
        outputResources: runInfo.operations.filter((o) => o.properties.provisioningState === "Succeeded" && o.properties.targetResource).map((o) => ({ id: (o.properties.targetResource as { id: string }).id })),
      });
    }
  };

  const asyncHeaders = (a: ArmCall, deploymentId: string, opId: string) => ({
    "Azure-AsyncOperation": `${arm.baseUrlAsCalled(a.c)}${deploymentId}/operationStatuses/${opId}?api-version=${a.apiVersion}`,
    "Retry-After": RETRY_AFTER_S,
  });

  return [
    arm.route({
      method: "GET", path: BASE, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        arm.authorize(a.caller, rg.id, `${DEPLOYMENT_TYPE}/read`);
        return ok({ value: state.ofTypeUnder(DEPLOYMENT_TYPE, rg.id).sort((x, y) => x.createdAtMs - y.createdAtMs).map(toWire) });
      },
    }),
    arm.route({
      method: "POST", path: `${BASE}/:deploymentName/validate`, type: DEPLOYMENT_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/validate/action`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        const p = await checked(a, rg);
        if ("status" in p) return p;
        const now = state.now();
        return ok({
          id: `${rg.id}/providers/${DEPLOYMENT_TYPE}/${a.p.deploymentName}`,
          name: a.p.deploymentName,
          type: DEPLOYMENT_TYPE,
          properties: {
            templateHash: templateHash(p.props.template),
            parameters: p.validated.parameters,
            mode: "Incremental",
            provisioningState: "Succeeded",
            timestamp: new Date(now).toISOString(),
            duration: "PT0S",
            correlationId: a.c.header("x-ms-correlation-request-id") ?? a.c.requestId,
            ...summary(p.validated),
            validatedResources: p.validated.resources.map((r) => ({ id: r.id })),
          },
        });
      },
    }),
    arm.route({
      method: "PUT", path: `${BASE}/:deploymentName`, type: DEPLOYMENT_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/write`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        const name = a.p.deploymentName;
        const deploymentId = `${rg.id}/providers/${DEPLOYMENT_TYPE}/${name}`;
        const active = runs().get(deploymentId.toLowerCase());
        const existing = state.getResource(deploymentId);
        if (existing && active && (active.status === "Accepted" || active.status === "Running")) {
          fail(409, "DeploymentActive", `Unable to edit or replace deployment '${name}': previous deployment from '${new Date(active.startedMs).toISOString()}' is still active. Please see https://aka.ms/arm-deploy for usage details.`);
        }
        const p = await checked(a, rg);
        if ("status" in p) return p;
        const now = state.now();
        const correlationId = a.c.header("x-ms-correlation-request-id") ?? a.c.requestId;
        const tags = tagsOf(p.body);
        const r: ArmResource = {
          id: existing?.id ?? deploymentId,
          name, type: DEPLOYMENT_TYPE,
          ...(tags ? { tags } : {}),
          properties: {
            templateHash: templateHash(p.props.template),
            parameters: p.validated.parameters,
            mode: "Incremental",
            provisioningState: "Accepted",
            timestamp: new Date(now).toISOString(),
            duration: "PT0S",
            correlationId,
            ...summary(p.validated),
          },
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? now,
        };
        state.putResource(r);
        const opId = operationId();
        runs().set(deploymentId.toLowerCase(), { opId, status: "Accepted", startedMs: now, operations: [] });
        const auth = a.c.header("authorization") ?? "";
        // ARM answers before any resource is touched; the deployment runs after this reply.
        setTimeout(() => void run(deploymentId, p.validated, auth, correlationId), 0);
        return ok(toWire(r), existing ? 200 : 201, asyncHeaders(a, deploymentId, opId));
      },
    }),
    arm.route({
      method: "GET", path: `${BASE}/:deploymentName/operationStatuses/:operationId`, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/operationstatuses/read`);
        getOr404(a);
        const runInfo = runs().get(idOf(a).toLowerCase());
        if (!runInfo || runInfo.opId.toLowerCase() !== a.p.operationId.toLowerCase()) {
          fail(404, "OperationNotFound", `The operation '${a.p.operationId}' could not be found.`);
        }
        const running = runInfo.status === "Accepted" || runInfo.status === "Running";
        return ok({ status: runInfo.status, ...(runInfo.error ? { error: runInfo.error } : {}) }, 200, running ? { "Retry-After": RETRY_AFTER_S } : undefined);
      },
    }),
    // Deployment operations: the REST spec's path has no providers/Microsoft.Resources segment
    // (…/resourcegroups/{rg}/deployments/{name}/operations); ARM answers the long form too.
    ...[BASE, OPERATIONS_BASE].flatMap((base) => [
      arm.route({
        method: "GET", path: `${base}/:deploymentName/operations`, type: DEPLOYMENT_TYPE,
        handler: (a) => {
          arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/operations/read`);
          getOr404(a);
          return ok({ value: runs().get(idOf(a).toLowerCase())?.operations ?? [] });
        },
      }),
      arm.route({
        method: "GET", path: `${base}/:deploymentName/operations/:operationId`, type: DEPLOYMENT_TYPE,
        handler: (a) => {
          arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/operations/read`);
          getOr404(a);
          const op = runs().get(idOf(a).toLowerCase())?.operations.find((o) => o.operationId.toLowerCase() === a.p.operationId.toLowerCase());
          if (!op) fail(404, "DeploymentOperationNotFound", `The deployment operation '${a.p.operationId}' could not be found.`);
          return ok(op);
        },
      }),
    ]),
    arm.route({
      method: "GET", path: `${BASE}/:deploymentName`, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/read`);
        return ok(toWire(getOr404(a)));
      },
    }),
    arm.route({
      method: "HEAD", path: `${BASE}/:deploymentName`, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/read`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        return ok(undefined, state.getResource(idOf(a))?.type === DEPLOYMENT_TYPE ? 204 : 404);
      },
    }),
    arm.route({
      method: "DELETE", path: `${BASE}/:deploymentName`, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        runs().delete(idOf(a).toLowerCase());
        // Deleting the record leaves the deployed resources alone, as in Azure.
        return ok(undefined, state.deleteResource(idOf(a)) ? 200 : 204);
      },
    }),
  ];
}
