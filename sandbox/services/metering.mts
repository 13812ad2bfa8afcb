// Emulated Marketplace metering API (azure-facts.md §1).
import type { ServiceDef } from "../core/http.mts";
import type { SandboxContext } from "../main.mts";

export function createMeteringService(ctx: SandboxContext): ServiceDef {
  void ctx;
  return {
    name: "metering",
    routes: [],
    notFound: () => ({ status: 404, body: { code: "NotFound", message: "Unknown route." } }),
  };
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
export function listAcceptedEvents(state: SandboxContext["state"]): AcceptedEvent[] {
  return state.store<AcceptedEvent[]>("metering.accepted", () => []);
}
