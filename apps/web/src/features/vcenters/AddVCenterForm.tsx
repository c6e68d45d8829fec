import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { VCenter } from '@vaultline/contracts';
import { addVCenter } from '../../api/vcenters.ts';
import { FormError } from '../../components/FormError.tsx';
import { ApiRequestError, errorMessage } from '../../lib/api.ts';

interface Presented {
  sha256: string;
  sha1: string;
  message: string;
}

/**
 * Registering a vCenter: the first attempt returns the certificate's thumbprint
 * for the operator to check; the second sends it back and pins it. Wrong
 * credentials or an unreachable host come back as the server's message.
 */
export function AddVCenterForm({ onAdded, onCancel }: { onAdded: (v: VCenter) => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState('');
  const [url, setUrl] = useState('https://');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [allowHttp, setAllowHttp] = useState(false);
  const [presented, setPresented] = useState<Presented | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const http = url.startsWith('http:');

  const attempt = async (thumbprintSha256?: string) => {
    setBusy(true);
    setError(null);
    try {
      const v = await addVCenter({ name, url, username, password, allowHttp: http && allowHttp, ...(thumbprintSha256 ? { thumbprintSha256 } : {}) });
      await qc.invalidateQueries({ queryKey: ['vcenters'] });
      onAdded(v);
    } catch (err) {
      if (err instanceof ApiRequestError && err.body.code === 'thumbprint_confirmation_required') {
        setPresented({ sha256: String(err.body.thumbprintSha256), sha1: String(err.body.thumbprintSha1), message: err.message });
      } else {
        setError(errorMessage(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void attempt(presented?.sha256);
  };
  // Anything that changes which server we talk to voids a confirmed thumbprint.
  const editTarget = (fn: () => void) => {
    fn();
    setPresented(null);
  };
  let host = '';
  try {
    host = new URL(url).host;
  } catch {
    host = url;
  }

  return (
    <form className="card form" onSubmit={submit} aria-labelledby="add-vc-title">
      <h3 id="add-vc-title">Add a vCenter</h3>
      <label>
        Name
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} placeholder="prod" />
      </label>
      <label>
        URL
        <input name="url" value={url} onChange={(e) => editTarget(() => setUrl(e.target.value))} required className="mono" placeholder="https://vcenter.example.com/sdk" />
      </label>
      <label>
        User
        <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" placeholder="backup@vsphere.local" />
      </label>
      <label>
        Password
        <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required autoComplete="new-password" />
        <span className="muted small">Checked by signing in once; sealed with the appliance key before it is stored.</span>
      </label>
      {http && (
        <label className="check-field">
          <input type="checkbox" checked={allowHttp} onChange={(e) => setAllowHttp(e.target.checked)} />
          <span>
            Allow plain HTTP <span className="muted small block">The password then crosses the network in clear. For labs only.</span>
          </span>
        </label>
      )}
      {presented && (
        <div className="alert warn confirm-thumbprint" role="alert" data-testid="thumbprint">
          <p>
            <strong>{host}</strong> presents a certificate with this SHA-256 thumbprint. Check it against the vCenter before trusting it (for example{' '}
            <code>openssl s_client -connect {host.includes(':') ? host : `${host}:443`} &lt;/dev/null | openssl x509 -noout -fingerprint -sha256</code> on a machine you trust).
          </p>
          <p className="mono thumb">{presented.sha256}</p>
          <p className="muted small">SHA-1: {presented.sha1}</p>
          <p className="small">It is pinned: if the certificate changes later, Vaultline refuses to connect and names both thumbprints.</p>
        </div>
      )}
      <FormError message={error} />
      <div className="form-actions">
        <button type="button" className="link" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Connecting…' : presented ? 'Trust this certificate and add' : 'Connect'}
        </button>
      </div>
    </form>
  );
}
