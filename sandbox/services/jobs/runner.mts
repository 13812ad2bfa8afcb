// The sandbox's Container Apps jobs platform (docs/azure-behaviour.md §5.8): runs a job's
// executions as local processes (there is no container runtime here) and fires schedule
// triggers on the sandbox clock.
// - An image is mapped to local code by the admin API (POST /container-images), the sandbox's
//   `az acr build`: a working directory, and the runtime argv a leading `node` of the command
//   stands for (so a test on Node 20 passes the tsx launcher, Node 24 and Deno their own).
// - An execution runs max(parallelism, replicaCompletionCount) replicas, at most `parallelism`
//   at a time; a replica that exits non-zero is retried up to `replicaRetryLimit` times as a new
//   replica; one running past `replicaTimeout` is SIGKILLed and counts as failed. The execution
//   Succeeded once every replica has finished and at least replicaCompletionCount exited 0.
// - Every replica gets the container's env (`value`, `secretRef` resolved from the job's
//   secrets), CONTAINER_APP_JOB_NAME, CONTAINER_APP_JOB_EXECUTION_NAME, CONTAINER_APP_REPLICA_NAME
//   and IDENTITY_ENDPOINT + IDENTITY_HEADER of the sandbox's managed identity endpoint, whose
//   header for this execution issues tokens only for the job's user-assigned identities.
// - The replica's base environment is the sandbox's own (what DIR/env sets, without the az
//   stand-in on PATH and without the ISV compute's identity): in the sandbox that is what stands
//   for Azure's network, the way a container in Azure reaches Azure's public endpoints.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { SandboxContext } from "../../core/context.mts";
import type { ArmResource, SandboxState } from "../../core/state.mts";
import { latestCronInstant, parseCron } from "./cron.mts";

export const JOB_TYPE = "Microsoft.App/jobs";

/** JobExecutionRunningState of the Microsoft.App spec. */
export type ExecutionStatus = "Running" | "Processing" | "Stopped" | "Degraded" | "Failed" | "Unknown" | "Succeeded";

export interface ContainerImage {
  image: string;
  /** The container's working directory: the replica's cwd. */
  workdir: string;
  /** What a leading `node` in the command runs: [argv0, ...preArgs]. */
  node?: string[];
  /** The image's default command (Dockerfile CMD), when the container names none. */
  cmd?: string[];
  /** The image's own ENV lines. */
  env?: Record<string, string>;
}

export interface JobIdentity {
  resourceId: string;
  principalId: string;
  clientId: string;
  tenantId: string;
}

export interface ReplicaRecord {
  name: string;
  /** Which replica slot of the execution (0-based) and which try of it (0 = first). */
  slot: number;
  attempt: number;
  startTime: string;
  endTime?: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

interface Container {
  name?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; secretRef?: string }>;
}

export interface JobTemplate {
  containers?: Container[];
  initContainers?: Container[];
  [k: string]: unknown;
}

export interface Execution {
  id: string;
  name: string;
  jobId: string;
  jobName: string;
  trigger: "Manual" | "Schedule";
  status: ExecutionStatus;
  startTime: string;
  endTime?: string;
  template: JobTemplate;
  replicas: ReplicaRecord[];
  /** Why it failed without a replica's exit code to show for it (an image pull failure). */
  reason?: string;
  stopRequested: boolean;
  children: Set<ChildProcess>;
  done: Promise<void>;
}

/** What the job resource and its side store hold that an execution needs. */
export interface JobDefinition {
  resource: ArmResource;
  /** The job's secrets with their values (the resource itself shows names only). */
  secrets: Map<string, string>;
}

const OUTPUT_LIMIT_CHARS = 1_000_000;
const SCHEDULER_TICK_MS = 250;
const EXECUTION_SUFFIX_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789";

const randomSuffix = (n: number) => [...randomBytes(n)].map((b) => EXECUTION_SUFFIX_CHARS[b % EXECUTION_SUFFIX_CHARS.length]).join("");

/** A secret's name Container Apps accepts (unconfirmed: lower-case alphanumerics, '-' and '.'). */
export const SECRET_NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export class JobRunner {
  readonly ctx: SandboxContext;
  readonly state: SandboxState;
  readonly images = new Map<string, ContainerImage>();
  /** Executions by lower-cased job id, oldest first. */
  readonly executions = new Map<string, Execution[]>();
  /** Secrets with values, by lower-cased job id. */
  readonly secrets = new Map<string, Map<string, string>>();
  /** The IDENTITY_HEADER of each running execution → the identities it may get tokens for. */
  private readonly identityHeaders = new Map<string, { executionId: string; identities: JobIdentity[] }>();
  /** Per scheduled job: the sandbox time up to which its instants were looked at. */
  private readonly scheduledUpTo = new Map<string, number>();
  private platformEnv: Record<string, string> = {};
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;

  constructor(ctx: SandboxContext) {
    this.ctx = ctx;
    this.state = ctx.state;
  }

  /** The environment every replica starts from (set by main.mts once the endpoints are known). */
  setPlatformEnv(env: Record<string, string>): void {
    this.platformEnv = { ...env };
  }

  /** Starts the schedule trigger's clock. */
  startScheduler(): void {
    this.timer ??= setInterval(() => this.tick(), SCHEDULER_TICK_MS);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** A job was created or changed: its schedule counts from now (no instant before its creation fires). */
  jobChanged(jobId: string): void {
    this.scheduledUpTo.set(jobId.toLowerCase(), this.state.now());
  }

  /** A job was deleted: its running executions are stopped and forgotten. */
  async jobDeleted(jobId: string): Promise<void> {
    const key = jobId.toLowerCase();
    const list = this.executions.get(key) ?? [];
    for (const ex of list) this.stopExecution(ex);
    await Promise.all(list.map((ex) => ex.done));
    this.executions.delete(key);
    this.secrets.delete(key);
    this.scheduledUpTo.delete(key);
  }

  /**
   * One look at the sandbox clock: a schedule whose instants passed since the last look starts
   * ONE execution, for the latest of them. A scheduler does not replay missed instants (when the
   * clock jumps over several hours, the job runs once, as a job whose platform was down would).
   */
  tick(): void {
    if (this.stopped) return;
    const now = this.state.now();
    for (const job of this.state.ofType(JOB_TYPE)) {
      const config = (job.properties.configuration ?? {}) as { triggerType?: string; scheduleTriggerConfig?: { cronExpression?: string } };
      if (config.triggerType !== "Schedule" || !config.scheduleTriggerConfig?.cronExpression) continue;
      const key = job.id.toLowerCase();
      const last = this.scheduledUpTo.get(key) ?? job.createdAtMs;
      this.scheduledUpTo.set(key, now);
      // A clock moved back starts the count again from the new now.
      if (now <= last) continue;
      let instant: number | undefined;
      try {
        instant = latestCronInstant(parseCron(config.scheduleTriggerConfig.cronExpression), last, now);
      } catch {
        continue; // refused at PUT; a stored bad expression never fires
      }
      // Scheduled executions are named after the instant in epoch minutes, as Azure names them.
      if (instant !== undefined) this.start(job, { trigger: "Schedule", name: `${job.name}-${Math.floor(instant / 60_000)}` });
    }
  }

  identitiesForHeader(header: string): JobIdentity[] | undefined {
    return this.identityHeaders.get(header)?.identities;
  }

  executionsOf(jobId: string): Execution[] {
    return this.executions.get(jobId.toLowerCase()) ?? [];
  }

  /** The job's attached user-assigned identities that still exist. */
  private identitiesOf(job: ArmResource): JobIdentity[] {
    const uais = ((job.identity ?? {}) as { userAssignedIdentities?: Record<string, unknown> }).userAssignedIdentities ?? {};
    const out: JobIdentity[] = [];
    for (const id of Object.keys(uais)) {
      const r = this.state.getResource(id);
      if (!r) continue;
      const p = r.properties as { principalId?: string; clientId?: string; tenantId?: string };
      out.push({ resourceId: r.id, principalId: String(p.principalId), clientId: String(p.clientId), tenantId: String(p.tenantId ?? r.tenantId) });
    }
    return out;
  }

  /** Starts an execution of `job` (the template override replaces containers' command, args and env by name). */
  start(job: ArmResource, o: { trigger: "Manual" | "Schedule"; override?: JobTemplate; name?: string }): Execution {
    const name = o.name ?? `${job.name}-${randomSuffix(7)}`;
    const template = mergeTemplate(job.properties.template as JobTemplate, o.override);
    const ex: Execution = {
      id: `${job.id}/executions/${name}`,
      name,
      jobId: job.id,
      jobName: job.name,
      trigger: o.trigger,
      status: "Running",
      startTime: new Date(this.state.now()).toISOString(),
      template,
      replicas: [],
      stopRequested: false,
      children: new Set(),
      done: Promise.resolve(),
    };
    const key = job.id.toLowerCase();
    this.executions.set(key, [...(this.executions.get(key) ?? []), ex]);
    ex.done = this.run(job, ex).catch((err) => {
      ex.reason = `The sandbox could not run the execution: ${(err as Error).message}`;
      this.finish(ex, "Failed");
    });
    return ex;
  }

  private finish(ex: Execution, status: ExecutionStatus): void {
    if (ex.endTime) return;
    ex.status = ex.stopRequested ? "Stopped" : status;
    ex.endTime = new Date(this.state.now()).toISOString();
  }

  /** Stops an execution: its replicas are killed, its status becomes Stopped. */
  stopExecution(ex: Execution): void {
    if (ex.endTime) return;
    ex.stopRequested = true;
    for (const child of ex.children) child.kill("SIGKILL");
  }

  private async run(job: ArmResource, ex: Execution): Promise<void> {
    const config = (job.properties.configuration ?? {}) as Record<string, unknown>;
    const trigger = (config.triggerType === "Schedule" ? config.scheduleTriggerConfig : config.manualTriggerConfig) as
      { parallelism?: number; replicaCompletionCount?: number } | undefined;
    const parallelism = Math.max(1, Number(trigger?.parallelism ?? 1));
    const completions = Math.max(1, Number(trigger?.replicaCompletionCount ?? 1));
    const retryLimit = Math.max(0, Number(config.replicaRetryLimit ?? 0));
    const timeoutMs = Math.max(1, Number(config.replicaTimeout ?? 1800)) * 1000;
    const container = ex.template.containers?.[0];
    const image = container?.image ? this.images.get(container.image) : undefined;
    if (!container || !image) {
      // A container runtime would fail to pull the image and the execution would fail; here an
      // image no one registered (POST /container-images) is that pull failure.
      ex.reason = `Failed to pull image '${container?.image ?? ""}': the sandbox has no image of that name (register it with POST /container-images).`;
      this.finish(ex, "Failed");
      return;
    }
    const header = randomBytes(16).toString("hex");
    this.identityHeaders.set(header, { executionId: ex.id, identities: this.identitiesOf(job) });
    const secrets = this.secrets.get(job.id.toLowerCase()) ?? new Map<string, string>();
    const slots = Math.max(parallelism, completions);
    let next = 0;
    let succeeded = 0;
    const worker = async () => {
      while (next < slots && !ex.stopRequested && !this.stopped) {
        const slot = next++;
        for (let attempt = 0; attempt <= retryLimit && !ex.stopRequested && !this.stopped; attempt++) {
          const r = await this.runReplica(job, ex, image, container, secrets, header, slot, attempt, timeoutMs);
          if (r.exitCode === 0) {
            succeeded++;
            break;
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(parallelism, slots) }, worker));
    } finally {
      this.identityHeaders.delete(header);
    }
    this.finish(ex, succeeded >= completions ? "Succeeded" : "Failed");
  }

  private runReplica(
    job: ArmResource, ex: Execution, image: ContainerImage, container: Container, secrets: Map<string, string>,
    header: string, slot: number, attempt: number, timeoutMs: number,
  ): Promise<ReplicaRecord> {
    const rec: ReplicaRecord = {
      name: `${ex.name}-${randomSuffix(5)}`, slot, attempt, startTime: new Date(this.state.now()).toISOString(),
      exitCode: null, signal: null, timedOut: false, stdout: "", stderr: "",
    };
    ex.replicas.push(rec);
    const argv = [...(container.command ?? image.cmd ?? []), ...(container.args ?? [])];
    if (argv[0] === "node" && image.node?.length) argv.splice(0, 1, ...image.node);
    const env: Record<string, string> = { ...this.platformEnv, ...(image.env ?? {}) };
    for (const e of container.env ?? []) env[e.name] = e.secretRef !== undefined ? secrets.get(e.secretRef) ?? "" : String(e.value ?? "");
    Object.assign(env, {
      CONTAINER_APP_JOB_NAME: job.name,
      CONTAINER_APP_JOB_EXECUTION_NAME: ex.name,
      CONTAINER_APP_REPLICA_NAME: rec.name,
      IDENTITY_ENDPOINT: `${this.ctx.endpoints.managedIdentity}/msi/token`,
      IDENTITY_HEADER: header,
    });
    return new Promise((resolve) => {
      let ended = false;
      const end = (code: number | null, signal: string | null) => {
        // A command that cannot start reports 'error' and may 'close' after it: the first word stands.
        if (ended) return;
        ended = true;
        rec.exitCode = code;
        rec.signal = signal;
        rec.endTime = new Date(this.state.now()).toISOString();
        resolve(rec);
      };
      if (!argv.length) {
        rec.stderr = "The container has no command and its image no default command.";
        end(127, null);
        return;
      }
      let child: ChildProcess;
      try {
        child = spawn(argv[0], argv.slice(1), { cwd: image.workdir, env, stdio: ["ignore", "pipe", "pipe"] });
      } catch (err) {
        rec.stderr = `Cannot start the container's command: ${(err as Error).message}`;
        end(127, null);
        return;
      }
      ex.children.add(child);
      const keep = (field: "stdout" | "stderr") => (d: Buffer) => {
        if (rec[field].length < OUTPUT_LIMIT_CHARS) rec[field] += d.toString("utf8");
      };
      child.stdout!.on("data", keep("stdout"));
      child.stderr!.on("data", keep("stderr"));
      const timer = setTimeout(() => {
        rec.timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.once("error", (err) => {
        clearTimeout(timer);
        ex.children.delete(child);
        rec.stderr += `Cannot start the container's command '${argv[0]}': ${err.message}\n`;
        end(127, null);
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        ex.children.delete(child);
        end(code, signal);
      });
    });
  }

  /** Kills every replica (the sandbox is stopping) and waits for the executions to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const all = [...this.executions.values()].flat();
    for (const ex of all) this.stopExecution(ex);
    await Promise.all(all.map((ex) => ex.done));
  }
}

/** The job's template with a start request's override: containers matched by name, their command, args and env replaced. */
export function mergeTemplate(base: JobTemplate, override?: JobTemplate): JobTemplate {
  const out = structuredClone(base ?? {}) as JobTemplate;
  if (!override?.containers) return out;
  for (const o of override.containers) {
    const target = out.containers?.find((c) => c.name === o.name);
    if (!target) continue;
    if (o.command !== undefined) target.command = o.command;
    if (o.args !== undefined) target.args = o.args;
    if (o.env !== undefined) target.env = o.env;
    if (o.image !== undefined) target.image = o.image;
  }
  return out;
}

/** The sandbox's job platform (one per sandbox, made on first use). */
export function jobRunner(ctx: SandboxContext): JobRunner {
  return ctx.state.store("containerApps.runner", () => new JobRunner(ctx));
}

/** The job platform if it exists (the managed identity endpoint asks without making one). */
export function existingJobRunner(state: SandboxState): JobRunner | undefined {
  return state.stores.get("containerApps.runner") as JobRunner | undefined;
}
