#!/usr/bin/env node
// A small, faithful model of the seed's event bus (alga-psa, github.com/Nine-Minds/alga-psa,
// read at commit 432f5f5887b0), for Rust tests to check interoperability against the real
// zod (3.25.76, what alga-psa's lock resolves) and node-redis (4.7.1) packages.
//
// What each part follows:
// - schemas ........ packages/event-schemas/src/schemas/eventBusSchema.ts (EVENT_TYPES,
//                    BaseEventSchema, TicketEventPayloadSchema, the TICKET_* unions,
//                    CustomEventPayloadSchema, EventSchemas, convertToWorkflowEvent),
//                    .../domain/commonEventPayloadSchemas.ts, .../domain/ticketEventSchemas.ts,
//                    .../workflowEventSchema.ts (WorkflowEventBaseSchema)
// - stream names ... server/src/config/redisConfig.ts (prefix 'alga-psa:' + streamPrefix
//                    'event-stream:' + channel + ':' + type, group 'event-processors',
//                    MAXLEN ~ 1000, BLOCK 5000, COUNT 10, claim after 30 s, 10 deliveries)
// - publish ........ server/src/lib/eventBus/index.ts EventBus.publish; one call per channel, as
//                    server/src/lib/eventBus/publishers/index.ts publishEvent makes them (so each
//                    channel gets its own envelope id and timestamp unless --id/--timestamp).
//                    --layout flat is the first generation (commit 29d1590522, Dec 2024): key
//                    {prefix}:{type}, field `event` only, no workflow stream.
//                    --publisher package adds `workflow_correlation_key` to the workflow entry, as
//                    packages/event-bus/src/eventBus.ts (the copy the ticket publishers import) does.
// - consume ........ index.ts startEventProcessing / processStreamMessage / claimPendingMessages
//                    (one stream, one handler that records what it gets)
// - dead letters ... index.ts deadLetterMessage
//
// CLI (one JSON document on stdout; errors on stderr with exit code 1):
//   validate [--event-type T]                < envelope JSON text
//   publish --url U --event-type T [--prefix alga-psa:event-stream] [--layout channels|flat]
//           [--channel C ...] [--id ID] [--timestamp TS] [--workflow-stream workflow:events:global]
//           [--publisher server|package] [--group event-processors]   < payload JSON
//   consume --url U --event-type T [--prefix ...] [--layout ...] [--channel global]
//           [--group event-processors] [--consumer consumer-PID] [--count 1] [--timeout-ms 10000]
//           [--claim-timeout-ms 30000] [--max-deliveries 10] [--no-dedup] [--handler-key seed-model]
//   dead-letter --url U --stream S --entry-id ID [--deliveries 11] [--group event-processors]
// A publish the seed refuses (zod) is not an error: the seed logs and swallows it; see `refused`.
// Not modelled: publish hooks (publishWorkflowEvent's execution id, states), initialize()'s groups
// on every event type's stream, reading several streams in one XREADGROUP, the hard read timeout.
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { z, ZodError } from 'zod';
import { createClient } from 'redis';

// ---------------------------------------------------------------------------------------------
// Schemas (packages/event-schemas). Objects are non-strict: unknown keys are stripped.

const EVENT_TYPES = `
TICKET_CREATED TICKET_UPDATED TICKET_CLOSED TICKET_AUTO_CLOSE_WARNING MAINTENANCE_JOB_REQUESTED
INBOUND_EMAIL_PROVIDER_AUTO_PAUSED TICKET_ASSIGNED TICKET_ADDITIONAL_AGENT_ASSIGNED
TICKET_COMMENT_ADDED TICKET_COMMENT_UPDATED TICKET_COMMENT_DELETED TICKET_DELETED
TICKET_RESPONSE_STATE_CHANGED TICKET_STATUS_CHANGED TICKET_PRIORITY_CHANGED TICKET_UNASSIGNED
TICKET_REOPENED TICKET_ESCALATED TICKET_QUEUE_CHANGED TICKET_MERGED TICKET_SPLIT
TICKET_TAGS_CHANGED TICKET_MESSAGE_ADDED TICKET_CUSTOMER_REPLIED TICKET_INTERNAL_NOTE_ADDED
TICKET_TIME_ENTRY_ADDED TICKET_SLA_STAGE_ENTERED TICKET_SLA_STAGE_MET TICKET_SLA_STAGE_BREACHED
TICKET_SLA_THRESHOLD_REACHED TICKET_APPROVAL_REQUESTED TICKET_APPROVAL_GRANTED
TICKET_APPROVAL_REJECTED APPOINTMENT_REQUEST_CREATED APPOINTMENT_REQUEST_APPROVED
APPOINTMENT_REQUEST_DECLINED APPOINTMENT_REQUEST_CANCELLED SCHEDULE_ENTRY_CREATED
SCHEDULE_ENTRY_UPDATED SCHEDULE_ENTRY_DELETED APPOINTMENT_CREATED APPOINTMENT_RESCHEDULED
APPOINTMENT_CANCELED APPOINTMENT_COMPLETED APPOINTMENT_NO_SHOW APPOINTMENT_ASSIGNED
SCHEDULE_BLOCK_CREATED SCHEDULE_BLOCK_DELETED CAPACITY_THRESHOLD_REACHED TECHNICIAN_DISPATCHED
TECHNICIAN_EN_ROUTE TECHNICIAN_ARRIVED TECHNICIAN_CHECKED_OUT PROJECT_CREATED PROJECT_UPDATED
PROJECT_CLOSED PROJECT_DELETED PROJECT_ASSIGNED PROJECT_PHASE_CREATED PROJECT_PHASE_UPDATED
PROJECT_PHASE_DELETED PROJECT_TASK_UPDATED PROJECT_TASK_DELETED PROJECT_TASK_ASSIGNED
PROJECT_TASK_ADDITIONAL_AGENT_ASSIGNED TASK_COMMENT_ADDED TASK_COMMENT_UPDATED
PROJECT_TASK_COMMENT_CREATED PROJECT_TASK_COMMENT_UPDATED PROJECT_TASK_COMMENT_DELETED
PROJECT_STATUS_CHANGED PROJECT_TASK_CREATED PROJECT_TASK_STATUS_CHANGED
PROJECT_TASK_COMPLETED PROJECT_TASK_DEPENDENCY_BLOCKED PROJECT_TASK_DEPENDENCY_UNBLOCKED
PROJECT_APPROVAL_REQUESTED PROJECT_APPROVAL_GRANTED PROJECT_APPROVAL_REJECTED
PROJECT_MILESTONE_READY PROJECT_BUDGET_THRESHOLD_REACHED PROJECT_BUDGET_EXCEEDED
PROJECT_BILLING_CONFIG_CREATED PROJECT_BILLING_CONFIG_UPDATED PROJECT_BILLING_CONFIG_DELETED
PROJECT_BILLING_SCHEDULE_ENTRY_CREATED PROJECT_BILLING_SCHEDULE_ENTRY_UPDATED
PROJECT_BILLING_SCHEDULE_STATUS_CHANGED PROJECT_BILLING_SCHEDULE_ENTRY_DELETED
PROJECT_BILLING_PAYMENT_STATUS_CHANGED TIME_ENTRY_CREATED TIME_ENTRY_UPDATED TIME_ENTRY_DELETED
TIME_ENTRY_SUBMITTED TIME_ENTRY_APPROVED TIME_ENTRY_CHANGES_REQUESTED INVOICE_CREATED
INVOICE_UPDATED INVOICE_DELETED INVOICE_GENERATED INVOICE_FINALIZED INVOICE_ITEM_CREATED
INVOICE_ITEM_UPDATED INVOICE_ITEM_DELETED INVOICE_ANNOTATION_CREATED INVOICE_ANNOTATION_UPDATED
INVOICE_ANNOTATION_DELETED INVOICE_SENT INVOICE_STATUS_CHANGED INVOICE_DUE_DATE_CHANGED
INVOICE_OVERDUE INVOICE_WRITTEN_OFF PAYMENT_RECORDED PAYMENT_APPLIED PAYMENT_FAILED
PAYMENT_REFUNDED CREDIT_NOTE_CREATED CREDIT_NOTE_APPLIED CREDIT_NOTE_VOIDED CREDIT_EXPIRING
PREPAID_BALANCE_ALERT_SCAN_REQUESTED HOUR_BLOCK_EXPIRING CONTRACT_CREATED CONTRACT_UPDATED
CONTRACT_DELETED CONTRACT_STATUS_CHANGED CONTRACT_RENEWAL_UPCOMING CLIENT_CONTRACT_CREATED
CLIENT_CONTRACT_UPDATED CLIENT_CONTRACT_DELETED RECURRING_BILLING_RUN_STARTED
RECURRING_BILLING_RUN_COMPLETED RECURRING_BILLING_RUN_FAILED CLIENT_CREATED CLIENT_UPDATED
CLIENT_STATUS_CHANGED CLIENT_OWNER_ASSIGNED CLIENT_MERGED CLIENT_ARCHIVED CLIENT_DELETED
CONTACT_CREATED CONTACT_UPDATED CONTACT_PRIMARY_SET CONTACT_ARCHIVED CONTACT_DELETED
CONTACT_MERGED INTERACTION_LOGGED INTERACTION_CREATED INTERACTION_UPDATED INTERACTION_DELETED
NOTE_CREATED TAG_DEFINITION_CREATED TAG_DEFINITION_UPDATED TAG_DEFINITION_DELETED TAG_APPLIED
TAG_REMOVED BOARD_CREATED BOARD_UPDATED BOARD_DELETED CATEGORY_CREATED CATEGORY_UPDATED
CATEGORY_DELETED STATUS_CREATED STATUS_UPDATED STATUS_DELETED OPPORTUNITY_CREATED
OPPORTUNITY_STAGE_CHANGED OPPORTUNITY_STATUS_CHANGED OPPORTUNITY_STALLED OPPORTUNITY_ESCALATED
OPPORTUNITY_NEXT_ACTION_OVERDUE OPPORTUNITY_SUGGESTION_CREATED USER_CREATED USER_UPDATED
USER_DELETED USER_ROLES_UPDATED DOCUMENT_UPLOADED DOCUMENT_UPDATED DOCUMENT_DELETED
DOCUMENT_ASSOCIATED DOCUMENT_DETACHED DOCUMENT_GENERATED DOCUMENT_SIGNATURE_REQUESTED
DOCUMENT_SIGNED DOCUMENT_SIGNATURE_EXPIRED KB_ARTICLE_CREATED KB_ARTICLE_UPDATED
KB_ARTICLE_DELETED SERVICE_CATALOG_CREATED SERVICE_CATALOG_UPDATED SERVICE_CATALOG_DELETED
SERVICE_REQUEST_SUBMISSION_CREATED SERVICE_REQUEST_SUBMISSION_UPDATED
SERVICE_REQUEST_SUBMISSION_DELETED SERVICE_REQUEST_DEFINITION_CREATED
SERVICE_REQUEST_DEFINITION_UPDATED SERVICE_REQUEST_DEFINITION_DELETED WORKFLOW_TASK_CREATED
WORKFLOW_TASK_UPDATED WORKFLOW_TASK_DELETED WORKFLOW_TASK_ASSIGNMENT_CHANGED INBOUND_EMAIL_RECEIVED
EMAIL_PROVIDER_CONNECTED EMAIL_PROVIDER_DISCONNECTED INBOUND_EMAIL_REPLY_RECEIVED
OUTBOUND_EMAIL_QUEUED OUTBOUND_EMAIL_SENT OUTBOUND_EMAIL_FAILED EMAIL_DELIVERED EMAIL_BOUNCED
EMAIL_COMPLAINT_RECEIVED EMAIL_UNSUBSCRIBED NOTIFICATION_SENT NOTIFICATION_DELIVERED
NOTIFICATION_FAILED NOTIFICATION_READ SURVEY_INVITATION_SENT SURVEY_RESPONSE_SUBMITTED
SURVEY_NEGATIVE_RESPONSE SURVEY_SENT SURVEY_RESPONSE_RECEIVED SURVEY_REMINDER_SENT SURVEY_EXPIRED
CSAT_ALERT_TRIGGERED ACCOUNTING_EXPORT_COMPLETED ACCOUNTING_EXPORT_FAILED CALENDAR_SYNC_STARTED
CALENDAR_SYNC_COMPLETED CALENDAR_SYNC_FAILED CALENDAR_CONFLICT_DETECTED INTEGRATION_SYNC_STARTED
INTEGRATION_SYNC_COMPLETED INTEGRATION_SYNC_FAILED INTEGRATION_WEBHOOK_RECEIVED
INTEGRATION_CONNECTED INTEGRATION_DISCONNECTED INTEGRATION_TOKEN_EXPIRING
INTEGRATION_TOKEN_REFRESH_FAILED EXTERNAL_MAPPING_CHANGED MESSAGE_SENT USER_MENTIONED_IN_DOCUMENT
ASSET_CREATED ASSET_UPDATED ASSET_DELETED ASSET_ASSIGNED ASSET_UNASSIGNED ASSET_WARRANTY_EXPIRING
FILE_UPLOADED MEDIA_PROCESSING_SUCCEEDED MEDIA_PROCESSING_FAILED RMM_DEVICE_CREATED
RMM_DEVICE_UPDATED RMM_DEVICE_DELETED RMM_DEVICE_ONLINE RMM_DEVICE_OFFLINE RMM_ALERT_TRIGGERED
RMM_ALERT_RESOLVED RMM_SYNC_STARTED RMM_SYNC_COMPLETED RMM_SYNC_FAILED RMM_WEBHOOK_RECEIVED
INVENTORY_STOCK_LOW INVENTORY_PO_RECEIVED INVENTORY_SO_FULFILLED INVENTORY_RMA_CREATED
INVENTORY_SALES_ORDER_CREATED INVENTORY_SALES_ORDER_UPDATED INVENTORY_SALES_ORDER_DELETED
INVENTORY_PURCHASE_ORDER_CREATED INVENTORY_PURCHASE_ORDER_UPDATED INVENTORY_PURCHASE_ORDER_DELETED
INVENTORY_STOCK_UNIT_CREATED INVENTORY_STOCK_UNIT_UPDATED INVENTORY_STOCK_UNIT_DELETED
INVENTORY_TRANSFER_DISPATCHED INVENTORY_TRANSFER_RECEIVED INVENTORY_COUNT_SUBMITTED
INVENTORY_COUNT_APPROVED CUSTOM_EVENT UNKNOWN
`.trim().split(/\s+/);

const BasePayloadSchema = z.object({ tenantId: z.string().uuid() });

const BaseEventSchema = z.object({
  id: z.string().uuid(),
  eventType: z.enum(EVENT_TYPES),
  timestamp: z.string().datetime(), // zod 3: 'Z' only, no offset; any sub-second precision
  payload: z.unknown(),
});

const suppressionFlags = {
  suppressContactNotifications: z.boolean().optional().default(false),
  suppressInternalNotifications: z.boolean().optional().default(false),
};

// The first generation's ticket payload, as it has grown.
const TicketEventPayloadSchema = BasePayloadSchema.extend({
  ticketId: z.string().uuid(),
  userId: z.string().uuid(),
  assignedByUserId: z.string().uuid().optional(),
  changes: z.record(z.unknown()).optional(),
  ...suppressionFlags,
  comment: z.object({
    id: z.string().uuid(),
    content: z.string(),
    author: z.string(),
    isInternal: z.boolean().optional(),
    authorType: z.enum(['internal', 'client', 'unknown']).optional(),
  }).optional(),
});

// The domain shapes (domain/commonEventPayloadSchemas.ts, domain/ticketEventSchemas.ts).
const BaseDomainEventPayloadSchema = z.object({
  tenantId: z.string().min(1),
  occurredAt: z.string().datetime(),
  actorUserId: z.string().uuid().optional(),
  actorContactId: z.string().uuid().optional(),
  actorType: z.enum(['USER', 'CONTACT', 'SYSTEM']).optional(),
});
const updatedFields = z.array(z.string()).optional();
const changes = z.record(z.object({ previous: z.unknown(), new: z.unknown() })).optional();
const assigneeType = z.enum(['user', 'team']);

const ticketCreated = BaseDomainEventPayloadSchema.extend({
  ticketId: z.string().uuid(),
  createdByUserId: z.string().uuid().optional(),
  actorUserId: z.string().uuid().optional(),
  createdAt: z.string().optional(),
  updatedFields,
  changes,
});
const ticketUpdated = BaseDomainEventPayloadSchema.extend({
  ticketId: z.string().uuid(),
  updatedByUserId: z.string().uuid().optional(),
  updatedFields,
  changes,
  ...suppressionFlags,
});
const ticketClosed = BaseDomainEventPayloadSchema.extend({
  ticketId: z.string().uuid(),
  closedByUserId: z.string().uuid().optional(),
  closedAt: z.string().optional(),
  reason: z.string().optional(),
  updatedFields,
  changes,
  ...suppressionFlags,
});
const ticketAssigned = BaseDomainEventPayloadSchema.extend({
  ticketId: z.string().uuid(),
  assignedToUserId: z.string().uuid().optional(),
  assignedByUserId: z.string().uuid().optional(),
  previousAssigneeId: z.string().uuid().optional(),
  previousAssigneeType: assigneeType.optional(),
  newAssigneeId: z.string().uuid().optional(),
  newAssigneeType: assigneeType.optional(),
  assignedAt: z.string().optional(),
  updatedFields,
  changes,
  ...suppressionFlags,
});

// The payload schemas this model knows; the seed has one for each of EVENT_TYPES.
const EventPayloadSchemas = {
  TICKET_CREATED: z.union([TicketEventPayloadSchema, ticketCreated]),
  TICKET_UPDATED: z.union([TicketEventPayloadSchema, ticketUpdated]),
  TICKET_CLOSED: z.union([TicketEventPayloadSchema, ticketClosed]),
  TICKET_ASSIGNED: z.union([TicketEventPayloadSchema, ticketAssigned]),
  TICKET_DELETED: TicketEventPayloadSchema,
  TICKET_COMMENT_ADDED: TicketEventPayloadSchema,
  UNKNOWN: BasePayloadSchema.extend({
    userId: z.string().optional(),
    eventName: z.string().optional(),
  }).catchall(z.unknown()),
};

const EventSchemas = Object.fromEntries(
  Object.entries(EventPayloadSchemas).map(([type, payload]) => [
    type,
    BaseEventSchema.extend({ eventType: z.literal(type), payload }),
  ]),
);

class NotModeled extends Error {}

function eventSchema(type) {
  const schema = EventSchemas[type];
  if (!schema) {
    throw new NotModeled(`the seed model has no payload schema for ${type} (it knows ${Object.keys(EventSchemas).join(', ')})`);
  }
  return schema;
}

const WorkflowEventBaseSchema = z.object({
  event_id: z.string().uuid(),
  execution_id: z.string().uuid().optional(),
  workflow_correlation_key: z.string().min(1).optional(),
  event_name: z.string(),
  event_type: z.string(),
  tenant: z.string(),
  timestamp: z.string().datetime(),
  from_state: z.string().optional(),
  to_state: z.string().optional(),
  user_id: z.string().uuid().optional(),
  payload: z.record(z.unknown()).optional(),
});

// convertToWorkflowEvent without publish hooks (publishWorkflowEvent's executionId etc.).
const toWorkflowEvent = (event) => ({
  event_id: event.id,
  execution_id: undefined,
  workflow_correlation_key: undefined,
  event_name: event.payload?.eventName ?? event.eventType,
  event_type: event.eventType,
  tenant: event.payload?.tenantId ?? event.payload?.tenant ?? '',
  timestamp: event.timestamp,
  from_state: undefined,
  to_state: undefined,
  user_id: event.payload?.actorUserId ?? event.payload?.userId,
  payload: event.payload,
});

// ---------------------------------------------------------------------------------------------
// Redis (server/src/config/redisConfig.ts, server/src/lib/eventBus/index.ts)

const TRIM = { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 1000 } };
const THREE_DAYS = 60 * 60 * 24 * 3;

const streamKey = (o, channel, type) =>
  o.layout === 'flat' ? `${o.prefix}:${type}` : `${o.prefix}:${channel}:${type}`;

async function connect(url) {
  const client = createClient({ url });
  client.on('error', (err) => console.error(`[seed-model] redis: ${err.message}`));
  await client.connect();
  return client;
}

// ensureStreamAndGroup: the group is created at 0 with MKSTREAM; BUSYGROUP is fine.
async function ensureGroup(redis, stream, group) {
  try {
    await redis.xGroupCreate(stream, group, '0', { MKSTREAM: true });
  } catch (err) {
    if (!err.message.includes('BUSYGROUP')) throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Subcommands

function validate(o, text) {
  let raw;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // The consumer's JSON.parse throws a non-zod error: the entry is left pending, not acked.
    return { ok: false, stage: 'json', consumer: 'pending', error: String(err), issues: [] };
  }
  const base = BaseEventSchema.safeParse(raw);
  if (!base.success) {
    return { ok: false, stage: 'envelope', consumer: 'dropped', issues: base.error.issues };
  }
  const full = eventSchema(o['event-type'] ?? base.data.eventType).safeParse(raw);
  if (!full.success) {
    return { ok: false, stage: 'payload', consumer: 'dropped', issues: full.error.issues };
  }
  return { ok: true, consumer: 'handled', parsed: full.data };
}

async function publish(o, payload) {
  const type = o['event-type'];
  const firstGeneration = o.layout === 'flat';
  const out = { envelope: null, entries: [], workflow: null, refused: [] };
  const redis = await connect(o.url);
  try {
    for (const channel of o.channel.length ? o.channel : ['global']) {
      // EventBus.publish: {...event, id, timestamp}, so the JSON keys come in this order.
      const fullEvent = {
        eventType: type,
        payload,
        id: o.id ?? randomUUID(),
        timestamp: o.timestamp ?? new Date().toISOString(),
      };
      out.envelope ??= fullEvent;
      if (!EVENT_TYPES.includes(type)) {
        out.refused.push({ channel, error: `Unknown event type: ${type}` });
        continue;
      }
      const valid = eventSchema(type).safeParse(fullEvent);
      if (!valid.success) {
        out.refused.push({ channel, stage: 'event', issues: valid.error.issues });
        continue;
      }
      // Only a publish on the default channel reaches the workflow stream, and it goes first.
      if (!firstGeneration && channel === 'global') {
        const stream = o['workflow-stream'];
        await ensureGroup(redis, stream, o.group);
        const wf = WorkflowEventBaseSchema.safeParse(toWorkflowEvent(fullEvent));
        if (!wf.success) {
          out.refused.push({ channel, stage: 'workflow', issues: wf.error.issues });
          continue;
        }
        const w = wf.data;
        const fields = {
          event_id: w.event_id,
          execution_id: w.execution_id || '',
          ...(o.publisher === 'package' ? { workflow_correlation_key: w.workflow_correlation_key || '' } : {}),
          event_name: w.event_name,
          event_type: w.event_type,
          tenant: w.tenant,
          timestamp: w.timestamp,
          user_id: w.user_id || '',
          from_state: w.from_state || '',
          to_state: w.to_state || '',
          payload_json: JSON.stringify(w.payload || {}),
        };
        out.workflow = { stream, id: await redis.xAdd(stream, '*', fields, TRIM), fields };
      }
      const stream = streamKey(o, channel, type);
      await ensureGroup(redis, stream, o.group);
      const event = JSON.stringify(fullEvent);
      const fields = firstGeneration ? { event } : { event, channel };
      const id = await redis.xAdd(stream, '*', fields, TRIM);
      out.entries.push({ channel, stream, id, envelope: fullEvent });
    }
  } finally {
    await redis.quit();
  }
  return out;
}

// deadLetterMessage: exactly once through a marker set; the original fields come first.
async function deadLetter(redis, group, stream, message, deliveries) {
  const marker = `dead_lettered_messages:${stream}`;
  let id = null;
  if (!(await redis.sIsMember(marker, message.id))) {
    id = await redis.xAdd(`${stream}:dead-letter`, '*', {
      ...message.message,
      sourceStream: stream,
      sourceMessageId: message.id,
      deliveries: String(deliveries),
      deadLetteredAt: new Date().toISOString(),
    }, TRIM);
    await redis.sAdd(marker, message.id);
    await redis.expire(marker, THREE_DAYS);
  }
  let acked;
  try {
    acked = await redis.xAck(stream, group, message.id);
  } catch (err) {
    if (!err.message.includes('NOGROUP')) throw err;
    acked = 0;
  }
  return { id, deadLetterStream: `${stream}:dead-letter`, acked };
}

async function consume(o) {
  const stream = streamKey(o, o.channel[0] ?? 'global', o['event-type']);
  const group = o.group;
  const consumer = o.consumer ?? `consumer-${process.pid}`;
  const claimTimeout = Number(o['claim-timeout-ms']);
  const maxDeliveries = Number(o['max-deliveries']);
  const deadline = Date.now() + Number(o['timeout-ms']);
  const out = { stream, handled: [], dropped: [], failed: [], skipped: [], deadLettered: [] };
  const redis = await connect(o.url);

  const ack = (id) => redis.xAck(stream, group, id);

  // processStreamMessage, with one handler that records the event it is given.
  async function processMessage(message) {
    try {
      const rawEvent = message.message.event;
      if (!rawEvent) {
        await ack(message.id);
        out.dropped.push({ id: message.id, reason: 'missing event field', issues: [] });
        return;
      }
      const raw = JSON.parse(rawEvent);
      const base = BaseEventSchema.parse(raw);
      const event = eventSchema(base.eventType).parse(raw);
      if (o['no-dedup']) {
        out.handled.push(event);
      } else {
        const t = event.payload.tenantId ?? event.payload.tenant;
        const tenant = typeof t === 'string' && t.length > 0 ? t : 'unknown';
        const handled = `${event.id}:${o['handler-key']}`;
        if (await redis.sIsMember(`processed_events:${tenant}`, event.id)) {
          out.skipped.push({ id: message.id, eventId: event.id, reason: 'event already processed' });
        } else {
          if (await redis.sIsMember(`processed_event_handlers:${tenant}`, handled)) {
            out.skipped.push({ id: message.id, eventId: event.id, reason: 'handler already ran' });
          } else {
            out.handled.push(event);
            await redis.sAdd(`processed_event_handlers:${tenant}`, handled);
            await redis.expire(`processed_event_handlers:${tenant}`, THREE_DAYS);
          }
          await redis.sAdd(`processed_events:${tenant}`, event.id);
          await redis.expire(`processed_events:${tenant}`, THREE_DAYS);
        }
      }
      await ack(message.id);
    } catch (err) {
      if (err instanceof NotModeled) throw err;
      if (err instanceof ZodError) {
        await ack(message.id); // a schema failure is acked and dropped
        out.dropped.push({ id: message.id, issues: err.issues });
      } else {
        out.failed.push({ id: message.id, error: String(err) }); // left pending
      }
    }
  }

  // claimPendingMessages: entries idle longer than the claim timeout are claimed and processed
  // again, or dead-lettered once their delivery count (read before the claim) exceeds the cap.
  async function claimPending() {
    let n = 0;
    if ((await redis.xPending(stream, group)).pending === 0) return n;
    const pending = await redis.xPendingRange(stream, group, '-', '+', 10);
    const stale = pending.filter((p) => p.millisecondsSinceLastDelivery > claimTimeout);
    if (stale.length === 0) return n;
    const deliveries = new Map(stale.map((p) => [p.id, p.deliveriesCounter]));
    const claimed = await redis.xClaim(stream, group, consumer, claimTimeout, stale.map((p) => p.id));
    for (const message of claimed) {
      if (!message) continue; // an entry trimmed away while pending
      n += 1;
      const count = deliveries.get(message.id) ?? 0;
      if (count > maxDeliveries) {
        const dl = await deadLetter(redis, group, stream, message, count);
        out.deadLettered.push({ id: message.id, deliveries: count, deadLetterId: dl.id });
      } else {
        await processMessage(message);
      }
    }
    return n;
  }

  try {
    await ensureGroup(redis, stream, group);
    let seen = 0;
    while (seen < Number(o.count)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const reply = await redis.xReadGroup(group, consumer, { key: stream, id: '>' },
        { COUNT: 10, BLOCK: Math.max(1, Math.min(5000, remaining)) });
      for (const { messages } of reply ?? []) {
        for (const message of messages) {
          await processMessage(message);
          seen += 1;
        }
      }
      seen += await claimPending();
    }
  } finally {
    await redis.quit();
  }
  return out;
}

async function deadLetterCommand(o) {
  const redis = await connect(o.url);
  try {
    const [entry] = await redis.xRange(o.stream, o['entry-id'], o['entry-id']);
    if (!entry) throw new Error(`no entry ${o['entry-id']} in ${o.stream}`);
    return await deadLetter(redis, o.group, o.stream, entry, Number(o.deliveries));
  } finally {
    await redis.quit();
  }
}

// ---------------------------------------------------------------------------------------------
// CLI

const OPTIONS = {
  url: { type: 'string', default: 'redis://127.0.0.1:6379' },
  prefix: { type: 'string', default: 'alga-psa:event-stream' },
  layout: { type: 'string', default: 'channels' },
  'event-type': { type: 'string' },
  channel: { type: 'string', multiple: true, default: [] },
  id: { type: 'string' },
  timestamp: { type: 'string' },
  'workflow-stream': { type: 'string', default: 'workflow:events:global' },
  publisher: { type: 'string', default: 'server' },
  group: { type: 'string', default: 'event-processors' },
  consumer: { type: 'string' },
  count: { type: 'string', default: '1' },
  'timeout-ms': { type: 'string', default: '10000' },
  'claim-timeout-ms': { type: 'string', default: '30000' },
  'max-deliveries': { type: 'string', default: '10' },
  'handler-key': { type: 'string', default: 'seed-model' },
  'no-dedup': { type: 'boolean', default: false },
  stream: { type: 'string' },
  'entry-id': { type: 'string' },
  deliveries: { type: 'string', default: '11' },
};

const REQUIRED = {
  validate: [],
  publish: ['event-type'],
  consume: ['event-type'],
  'dead-letter': ['stream', 'entry-id'],
};

async function readStdin() {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  if (!(command in REQUIRED)) {
    throw new Error(`usage: seed.mjs <${Object.keys(REQUIRED).join('|')}> [--option value ...]`);
  }
  const { values: o } = parseArgs({ args, options: OPTIONS, strict: true });
  for (const name of REQUIRED[command]) {
    if (o[name] === undefined) throw new Error(`${command}: --${name} is required`);
  }
  if (!['channels', 'flat'].includes(o.layout)) throw new Error(`--layout must be channels or flat`);
  if (!['server', 'package'].includes(o.publisher)) throw new Error(`--publisher must be server or package`);

  switch (command) {
    case 'validate': return validate(o, await readStdin());
    case 'publish': return publish(o, JSON.parse(await readStdin()));
    case 'consume': return consume(o);
    case 'dead-letter': return deadLetterCommand(o);
  }
}

main().then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (err) => {
    console.error(`seed-model: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
