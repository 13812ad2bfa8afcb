// The publisher's Entra app: the app registered in the offer's technical configuration in
// Partner Center, the one caller the metering API takes for every customer and the only one of
// GET /api/usageEvents. It gets no secret: a federated credential on it trusts this project's
// issuer (the same Key Vault key and issuer documents as the customers' UAMIs, a subject of its
// own). Graph is reached through `az rest` with the signed-in user's token, the calls
// `az ad app federated-credential create` makes. lib/publisher/context.mts builds its token source.
import { MeteringError, ResourceNotFoundError, UsageError } from "../core/errors.mts";
import { isGuid } from "../core/validate.mts";
import { rest as azRest, type AzRest } from "../azure/az.mts";
import type { MeteringConfig } from "../state/config.mts";

/** Microsoft Graph v1.0 (az rest derives the token's resource from this host). */
export const GRAPH_V1 = "https://graph.microsoft.com/v1.0";
export const PUBLISHER_APP_AUDIENCE = "api://AzureADTokenExchange";
/** The federated credential's name on the app (immutable in Entra; 3–120 characters). */
export const PUBLISHER_APP_FIC_NAME = "marketplace-metering-publisher";

/** `publisher.app` in config.json. */
export interface PublisherAppConfig {
  /** The ISV tenant, where the app and its service principal live and the token is issued. */
  tenantId: string;
  /** The app (client) id: what Partner Center's technical configuration names. */
  appId: string;
  /** The app registration's object id (Graph `id`). */
  objectId: string;
  displayName: string;
  subject: string;
  audience: string;
  ficName: string;
  /** When the federated credential was created (Entra may refuse it for minutes after). */
  ficCreatedAt?: string;
  [key: string]: unknown;
}

/** The publisher app cannot be set up as asked (a conflicting credential, an ambiguous name): exit 1. */
export class PublisherAppError extends MeteringError {
  static override code = "ERR_PUBLISHER_APP";
  override code = "ERR_PUBLISHER_APP";
}

/** The subject of the publisher app's credential: not the customers' (`metering-submission-via-uami from …`). */
export function publisherAppSubject(isvTenantId: string): string {
  return `metering-submission-via-publisher-app from ${isvTenantId}`;
}

/** What is wrong with `publisher.app` of config.json ([] when it is absent or fine). Pure. */
export function publisherAppProblems(app: unknown): string[] {
  if (app === undefined) return [];
  if (app === null || typeof app !== "object" || Array.isArray(app)) return ["publisher.app: expected an object"];
  const a = app as Record<string, unknown>;
  const out: string[] = [];
  for (const k of ["tenantId", "appId"]) if (!isGuid(a[k])) out.push(`publisher.app.${k}: expected a GUID`);
  for (const k of ["subject", "audience", "objectId"]) if (typeof a[k] !== "string" || a[k] === "") out.push(`publisher.app.${k}: missing`);
  return out;
}

interface GraphApp { id: string; appId: string; displayName: string }
interface GraphFic { id: string; name: string; issuer: string; subject: string; audiences: string[] }

const _q = (s: string) => s.replace(/'/g, "''");

async function _list<T>(rest: AzRest, path: string): Promise<T[]> {
  const out: T[] = [];
  let url: string | undefined = `${GRAPH_V1}${path}`;
  // Graph pages with @odata.nextLink, as az follows it.
  for (let i = 0; url && i < 100; i++) {
    const page = await rest({ method: "GET", url }) as { value?: T[]; "@odata.nextLink"?: string } | null;
    out.push(...(page?.value ?? []));
    url = page?.["@odata.nextLink"];
  }
  return out;
}

/** The app with this app id, or (as az resolves `--id`) this object id; undefined when neither exists. */
export async function findApplication(o: { id: string; rest?: AzRest }): Promise<GraphApp | undefined> {
  const rest = o.rest ?? azRest;
  const [byAppId] = await _list<GraphApp>(rest, `/applications?$filter=${encodeURIComponent(`appId eq '${_q(o.id)}'`)}`);
  if (byAppId) return byAppId;
  try {
    return await rest({ method: "GET", url: `${GRAPH_V1}/applications/${encodeURIComponent(o.id)}` }) as GraphApp;
  } catch (error) {
    if (/Request_ResourceNotFound|Not Found/i.test(String((error as Error).message))) return undefined;
    throw error;
  }
}

/** What setupPublisherApp did (or, with dryRun, would do), one line each. */
export interface SetupAction {
  what: string;
  target: string;
  done: boolean;
}

export interface SetupPublisherAppResult {
  app: PublisherAppConfig;
  actions: SetupAction[];
  /** Resource URLs written (for the change record). */
  targets: string[];
}

/**
 * Adopts (`appId`) or creates (`create`: a display name; an app of exactly that name is reused,
 * as `az ad app create` does) the publisher app in the signed-in user's tenant, makes sure it has
 * a service principal there (client credentials need one), and adds the federated credential that
 * trusts `config.publisher.idp.issuer` with the publisher app's subject. Idempotent: what exists
 * and matches is kept. With `dryRun` nothing is written; the actions say what would be.
 */
export async function setupPublisherApp(o: {
  config: MeteringConfig;
  appId?: string;
  create?: string;
  dryRun?: boolean;
  rest?: AzRest;
  now?: () => number;
  onProgress?: (text: string) => void;
}): Promise<SetupPublisherAppResult> {
  const rest = o.rest ?? azRest;
  const idp = o.config.publisher.idp;
  const tenantId = o.config.publisher.aadTenantId;
  if (!idp || !tenantId) throw new UsageError("Cannot set up the publisher app: config.json has no publisher.idp (run 0-isv-setup first)");
  if ((o.appId === undefined) === (o.create === undefined)) throw new UsageError("Cannot set up the publisher app: give --app-id ID or --create NAME");
  const previous = o.config.publisher.app as PublisherAppConfig | undefined;
  const actions: SetupAction[] = [];
  const targets: string[] = [];
  const act = (what: string, target: string, done: boolean) => {
    actions.push({ what, target, done });
    o.onProgress?.(`${done ? "" : o.dryRun ? "would: " : ""}${what}`);
  };

  // 1. The app registration.
  let app: GraphApp | undefined;
  if (o.appId !== undefined) {
    app = await findApplication({ id: o.appId, rest });
    if (!app) {
      throw new ResourceNotFoundError(`Cannot adopt the publisher app: no app registration with app id or object id ${o.appId} in tenant ${tenantId} (check the technical configuration in Partner Center, or create one with --create NAME)`);
    }
    act(`Adopting app ${app.displayName} (appId ${app.appId})`, `${GRAPH_V1}/applications/${app.id}`, true);
  } else {
    const name = o.create!;
    const named = (await _list<GraphApp>(rest, `/applications?$filter=${encodeURIComponent(`startswith(displayName,'${_q(name)}')`)}`))
      .filter((a) => a.displayName === name);
    if (named.length > 1) {
      throw new PublisherAppError(`Cannot create the publisher app: ${named.length} apps are named ${JSON.stringify(name)} (appIds ${named.map((a) => a.appId).join(", ")}); adopt one with --app-id`);
    }
    app = named[0];
    if (app) act(`Reusing app ${name} (appId ${app.appId})`, `${GRAPH_V1}/applications/${app.id}`, true);
    else if (o.dryRun) act(`Creating app ${name}`, `${GRAPH_V1}/applications`, false);
    else {
      app = await rest({ method: "POST", url: `${GRAPH_V1}/applications`, body: { displayName: name, signInAudience: "AzureADMyOrg" } }) as GraphApp;
      targets.push(`${GRAPH_V1}/applications/${app.id}`);
      act(`Created app ${name} (appId ${app.appId})`, targets.at(-1)!, true);
    }
  }

  const subject = previous?.appId === app?.appId && previous?.subject ? previous.subject : publisherAppSubject(tenantId);
  const audience = PUBLISHER_APP_AUDIENCE;
  const want = { name: PUBLISHER_APP_FIC_NAME, issuer: idp.issuer, subject, audiences: [audience], description: "Marketplace metering: assertions signed in Key Vault by this publisher's issuer" };
  if (!app) {
    // A dry run of --create: nothing exists yet, everything would be created.
    act("Creating its service principal", `${GRAPH_V1}/servicePrincipals`, false);
    act(`Adding federated credential ${want.name} (issuer ${want.issuer}, subject ${JSON.stringify(subject)}, audience ${audience})`, `${GRAPH_V1}/applications/{id}/federatedIdentityCredentials`, false);
    return { app: { tenantId, appId: "", objectId: "", displayName: o.create!, subject, audience, ficName: want.name }, actions, targets };
  }

  // 2. Its service principal in the tenant.
  const sps = await _list<{ id: string }>(rest, `/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${_q(app.appId)}'`)}`);
  if (sps.length > 0) act(`Service principal exists (${sps[0].id})`, `${GRAPH_V1}/servicePrincipals/${sps[0].id}`, true);
  else if (o.dryRun) act("Creating its service principal", `${GRAPH_V1}/servicePrincipals`, false);
  else {
    const sp = await rest({ method: "POST", url: `${GRAPH_V1}/servicePrincipals`, body: { appId: app.appId } }) as { id: string };
    targets.push(`${GRAPH_V1}/servicePrincipals/${sp.id}`);
    act(`Created its service principal (${sp.id})`, targets.at(-1)!, true);
  }

  // 3. The federated credential: kept when identical; ours (by name) updated in place when it
  // differs (Graph's PATCH keeps its id; a delete and create would leave a moment with none);
  // another credential holding the same issuer and subject is not ours to change: refused.
  const ficsUrl = `${GRAPH_V1}/applications/${app.id}/federatedIdentityCredentials`;
  const fics = await _list<GraphFic>(rest, `/applications/${app.id}/federatedIdentityCredentials`);
  const same = (f: GraphFic) => f.issuer === want.issuer && f.subject === want.subject && f.audiences.length === 1 && f.audiences[0] === audience;
  const ours = (f: GraphFic) => f.name.toLowerCase() === want.name.toLowerCase();
  const describeFic = (f: GraphFic) => `issuer ${f.issuer}, subject ${JSON.stringify(f.subject)}, audiences ${JSON.stringify(f.audiences)}`;
  const wanted = `issuer ${want.issuer}, subject ${JSON.stringify(subject)}, audience ${audience}`;
  let fic = fics.find(same);
  let ficCreatedAt = fic && previous?.appId === app.appId && previous.ficName === fic.name ? previous.ficCreatedAt : undefined;
  if (fic) act(`Federated credential ${fic.name} matches (issuer, subject, audience)`, `${ficsUrl}/${fic.id}`, true);
  else {
    const other = fics.find((f) => !ours(f) && f.issuer === want.issuer && f.subject === want.subject);
    if (other) {
      throw new PublisherAppError(
        `Cannot add the federated credential: ${app.displayName} has ${JSON.stringify(other.name)} with ${describeFic(other)}, not what this project signs (${wanted}), and Entra allows one credential per issuer and subject; delete it (az ad app federated-credential delete --id ${app.appId} --federated-credential-id ${other.id}) and run again`,
      );
    }
    const mine = fics.find(ours);
    const stamp = () => new Date((o.now ?? Date.now)()).toISOString();
    if (mine) {
      const what = `federated credential ${mine.name} (was ${describeFic(mine)}; now ${wanted})`;
      if (o.dryRun) act(`Updating ${what}`, `${ficsUrl}/${mine.id}`, false);
      else {
        const { name: _name, ...changes } = want;
        await rest({ method: "PATCH", url: `${ficsUrl}/${mine.id}`, body: changes });
        fic = { ...mine, issuer: want.issuer, subject, audiences: [audience] };
        ficCreatedAt = stamp();
        targets.push(`${ficsUrl}/${mine.id}`);
        act(`Updated ${what}`, targets.at(-1)!, true);
      }
    } else if (o.dryRun) act(`Adding federated credential ${want.name} (${wanted})`, ficsUrl, false);
    else {
      fic = await rest({ method: "POST", url: ficsUrl, body: want }) as GraphFic;
      ficCreatedAt = stamp();
      targets.push(`${ficsUrl}/${fic.id}`);
      act(`Added federated credential ${fic.name} (${wanted})`, targets.at(-1)!, true);
    }
  }
  return {
    app: {
      tenantId, appId: app.appId, objectId: app.id, displayName: app.displayName, subject, audience, ficName: fic?.name ?? want.name,
      ...(ficCreatedAt ? { ficCreatedAt } : {}),
    },
    actions,
    targets,
  };
}

/** Returns a copy of config with `publisher.app` set. Pure. */
export function withPublisherApp(config: MeteringConfig, app: PublisherAppConfig): MeteringConfig {
  return { ...config, publisher: { ...config.publisher, app } };
}

/** The federated credentials of the app (the doctor compares them with config). */
export async function listPublisherAppCredentials(o: { objectId: string; rest?: AzRest }): Promise<GraphFic[]> {
  return await _list<GraphFic>(o.rest ?? azRest, `/applications/${encodeURIComponent(o.objectId)}/federatedIdentityCredentials`);
}
