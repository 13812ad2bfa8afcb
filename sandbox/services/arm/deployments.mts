// Microsoft.Resources/deployments at resource-group scope: the record of a deployment. The az
// stand-in evaluates a Bicep template itself, PUTs each resource, then PUTs this record with the
// outputs it computed; ARM stores it and answers it back like a finished deployment.
import { createHash } from "node:crypto";
import type { Route } from "../../core/http.mts";
import { scopeContains, type ArmResource } from "../../core/state.mts";
import { Arm, fail, ok, rgId, tagsOf, toWire, type ArmCall } from "./core.mts";

const DEPLOYMENT_TYPE = "Microsoft.Resources/deployments";
const BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Resources/deployments";
const MODES = ["Incremental", "Complete"];
const PROVISIONING_STATES = ["NotSpecified", "Accepted", "Running", "Ready", "Creating", "Created", "Deleting", "Deleted", "Canceled", "Failed", "Succeeded", "Updating"];

interface DeploymentBody {
  location?: unknown;
  tags?: Record<string, string>;
  properties?: Record<string, unknown> & { mode?: unknown; provisioningState?: unknown; template?: unknown };
}

export function deploymentRoutes(arm: Arm): Route[] {
  const { state } = arm;
  const idOf = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${DEPLOYMENT_TYPE}/${a.p.deploymentName}`;

  const getOr404 = (a: ArmCall): ArmResource => {
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const r = state.getResource(idOf(a));
    if (!r || r.type !== DEPLOYMENT_TYPE) fail(404, "DeploymentNotFound", `Deployment '${a.p.deploymentName}' could not be found.`);
    return r;
  };

  return [
    arm.route({
      method: "GET", path: BASE, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        arm.authorize(a.caller, rg.id, `${DEPLOYMENT_TYPE}/read`);
        return ok({ value: state.ofType(DEPLOYMENT_TYPE).filter((r) => scopeContains(rg.id, r.id)).sort((x, y) => x.createdAtMs - y.createdAtMs).map(toWire) });
      },
    }),
    arm.route({
      method: "PUT", path: `${BASE}/:deploymentName`, type: DEPLOYMENT_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, idOf(a), `${DEPLOYMENT_TYPE}/write`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        const name = a.p.deploymentName;
        if (!/^[-\w.()]{1,64}$/.test(name)) {
          fail(400, "InvalidDeploymentName", `The deployment name '${name}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen and period characters, and can be at most 64 characters long.`);
        }
        const body = a.body<DeploymentBody>();
        const props = body.properties;
        if (!props || typeof props !== "object") fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'.");
        if (typeof props.mode !== "string" || !MODES.includes(props.mode)) {
          fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'The deployment mode '${String(props.mode ?? "")}' is invalid; expected Incremental or Complete.'.`);
        }
        const provisioningState = props.provisioningState ?? "Succeeded";
        if (typeof provisioningState !== "string" || !PROVISIONING_STATES.includes(provisioningState)) {
          fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'The provisioning state '${String(provisioningState)}' is invalid.'.`);
        }
        const existing = state.getResource(idOf(a));
        const now = state.now();
        // The template itself is not echoed by ARM; its hash is.
        const { template, ...rest } = props;
        const r: ArmResource = {
          id: existing?.id ?? `${rg.id}/providers/${DEPLOYMENT_TYPE}/${name}`,
          name, type: DEPLOYMENT_TYPE,
          ...(tagsOf(body) ? { tags: tagsOf(body) } : {}),
          properties: {
            ...(template !== undefined ? { templateHash: BigInt("0x" + createHash("sha256").update(JSON.stringify(template)).digest("hex").slice(0, 15)).toString() } : {}),
            parameters: {},
            outputs: {},
            outputResources: [],
            providers: [],
            dependencies: [],
            ...rest,
            provisioningState,
            timestamp: new Date(now).toISOString(),
            duration: "PT0S",
            correlationId: a.c.header("x-ms-correlation-request-id") ?? a.c.requestId,
          },
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? now,
        };
        state.putResource(r);
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
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
        // Deleting the record leaves the deployed resources alone, as in Azure.
        return ok(undefined, state.deleteResource(idOf(a)) ? 200 : 204);
      },
    }),
  ];
}
