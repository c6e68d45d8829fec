import { z } from 'zod';

export const NotificationEventsSchema = z.enum(['failures', 'problems', 'all']);

const Common = {
  name: z.string().trim().min(1).max(100),
  /** "failures": failed runs; "problems": failed or finished with warnings (default); "all": every finished run. */
  events: NotificationEventsSchema.default('problems'),
  enabled: z.boolean().default(true),
};

export const EmailSettingsSchema = z.object({
  host: z.string().trim().min(1),
  port: z.number().int().min(1).max(65535).default(587),
  /** "starttls" (upgrade required), "tls" (implicit, usually port 465) or "none" (plain; only for a relay on a trusted network). */
  security: z.enum(['starttls', 'tls', 'none']).default('starttls'),
  username: z.string().min(1).optional(),
  from: z.email(),
  to: z.array(z.email()).min(1, 'name at least one recipient'),
});

export const NotificationCreateSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('webhook'), ...Common, url: z.url({ protocol: /^https?$/ }), /** HMAC-SHA256 signing secret (X-Vaultline-Signature). */ secret: z.string().min(16).optional() }),
  z.object({ kind: z.literal('email'), ...Common, email: EmailSettingsSchema, /** SMTP password. */ password: z.string().min(1).optional() }),
]);
export type NotificationCreate = z.infer<typeof NotificationCreateSchema>;

export const NotificationUpdateSchema = z.object({ events: NotificationEventsSchema, enabled: z.boolean() }).partial();

export const NotificationTargetSchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['webhook', 'email']),
  url: z.string().nullable(),
  email: EmailSettingsSchema.nullable(),
  /** Whether a signing secret / SMTP password is stored (never the secret itself). */
  hasSecret: z.boolean(),
  events: NotificationEventsSchema,
  enabled: z.boolean(),
  createdAt: z.string(),
});
export type NotificationTargetDto = z.infer<typeof NotificationTargetSchema>;

/** One message to a target (GET /api/notifications/:id/deliveries). */
export const NotificationDeliverySchema = z.object({
  id: z.string(),
  kind: z.string(),
  subjectId: z.string(),
  status: z.string(),
  attempts: z.number(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  sentAt: z.string().nullable(),
});
export type NotificationDelivery = z.infer<typeof NotificationDeliverySchema>;
