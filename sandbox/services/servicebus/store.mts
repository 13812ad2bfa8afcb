// Service Bus queues shared by the data plane (servicebus/service.mts) and ARM (arm/servicebus.mts):
// messages in sequence order, peek-lock with lock tokens and lock duration, complete, abandon,
// renew, receive-and-delete, delivery counts and dead-lettering (docs/azure-behaviour.md §6.1, §6.2). Time comes
// from the sandbox clock; expired locks are released lazily whenever a queue is touched.
import { randomUUID } from "node:crypto";
import type { SandboxState } from "../../core/state.mts";

export type PropertyValue = string | number | boolean;

/** System properties a sender may set through BrokerProperties. */
export interface SenderProperties {
  MessageId?: string;
  Label?: string;
  CorrelationId?: string;
  ReplyTo?: string;
  To?: string;
  SessionId?: string;
  ContentType?: string;
  TimeToLive?: number;
}

export interface SbMessage {
  sequenceNumber: number;
  messageId: string;
  body: Buffer;
  contentType?: string;
  sender: SenderProperties;
  userProperties: Record<string, PropertyValue>;
  enqueuedAtMs: number;
  deliveryCount: number;
  lock?: { token: string; untilMs: number };
  deadLetterReason?: string;
  deadLetterErrorDescription?: string;
}

export interface SbQueue {
  /** ARM id of the queue (the RBAC scope). */
  id: string;
  name: string;
  lockDurationMs: number;
  maxDeliveryCount: number;
  /** Available and locked messages, in sequence order. */
  messages: SbMessage[];
  /** The `$DeadLetterQueue` sub-queue. */
  deadLetters: SbMessage[];
  completedCount: number;
  nextSequenceNumber: number;
}

export interface SbNamespace {
  /** ARM id of the namespace. */
  id: string;
  name: string;
  tenantId: string;
  /** `https://127.0.0.1:<port>/`: the namespace's serviceBusEndpoint. */
  endpoint: string;
  port: number;
  queues: Map<string, SbQueue>;
  close(): Promise<void>;
}

/** Namespaces by lower-cased ARM id. */
export function namespaceStore(state: SandboxState): Map<string, SbNamespace> {
  return state.store("servicebus.namespaces", () => new Map<string, SbNamespace>());
}

export function newQueue(id: string, name: string, o: { lockDurationMs: number; maxDeliveryCount: number }): SbQueue {
  return { id, name, lockDurationMs: o.lockDurationMs, maxDeliveryCount: o.maxDeliveryCount, messages: [], deadLetters: [], completedCount: 0, nextSequenceNumber: 1 };
}

function _deadLetter(q: SbQueue, m: SbMessage, reason: string, description: string): void {
  q.messages = q.messages.filter((x) => x !== m);
  delete m.lock;
  m.deadLetterReason = reason;
  m.deadLetterErrorDescription = description;
  q.deadLetters.push(m);
}

/**
 * A lock ends (expiry or abandon): the message is available again, unless it has been delivered
 * maxDeliveryCount times, in which case it moves to the dead-letter queue.
 */
function _release(q: SbQueue, m: SbMessage, dlq: boolean): void {
  delete m.lock;
  if (!dlq && m.deliveryCount >= q.maxDeliveryCount) {
    _deadLetter(q, m, "MaxDeliveryCountExceeded", `Message could not be consumed after ${q.maxDeliveryCount} delivery attempts.`);
  }
}

/** Releases every lock that has run out. */
export function sweepLocks(q: SbQueue, nowMs: number): void {
  for (const list of [q.messages, q.deadLetters]) {
    for (const m of [...list]) if (m.lock && m.lock.untilMs <= nowMs) _release(q, m, list === q.deadLetters);
  }
}

export function enqueue(q: SbQueue, o: { body: Buffer; contentType?: string; sender: SenderProperties; userProperties: Record<string, PropertyValue> }, nowMs: number): SbMessage {
  const m: SbMessage = {
    sequenceNumber: q.nextSequenceNumber++,
    messageId: o.sender.MessageId ?? randomUUID().replace(/-/g, ""),
    body: o.body,
    contentType: o.contentType ?? o.sender.ContentType,
    sender: o.sender,
    userProperties: o.userProperties,
    enqueuedAtMs: nowMs,
    deliveryCount: 0,
  };
  q.messages.push(m);
  return m;
}

const _list = (q: SbQueue, dlq: boolean) => dlq ? q.deadLetters : q.messages;

/** The first available message, locked for the queue's lock duration (delivery count + 1). */
export function lockNext(q: SbQueue, dlq: boolean, nowMs: number): SbMessage | undefined {
  sweepLocks(q, nowMs);
  const m = _list(q, dlq).find((x) => !x.lock);
  if (!m) return undefined;
  m.deliveryCount++;
  m.lock = { token: randomUUID(), untilMs: nowMs + q.lockDurationMs };
  return m;
}

/** The first available message, removed (delivery count + 1). */
export function takeNext(q: SbQueue, dlq: boolean, nowMs: number): SbMessage | undefined {
  sweepLocks(q, nowMs);
  const list = _list(q, dlq);
  const m = list.find((x) => !x.lock);
  if (!m) return undefined;
  m.deliveryCount++;
  list.splice(list.indexOf(m), 1);
  return m;
}

/** True when a message is available (not locked) right now. */
export function hasAvailable(q: SbQueue, dlq: boolean, nowMs: number): boolean {
  sweepLocks(q, nowMs);
  return _list(q, dlq).some((x) => !x.lock);
}

/** The locked message a lock URI names (`{sequenceNumber or messageId}/{lockToken}`), if the lock still holds. */
export function findLocked(q: SbQueue, dlq: boolean, idOrSeq: string, lockToken: string, nowMs: number): SbMessage | undefined {
  sweepLocks(q, nowMs);
  return _list(q, dlq).find((m) =>
    m.lock !== undefined && m.lock.token.toLowerCase() === lockToken.toLowerCase() &&
    (String(m.sequenceNumber) === idOrSeq || m.messageId === idOrSeq)
  );
}

export function complete(q: SbQueue, dlq: boolean, m: SbMessage): void {
  const list = _list(q, dlq);
  list.splice(list.indexOf(m), 1);
  delete m.lock;
  if (!dlq) q.completedCount++;
}

export function abandon(q: SbQueue, dlq: boolean, m: SbMessage): void {
  _release(q, m, dlq);
}

export function renew(q: SbQueue, m: SbMessage, nowMs: number): void {
  m.lock!.untilMs = nowMs + q.lockDurationMs;
}

/** Parses the ISO 8601 durations ARM uses for Service Bus (`PT1M`, `PT30S`, `P14D`, `P10675199DT2H48M5.4775807S`) into ms. */
export function parseDurationMs(value: string): number | undefined {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value);
  if (!m || value === "P" || value.endsWith("T")) return undefined;
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Math.round(Number(s ?? 0) * 1000);
}
