import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { NotificationCreate, NotificationTargetDto } from '@vaultline/contracts';
import { createTarget } from '../../api/notifications.ts';
import { FormError } from '../../components/FormError.tsx';
import { useAction } from '../../lib/use-action.ts';
import { EVENTS, type Events } from './events.ts';

type Security = 'starttls' | 'tls' | 'none';

/** A webhook (URL, optional signing secret) or an e-mail target (SMTP server, sender, recipients). */
export function AddTargetForm({ onAdded, onCancel }: { onAdded: (t: NotificationTargetDto) => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const [kind, setKind] = useState<'webhook' | 'email'>('webhook');
  const [name, setName] = useState('');
  const [events, setEvents] = useState<Events>('problems');
  const [url, setUrl] = useState('https://');
  const [secret, setSecret] = useState('');
  const [host, setHost] = useState('');
  const [port, setPort] = useState(587);
  const [security, setSecurity] = useState<Security>('starttls');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const { busy, error, setError, run } = useAction();
  const pickSecurity = (s: Security, defaultPort: number) => {
    setSecurity(s);
    setPort(defaultPort);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (kind === 'webhook' && secret && secret.length < 16) {
      setError('A signing secret has at least 16 characters (or leave it empty).');
      return;
    }
    const recipients = to.split(/[\s,;]+/).filter(Boolean);
    const body: NotificationCreate =
      kind === 'webhook'
        ? { kind, name: name.trim(), events, enabled: true, url: url.trim(), ...(secret ? { secret } : {}) }
        : {
            kind,
            name: name.trim(),
            events,
            enabled: true,
            email: { host: host.trim(), port, security, ...(username ? { username } : {}), from: from.trim(), to: recipients },
            ...(password ? { password } : {}),
          };
    return run(async () => {
      const t = await createTarget(body);
      await qc.invalidateQueries({ queryKey: ['notifications'] });
      onAdded(t);
    });
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} aria-labelledby="add-target-title">
      <h3 id="add-target-title">Add a notification target</h3>
      <fieldset className="segmented">
        <legend>Kind</legend>
        <label>
          <input type="radio" name="targetKind" checked={kind === 'webhook'} onChange={() => setKind('webhook')} /> Webhook
        </label>
        <label>
          <input type="radio" name="targetKind" checked={kind === 'email'} onChange={() => setKind('email')} /> E-mail
        </label>
      </fieldset>
      <div className="form-row">
        <label>
          Name
          <input name="targetName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} placeholder="ops" />
        </label>
        <label>
          Events
          <select value={events} onChange={(e) => setEvents(e.target.value as Events)}>
            {EVENTS.map((x) => (
              <option key={x.value} value={x.value}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {kind === 'webhook' ? (
        <>
          <label>
            URL
            <input name="webhookUrl" value={url} onChange={(e) => setUrl(e.target.value)} required className="mono" placeholder="https://hooks.example.com/vaultline" />
            <span className="muted small">Gets a JSON POST per message: the run’s status, job, VMs and errors.</span>
          </label>
          <label>
            <span>
              Signing secret <span className="muted">(optional, at least 16 characters)</span>
            </span>
            <input name="webhookSecret" type="password" value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="new-password" />
            <span className="muted small">
              Each body is then signed as <code>X-Vaultline-Signature: sha256=&lt;HMAC-SHA256 of the body&gt;</code>. Sealed with the appliance key; never shown again.
            </span>
          </label>
        </>
      ) : (
        <>
          <div className="form-row">
            <label>
              SMTP server
              <input name="smtpHost" value={host} onChange={(e) => setHost(e.target.value)} required placeholder="smtp.example.com" />
            </label>
            <label>
              Port
              <input name="smtpPort" type="number" min={1} max={65535} value={Number.isFinite(port) ? port : ''} onChange={(e) => setPort(e.target.valueAsNumber)} required />
            </label>
          </div>
          <fieldset className="segmented">
            <legend>Security</legend>
            <label>
              <input type="radio" name="smtpSecurity" checked={security === 'starttls'} onChange={() => pickSecurity('starttls', 587)} /> STARTTLS (required)
            </label>
            <label>
              <input type="radio" name="smtpSecurity" checked={security === 'tls'} onChange={() => pickSecurity('tls', 465)} /> TLS
            </label>
            <label>
              <input type="radio" name="smtpSecurity" checked={security === 'none'} onChange={() => pickSecurity('none', 25)} /> None (trusted relay only)
            </label>
          </fieldset>
          <div className="form-row">
            <label>
              <span>
                User <span className="muted">(optional)</span>
              </span>
              <input name="smtpUser" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="off" />
            </label>
            <label>
              <span>
                Password <span className="muted">(optional)</span>
              </span>
              <input name="smtpPassword" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />
            </label>
          </div>
          <div className="form-row">
            <label>
              From
              <input name="mailFrom" type="email" value={from} onChange={(e) => setFrom(e.target.value)} required placeholder="vaultline@example.com" />
            </label>
            <label>
              Recipients
              <input name="mailTo" value={to} onChange={(e) => setTo(e.target.value)} required placeholder="oncall@example.com, backup@example.com" />
              <span className="muted small">Separated by commas or spaces.</span>
            </label>
          </div>
        </>
      )}
      <FormError message={error} />
      <div className="form-actions">
        <button type="button" className="link" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add target'}
        </button>
      </div>
    </form>
  );
}
