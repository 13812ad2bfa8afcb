// Microsoft.App: Container Apps managed environments and jobs (the Microsoft.App REST spec's
// shapes, docs/azure-behaviour.md §5.8), their start action, executions and the stop
// of an execution. The executions themselves run in the sandbox's job platform (jobs/runner.mts).
// Deployments reach these handlers through ARM's own dispatch, as a direct PUT does.
import type { Route } from "../../core/http.mts";
import type { ArmResource } from "../../core/state.mts";
import { Arm, fail, newGuid, ok, rgId, subscriptionScope, systemData, tagsOf, toWire, type ArmCall } from "./core.mts";
import { parseCron } from "../jobs/cron.mts";
import { JOB_TYPE, SECRET_NAME_RE, jobRunner, type Execution, type JobTemplate } from "../jobs/runner.mts";

const ENV_TYPE = "Microsoft.App/managedEnvironments";
const UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities";
const APP_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.App";

function bad(code: string, message: string): never {
  fail(400, code, message);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A job's `identity`: None, or UserAssigned with existing identities, each shown with principalId and clientId. */
function _identity(arm: Arm, jobId: string, given: unknown): Obj | undefined {
  if (given === undefined || given === null) return undefined;
  if (!isObj(given)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'identity must be an object.'.");
  const type = String(given.type ?? "None");
  if (type.toLowerCase() === "none") return { type: "None" };
  if (/systemassigned/i.test(type)) {
    bad("InvalidIdentityType", `The identity type '${type}' is not supported by the sandbox's Container Apps jobs; use 'UserAssigned'.`);
  }
  if (type.toLowerCase() !== "userassigned") bad("InvalidIdentityType", `The identity type '${type}' is invalid. Allowed values: 'None', 'SystemAssigned', 'UserAssigned', 'SystemAssigned,UserAssigned'.`);
  const uais = given.userAssignedIdentities;
  if (!isObj(uais) || Object.keys(uais).length === 0) {
    bad("BadRequestFormat", "The request format was unexpected: an identity of type 'UserAssigned' must name at least one user assigned identity.");
  }
  const out: Obj = {};
  for (const id of Object.keys(uais)) {
    const r = arm.state.getResource(id);
    if (!r || r.type !== UAMI_TYPE) {
      // ARM's own answer when a resource's identity names a UAMI that does not exist.
      bad("FailedIdentityOperation",
        `Identity operation for resource '${jobId}' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{"error":{"code":"NotFound","message":"Resource '${id}' does not exist or one of its queried reference-property objects are not present."}}'.'.`);
    }
    const p = r.properties as { principalId?: string; clientId?: string };
    out[r.id] = { principalId: p.principalId, clientId: p.clientId };
  }
  return { type: "UserAssigned", userAssignedIdentities: out };
}

/** Checks containers; a start request's override may leave out the image (it keeps the job's). */
function _containers(list: unknown, where: string, secrets: Set<string>, o: { override?: boolean } = {}): Obj[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) bad("InvalidRequestContent", `The request content was invalid and could not be deserialized: '${where} must be an array.'.`);
  return list.map((c, i) => {
    if (!isObj(c)) bad("InvalidRequestContent", `The request content was invalid and could not be deserialized: '${where}[${i}] must be an object.'.`);
    if (typeof c.name !== "string" || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(c.name) || c.name.length > 63) {
      bad("ContainerAppInvalidContainerName", `Invalid Request: container name '${String(c.name ?? "")}' must consist of lower case alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters.`);
    }
    if (!(o.override && c.image === undefined) && (typeof c.image !== "string" || !c.image)) {
      bad("ContainerAppImageRequired", `Invalid Request: the container '${c.name}' has no image.`);
    }
    for (const k of ["command", "args"]) {
      if (c[k] !== undefined && (!Array.isArray(c[k]) || !(c[k] as unknown[]).every((x) => typeof x === "string"))) {
        bad("InvalidRequestContent", `The request content was invalid and could not be deserialized: '${where}[${i}].${k} must be an array of strings.'.`);
      }
    }
    const env = c.env ?? [];
    if (!Array.isArray(env)) bad("InvalidRequestContent", `The request content was invalid and could not be deserialized: '${where}[${i}].env must be an array.'.`);
    for (const e of env) {
      if (!isObj(e) || typeof e.name !== "string" || !e.name) bad("InvalidRequestContent", `The request content was invalid and could not be deserialized: 'an env entry of container '${c.name}' has no name.'.`);
      if (e.secretRef !== undefined && !secrets.has(String(e.secretRef))) {
        // The code and text Azure gives are unconfirmed; this is the likeliest form.
        bad("ContainerAppSecretRefNotFound", `SecretRef '${String(e.secretRef)}' defined for container '${c.name}' not found.`);
      }
    }
    return c;
  });
}

/** Validates a job's properties (the PUT body's) into what is stored, with the secrets' values kept apart. */
function _jobProperties(arm: Arm, a: ArmCall, given: unknown): { props: Obj; secrets: Map<string, string> } {
  if (!isObj(given)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'.");
  const envId = given.environmentId;
  if (typeof envId !== "string" || !envId) bad("ManagedEnvironmentRequired", "Invalid Request: the property 'environmentId' is required.");
  const env = arm.state.getResource(envId);
  if (!env || env.type !== ENV_TYPE) {
    // Azure's code and text for an unknown environment are unconfirmed; this is the likeliest form.
    fail(404, "ManagedEnvironmentNotFound", `The managed environment '${envId}' was not found.`);
  }
  const config = given.configuration;
  if (!isObj(config)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'configuration' not found in JSON.'.");
  const trigger = String(config.triggerType ?? "");
  const triggerType = ["Manual", "Schedule", "Event"].find((t) => t.toLowerCase() === trigger.toLowerCase());
  if (!triggerType) bad("JobInvalidTriggerType", `Invalid Request: triggerType '${trigger}' is invalid. Allowed values: 'Manual', 'Schedule', 'Event'.`);
  if (triggerType === "Event") bad("JobTriggerTypeNotSupported", "The sandbox's Container Apps jobs do not support the trigger type 'Event'; use 'Manual' or 'Schedule'.");
  if (typeof config.replicaTimeout !== "number" || !Number.isInteger(config.replicaTimeout) || config.replicaTimeout < 1) {
    bad("JobInvalidReplicaTimeout", "Invalid Request: configuration.replicaTimeout is required and must be a positive number of seconds.");
  }
  const retry = config.replicaRetryLimit ?? 0;
  if (typeof retry !== "number" || !Number.isInteger(retry) || retry < 0) bad("JobInvalidReplicaRetryLimit", "Invalid Request: configuration.replicaRetryLimit must be a number of 0 or more.");
  const triggerKey = triggerType === "Schedule" ? "scheduleTriggerConfig" : "manualTriggerConfig";
  const triggerConfig = { parallelism: 1, replicaCompletionCount: 1, ...(isObj(config[triggerKey]) ? config[triggerKey] as Obj : {}) };
  for (const k of ["parallelism", "replicaCompletionCount"]) {
    const v = triggerConfig[k as keyof typeof triggerConfig];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) bad("JobInvalidParallelism", `Invalid Request: ${triggerKey}.${k} must be a positive number.`);
  }
  if (triggerType === "Schedule") {
    const cron = (triggerConfig as { cronExpression?: unknown }).cronExpression;
    if (typeof cron !== "string") bad("JobInvalidCronExpression", "Invalid Request: scheduleTriggerConfig.cronExpression is required for a job with triggerType 'Schedule'.");
    try {
      parseCron(cron);
    } catch (err) {
      // Azure's code and text are unconfirmed; the sandbox names the field that is wrong.
      bad("JobInvalidCronExpression", `Invalid Request: the cron expression '${cron}' is invalid: ${(err as Error).message.replace(/^Cannot parse cron expression '[^']*': /, "")}.`);
    }
  }
  const secrets = new Map<string, string>();
  const secretList = config.secrets ?? [];
  if (!Array.isArray(secretList)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'configuration.secrets must be an array.'.");
  for (const s of secretList) {
    const name = isObj(s) ? String(s.name ?? "") : "";
    if (!SECRET_NAME_RE.test(name) || name.length > 253) {
      // The rule and text are unconfirmed: lower-case alphanumerics, '-' and '.', as Kubernetes names.
      bad("ContainerAppSecretInvalid", `Invalid Request: Container app secret(s) with name(s) '${name}' are invalid: value must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character.`);
    }
    if (isObj(s) && s.keyVaultUrl !== undefined) bad("ContainerAppSecretNotSupported", `The sandbox does not resolve Key Vault references of Container Apps secrets ('${name}'); give a value.`);
    if (!isObj(s) || typeof s.value !== "string") bad("ContainerAppSecretInvalid", `Invalid Request: the secret '${name}' has no value.`);
    secrets.set(name, s.value as string);
  }
  const template = given.template;
  if (!isObj(template)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'template' not found in JSON.'.");
  const names = new Set(secrets.keys());
  const containers = _containers(template.containers, "template.containers", names);
  if (!containers.length) bad("ContainerAppContainersRequired", "Invalid Request: template.containers must have at least one container.");
  _containers(template.initContainers, "template.initContainers", names);
  const { secrets: _dropped, ...rest } = config;
  return {
    props: {
      provisioningState: "Succeeded",
      runningState: "Ready",
      environmentId: env.id,
      workloadProfileName: typeof given.workloadProfileName === "string" ? given.workloadProfileName : "Consumption",
      configuration: {
        ...rest,
        triggerType,
        replicaRetryLimit: retry,
        [triggerKey]: triggerConfig,
        // GET shows the secrets' names only; listSecrets would give the values.
        ...(secretList.length ? { secrets: [...secrets.keys()].map((name) => ({ name })) } : {}),
      },
      template,
      eventStreamEndpoint: `https://${env.location}.azurecontainerapps.dev/subscriptions/${a.sub.subscriptionId}/resourceGroups/${a.p.resourceGroupName}/containerApps/${a.p.jobName}/eventstream`,
    },
    secrets,
  };
}

function _executionWire(ex: Execution): Obj {
  return {
    name: ex.name,
    id: ex.id,
    type: "Microsoft.App/jobs/executions",
    properties: {
      status: ex.status,
      startTime: ex.startTime,
      ...(ex.endTime ? { endTime: ex.endTime } : {}),
      template: ex.template,
    },
  };
}

export function containerAppsRoutes(arm: Arm): Route[] {
  const { state } = arm;
  const runner = jobRunner(arm.ctx);

  const envId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${ENV_TYPE}/${a.p.environmentName}`;
  const jobId = (a: ArmCall) => `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${JOB_TYPE}/${a.p.jobName}`;

  const jobOr404 = (a: ArmCall, action: string): ArmResource => {
    arm.authorize(a.caller, jobId(a), action);
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const r = state.getResource(jobId(a));
    if (!r || r.type !== JOB_TYPE) arm.notFound(JOB_TYPE, a.p.jobName, a.p.resourceGroupName);
    return r;
  };
  const executionOr404 = (a: ArmCall, job: ArmResource): Execution => {
    const ex = runner.executionsOf(job.id).find((e) => e.name.toLowerCase() === a.p.jobExecutionName.toLowerCase());
    if (!ex) fail(404, "ResourceNotFound", `The job execution '${a.p.jobExecutionName}' of job '${job.name}' was not found.`);
    return ex;
  };
  const listIn = (type: string, scope: string, a: ArmCall) => ok({
    value: state.ofTypeUnder(type, scope).filter((r) => arm.allowed(a.caller.oid, r.id, `${type}/read`))
      .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
  });
  const nameCheck = (name: string, what: string): void => {
    // Container Apps names: 2-32 lower-case letters, digits and '-', starting with a letter (jobs and environments alike).
    if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(name) || name.includes("--")) {
      bad("InvalidResourceName", `Invalid ${what} name '${name}'. A name must consist of lower case alphanumeric characters or '-', start with a letter, end with an alphanumeric character, have at most 32 characters and not contain '--'.`);
    }
  };

  return [
    // ---- managed environments
    arm.route({ method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.App/managedEnvironments", type: ENV_TYPE, handler: (a) => listIn(ENV_TYPE, subscriptionScope(a.sub.subscriptionId), a) }),
    arm.route({
      method: "GET", path: `${APP_BASE}/managedEnvironments`, type: ENV_TYPE,
      handler: (a) => listIn(ENV_TYPE, arm.rgOr404(a.sub, a.p.resourceGroupName).id, a),
    }),
    arm.route({
      method: "PUT", path: `${APP_BASE}/managedEnvironments/:environmentName`, type: ENV_TYPE,
      handler: (a) => {
        const id = envId(a);
        arm.authorize(a.caller, id, `${ENV_TYPE}/write`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        nameCheck(a.p.environmentName, "managed environment");
        const body = a.body<{ location?: string; tags?: Record<string, string>; properties?: Obj }>();
        const location = arm.location(body, ENV_TYPE);
        const existing = state.getResource(id);
        const given = isObj(body.properties) ? body.properties : {};
        const prev = existing?.properties ?? {};
        const r: ArmResource = {
          id: existing?.id ?? `${rg.id}/providers/${ENV_TYPE}/${a.p.environmentName}`,
          name: existing?.name ?? a.p.environmentName,
          type: ENV_TYPE,
          location,
          tags: tagsOf(body) ?? existing?.tags,
          properties: {
            ...given,
            provisioningState: "Succeeded",
            defaultDomain: prev.defaultDomain ?? `${newGuid().slice(0, 8)}-${newGuid().slice(0, 4)}.${location}.azurecontainerapps.io`,
            staticIp: prev.staticIp ?? `20.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`,
            zoneRedundant: given.zoneRedundant ?? false,
            eventStreamEndpoint: `https://${location}.azurecontainerapps.dev/subscriptions/${a.sub.subscriptionId}/resourceGroups/${rg.name}/managedEnvironments/${a.p.environmentName}/eventstream`,
          },
          systemData: systemData(a.caller, state.now(), existing?.systemData as Obj | undefined),
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        state.putResource(r);
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
    arm.route({
      method: "GET", path: `${APP_BASE}/managedEnvironments/:environmentName`, type: ENV_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, envId(a), `${ENV_TYPE}/read`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const r = state.getResource(envId(a));
        if (!r || r.type !== ENV_TYPE) arm.notFound(ENV_TYPE, a.p.environmentName, a.p.resourceGroupName);
        return ok(toWire(r));
      },
    }),
    arm.route({
      method: "DELETE", path: `${APP_BASE}/managedEnvironments/:environmentName`, type: ENV_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, envId(a), `${ENV_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const r = state.getResource(envId(a));
        if (!r || r.type !== ENV_TYPE) return ok(undefined, 204);
        const inUse = state.ofType(JOB_TYPE).find((j) => String(j.properties.environmentId ?? "").toLowerCase() === r.id.toLowerCase());
        if (inUse) {
          // Azure refuses to delete an environment that still holds apps or jobs (text unconfirmed).
          fail(409, "ManagedEnvironmentHasContainerApps", `Cannot delete managed environment '${r.name}': it still has the job '${inUse.name}'. Delete its container apps and jobs first.`);
        }
        state.deleteResource(r.id);
        return ok(undefined, 200);
      },
    }),

    // ---- jobs
    arm.route({ method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.App/jobs", type: JOB_TYPE, handler: (a) => listIn(JOB_TYPE, subscriptionScope(a.sub.subscriptionId), a) }),
    arm.route({
      method: "GET", path: `${APP_BASE}/jobs`, type: JOB_TYPE,
      handler: (a) => listIn(JOB_TYPE, arm.rgOr404(a.sub, a.p.resourceGroupName).id, a),
    }),
    arm.route({
      method: "PUT", path: `${APP_BASE}/jobs/:jobName`, type: JOB_TYPE,
      handler: (a) => {
        const id = jobId(a);
        arm.authorize(a.caller, id, `${JOB_TYPE}/write`);
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        nameCheck(a.p.jobName, "job");
        const body = a.body<{ location?: string; tags?: Record<string, string>; identity?: unknown; properties?: unknown }>();
        const location = arm.location(body, JOB_TYPE);
        const existing = state.getResource(id);
        const identity = _identity(arm, existing?.id ?? id, body.identity);
        const { props, secrets } = _jobProperties(arm, a, body.properties);
        const r: ArmResource = {
          id: existing?.id ?? `${rg.id}/providers/${JOB_TYPE}/${a.p.jobName}`,
          name: existing?.name ?? a.p.jobName,
          type: JOB_TYPE,
          location,
          tags: tagsOf(body) ?? existing?.tags,
          ...(identity ? { identity } : {}),
          properties: props,
          systemData: systemData(a.caller, state.now(), existing?.systemData as Obj | undefined),
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: rg.name,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        state.putResource(r);
        runner.secrets.set(r.id.toLowerCase(), secrets);
        runner.jobChanged(r.id);
        return ok(toWire(r), existing ? 200 : 201);
      },
    }),
    arm.route({ method: "GET", path: `${APP_BASE}/jobs/:jobName`, type: JOB_TYPE, handler: (a) => ok(toWire(jobOr404(a, `${JOB_TYPE}/read`))) }),
    arm.route({
      method: "DELETE", path: `${APP_BASE}/jobs/:jobName`, type: JOB_TYPE,
      handler: async (a) => {
        arm.authorize(a.caller, jobId(a), `${JOB_TYPE}/delete`);
        arm.rgOr404(a.sub, a.p.resourceGroupName);
        const r = state.getResource(jobId(a));
        if (!r || r.type !== JOB_TYPE) return ok(undefined, 204);
        state.deleteResource(r.id);
        await runner.jobDeleted(r.id);
        return ok(undefined, 200);
      },
    }),
    arm.route({
      method: "POST", path: `${APP_BASE}/jobs/:jobName/start`, type: JOB_TYPE,
      handler: (a) => {
        const job = jobOr404(a, `${JOB_TYPE}/start/action`);
        const body = a.body<{ template?: unknown }>();
        if (body.template !== undefined && !isObj(body.template)) bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'template must be an object.'.");
        const override = body.template as JobTemplate | undefined;
        if (override?.containers !== undefined) _containers(override.containers, "template.containers", new Set(runner.secrets.get(job.id.toLowerCase())?.keys() ?? []), { override: true });
        const ex = runner.start(job, { trigger: "Manual", override });
        // The spec lists 200 with {name, id} and 202 with Location; which one Azure sends is
        // unconfirmed → 202 with Location (the execution) and the same body, configurable.
        const status = state.options.containerApps.startStatus;
        const location = `${arm.baseUrlAsCalled(a.c)}${ex.id}?api-version=${a.apiVersion}`;
        return ok({ name: ex.name, id: ex.id }, status, status === 202 ? { Location: location, "Retry-After": "0" } : undefined);
      },
    }),
    arm.route({
      method: "GET", path: `${APP_BASE}/jobs/:jobName/executions`, type: JOB_TYPE,
      handler: (a) => {
        const job = jobOr404(a, `${JOB_TYPE}/executions/read`);
        // Newest first, as the portal and az list them.
        return ok({ value: [...runner.executionsOf(job.id)].reverse().map(_executionWire), nextLink: null });
      },
    }),
    arm.route({
      method: "GET", path: `${APP_BASE}/jobs/:jobName/executions/:jobExecutionName`, type: JOB_TYPE,
      handler: (a) => ok(_executionWire(executionOr404(a, jobOr404(a, `${JOB_TYPE}/executions/read`)))),
    }),
    arm.route({
      method: "POST", path: `${APP_BASE}/jobs/:jobName/executions/:jobExecutionName/stop`, type: JOB_TYPE,
      handler: async (a) => {
        const ex = executionOr404(a, jobOr404(a, `${JOB_TYPE}/stop/action`));
        runner.stopExecution(ex);
        await ex.done;
        // The spec's 200 body is a sentence, not JSON.
        return ok(`Job Execution: ${ex.name}, stopped successfully.`);
      },
    }),
  ];
}
