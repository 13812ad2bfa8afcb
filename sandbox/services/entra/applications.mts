// App registrations, their federated identity credentials and service principals: the directory
// objects Microsoft Graph writes (sandbox/services/graph) and Entra's token endpoint reads (a
// publisher app signing in with a federated assertion, docs/azure-behaviour.md §3.6). One store per
// sandbox in `state.stores`; the offers' technical configurations of the world are seeded into it
// (an app and its service principal in the ISV tenant, as Partner Center expects them).
import { randomUUID } from "node:crypto";
import type { SandboxState } from "../../core/state.mts";

/** Entra's limit per application, as for a UAMI (docs/azure-behaviour.md §3.6). */
export const MAX_FICS_PER_APP = 20;
const MAX_CLAIM_LENGTH = 600;
const FIC_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

export interface AppFic {
  id: string;
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
  description: string | null;
  createdAtMs: number;
}

export interface AppRegistration {
  /** The object id (Graph `id`). */
  id: string;
  appId: string;
  displayName: string;
  tenantId: string;
  signInAudience: string;
  createdDateTime: string;
  fics: AppFic[];
}

export interface ServicePrincipal {
  id: string;
  appId: string;
  displayName: string;
  tenantId: string;
  servicePrincipalType: "Application";
}

/** A directory write Graph refuses: its status, Graph error code and message. */
export class DirectoryError extends Error {
  status: number;
  code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "DirectoryError";
    this.status = status;
    this.code = code;
  }
}

const lc = (s: unknown) => String(s ?? "").toLowerCase();
const _bad = (message: string) => new DirectoryError(400, "Request_BadRequest", message);

export class AppDirectory {
  readonly apps = new Map<string, AppRegistration>();
  readonly servicePrincipals = new Map<string, ServicePrincipal>();
  #state: SandboxState;

  constructor(state: SandboxState) {
    this.#state = state;
  }

  /** Apps of a tenant (every tenant when omitted), in creation order. */
  list(tenantId?: string): AppRegistration[] {
    return [...this.apps.values()].filter((a) => tenantId === undefined || lc(a.tenantId) === lc(tenantId));
  }

  byObjectId(id: string, tenantId?: string): AppRegistration | undefined {
    const app = this.apps.get(lc(id));
    return app && (tenantId === undefined || lc(app.tenantId) === lc(tenantId)) ? app : undefined;
  }

  /** The app registration with this appId (the client id), homed in `tenantId` when given. */
  byAppId(appId: string, tenantId?: string): AppRegistration | undefined {
    return this.list(tenantId).find((a) => lc(a.appId) === lc(appId));
  }

  createApp(o: { tenantId: string; displayName: string; appId?: string; id?: string }): AppRegistration {
    if (typeof o.displayName !== "string" || o.displayName.trim() === "") {
      throw new DirectoryError(400, "Request_BadRequest", "Property displayName is required and cannot be empty.");
    }
    const app: AppRegistration = {
      id: o.id ?? randomUUID(),
      appId: o.appId ?? randomUUID(),
      displayName: o.displayName,
      tenantId: o.tenantId,
      signInAudience: "AzureADMyOrg",
      createdDateTime: new Date(this.#state.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
      fics: [],
    };
    this.apps.set(lc(app.id), app);
    return app;
  }

  /**
   * Adds a federated credential with Entra's rules (docs/azure-behaviour.md §3.6): name 3–120
   * characters (alphanumeric, `-`, `_`, first alphanumeric) and unique; issuer and subject
   * required, at most 600 characters, and unique as a pair; exactly one audience of at most 600;
   * at most 20 per app. Graph's exact texts for apps are unconfirmed: ARM's UAMI texts, as
   * Graph's `Request_BadRequest`.
   */
  addFic(app: AppRegistration, body: Record<string, unknown>): AppFic {
    const { name } = body;
    if (typeof name !== "string" || !FIC_NAME_RE.test(name)) throw _bad(`Federated Identity Credential name '${String(name ?? "")}' is invalid.`);
    if (app.fics.some((f) => f.name.toLowerCase() === name.toLowerCase())) {
      throw new DirectoryError(409, "Request_MultipleObjectsWithSameKeyValue", `Federated Identity Credential with name '${name}' already exists.`);
    }
    this.#checkFic(app, body, undefined);
    if (app.fics.length >= MAX_FICS_PER_APP) throw _bad(`An application can have at most ${MAX_FICS_PER_APP} federated identity credentials.`);
    const { issuer, subject, audiences, description } = body;
    const fic: AppFic = {
      id: randomUUID(), name, issuer: issuer as string, subject: subject as string, audiences: [(audiences as string[])[0]],
      description: typeof description === "string" ? description : null, createdAtMs: this.#state.now(),
    };
    app.fics.push(fic);
    return fic;
  }

  /**
   * Graph's `PATCH …/federatedIdentityCredentials/{id or name}` (204): the given properties of
   * `issuer`, `subject`, `audiences`, `description` replace the stored ones, and the result must
   * pass the same rules as a create (the issuer and subject pair unique among the app's other
   * credentials). `name` is immutable: the same name may be sent, another is a 400; any other
   * property is a 400 (Graph's texts for both unconfirmed). The credential keeps its id; its
   * propagation clock starts again, as a changed credential needs the same time to reach Entra.
   */
  updateFic(app: AppRegistration, fic: AppFic, body: Record<string, unknown>): AppFic {
    for (const key of Object.keys(body)) {
      if (!["name", "issuer", "subject", "audiences", "description"].includes(key)) throw _bad(`Invalid property '${key}' for a federated identity credential.`);
    }
    if (body.name !== undefined && (typeof body.name !== "string" || body.name.toLowerCase() !== fic.name.toLowerCase())) {
      throw _bad(`Property name of a federated identity credential is immutable: it is '${fic.name}'.`);
    }
    const merged = { issuer: fic.issuer, subject: fic.subject, audiences: fic.audiences, description: fic.description, ...body };
    this.#checkFic(app, merged, fic);
    Object.assign(fic, {
      issuer: merged.issuer as string, subject: merged.subject as string, audiences: [(merged.audiences as string[])[0]],
      description: typeof merged.description === "string" ? merged.description : null, createdAtMs: this.#state.now(),
    });
    return fic;
  }

  /** The rules of a credential's values (`self`: the credential being updated, not compared with itself). */
  #checkFic(app: AppRegistration, body: Record<string, unknown>, self: AppFic | undefined): void {
    const bad = _bad;
    const { issuer, subject, audiences, description } = body;
    for (const [field, v] of [["issuer", issuer], ["subject", subject]] as const) {
      if (typeof v !== "string" || v === "") throw bad(`Property ${field} is required and cannot be empty.`);
      if (v.length > MAX_CLAIM_LENGTH) throw bad(`Property ${field} is longer than ${MAX_CLAIM_LENGTH} characters.`);
    }
    if (!Array.isArray(audiences) || audiences.length !== 1 || typeof audiences[0] !== "string" || audiences[0] === "") {
      throw bad("Federated identity credentials must have exactly one audience.");
    }
    if ((audiences[0] as string).length > MAX_CLAIM_LENGTH) throw bad(`Property audiences is longer than ${MAX_CLAIM_LENGTH} characters.`);
    if (description !== undefined && description !== null && (typeof description !== "string" || description.length > MAX_CLAIM_LENGTH)) {
      throw bad(`Property description must be a string of at most ${MAX_CLAIM_LENGTH} characters.`);
    }
    if (app.fics.some((f) => f !== self && f.issuer === issuer && f.subject === subject)) throw bad("Issuer and subject combination already exists for this application.");
  }

  /** A credential by id or by name (Graph's alternate key). */
  fic(app: AppRegistration, idOrName: string): AppFic | undefined {
    return app.fics.find((f) => f.id === lc(idOrName)) ?? app.fics.find((f) => f.name.toLowerCase() === lc(idOrName));
  }

  deleteFic(app: AppRegistration, idOrName: string): boolean {
    const fic = this.fic(app, idOrName);
    if (!fic) return false;
    app.fics.splice(app.fics.indexOf(fic), 1);
    return true;
  }

  servicePrincipalOf(appId: string, tenantId: string): ServicePrincipal | undefined {
    return [...this.servicePrincipals.values()].find((s) => lc(s.appId) === lc(appId) && lc(s.tenantId) === lc(tenantId));
  }

  /** A service principal of an app in `tenantId`; one per app and tenant (Graph: 409, text unconfirmed). */
  createServicePrincipal(o: { appId: string; tenantId: string }): ServicePrincipal {
    const app = this.byAppId(o.appId);
    if (!app) throw new DirectoryError(400, "Request_BadRequest", `The appId '${o.appId}' of the service principal does not reference a valid application object.`);
    if (this.servicePrincipalOf(o.appId, o.tenantId)) {
      throw new DirectoryError(409, "Request_MultipleObjectsWithSameKeyValue", "The service principal cannot be created, updated, or restored because the service principal name is already in use.");
    }
    const sp: ServicePrincipal = { id: randomUUID(), appId: app.appId, displayName: app.displayName, tenantId: o.tenantId, servicePrincipalType: "Application" };
    this.servicePrincipals.set(sp.id, sp);
    return sp;
  }
}

/**
 * The sandbox's app directory. First use seeds the world's technical configurations: each
 * offer's publisher app (its appId, in the configured tenant) with a service principal there.
 */
export function appDirectory(state: SandboxState): AppDirectory {
  return state.store("entra.applications", () => {
    const dir = new AppDirectory(state);
    for (const offer of state.seed.offers) {
      const tc = offer.technicalConfiguration;
      if (!tc || dir.byAppId(tc.appId, tc.tenantId)) continue;
      dir.createApp({ tenantId: tc.tenantId, appId: tc.appId, displayName: tc.displayName ?? `${offer.product} metering` });
      dir.createServicePrincipal({ appId: tc.appId, tenantId: tc.tenantId });
    }
    return dir;
  });
}
