/**
 * Delivering one message: a webhook POST (JSON; HMAC-SHA256 of the body in
 * X-Vaultline-Signature when a secret is set) or an e-mail over SMTP. Both fail
 * with a message naming the target and the cause; neither logs secrets.
 */
import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { EmailSettingsSchema } from '@vaultline/contracts';
import type { z } from 'zod';
import type { Message } from './messages.ts';

const TIMEOUT_MS = 10_000;

export interface Target {
  name: string;
  kind: string;
  url: string | null;
  email: z.infer<typeof EmailSettingsSchema> | null;
  /** Unsealed signing secret or SMTP password. */
  secret: string | null;
}

export class DeliveryError extends Error {
  override name = 'DeliveryError';
}

export async function deliver(target: Target, message: Message, deliveryId: string): Promise<void> {
  if (target.kind === 'webhook') return postWebhook(target, message, deliveryId);
  if (target.kind === 'email') return sendEmail(target, message);
  throw new DeliveryError(`${target.name}: unknown notification kind ${target.kind}`);
}

async function postWebhook(target: Target, message: Message, deliveryId: string): Promise<void> {
  if (!target.url) throw new DeliveryError(`${target.name}: no URL`);
  const body = JSON.stringify({ event: message.event, subject: message.subject, text: message.text, ...message.data });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'Vaultline',
    'x-vaultline-event': message.event,
    'x-vaultline-delivery': deliveryId,
  };
  if (target.secret) headers['x-vaultline-signature'] = `sha256=${createHmac('sha256', target.secret).update(body).digest('hex')}`;
  let res: Response;
  try {
    res = await fetch(target.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const cause = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new DeliveryError(`${target.name}: cannot reach ${new URL(target.url).origin}: ${cause}`);
  }
  if (!res.ok) {
    const text = (await res.text().catch(() => '')).slice(0, 200);
    throw new DeliveryError(`${target.name}: ${new URL(target.url).origin} answered HTTP ${res.status}${text ? `: ${text}` : ''}`);
  }
}

async function sendEmail(target: Target, message: Message): Promise<void> {
  const e = target.email;
  if (!e) throw new DeliveryError(`${target.name}: no SMTP settings`);
  const transport = nodemailer.createTransport({
    host: e.host,
    port: e.port,
    secure: e.security === 'tls',
    requireTLS: e.security === 'starttls',
    ignoreTLS: e.security === 'none',
    ...(e.username ? { auth: { user: e.username, pass: target.secret ?? '' } } : {}),
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  try {
    await transport.sendMail({ from: e.from, to: e.to, subject: message.subject, text: message.text });
  } catch (err) {
    const x = err as Error & { code?: string; responseCode?: number; response?: string };
    const detail = x.responseCode ? `SMTP ${x.responseCode}: ${x.response ?? x.message}` : `${x.code ? `${x.code}: ` : ''}${x.message}`;
    throw new DeliveryError(`${target.name}: mail to ${e.to.join(', ')} via ${e.host}:${e.port} failed: ${detail}`);
  } finally {
    transport.close();
  }
}
