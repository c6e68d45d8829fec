import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { RemoteHostCheck, RemoteTransporter } from '@vaultline/contracts';
import { addRemote } from '../../api/remote.ts';
import { FormError } from '../../components/FormError.tsx';
import { HostKeyConfirm } from '../../components/HostKeyConfirm.tsx';
import { ApiRequestError } from '../../lib/api.ts';
import { useAction } from '../../lib/use-action.ts';

interface Presented {
  sha256: string;
  keyType: string;
}

/**
 * Adding a remote host: the first attempt only returns the SSH host key for the admin to check; the
 * second sends it back, pins it, signs in and checks the host (Linux, CPU, glibc, tar, space, permission).
 */
export function AddRemoteForm({ onAdded, onCancel }: { onAdded: (t: RemoteTransporter, check: RemoteHostCheck) => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState('');
  const [host, setHost] = useState('');
  const [port, setPort] = useState(22);
  const [username, setUsername] = useState('root');
  const [auth, setAuth] = useState<'key' | 'password'>('key');
  const [privateKey, setPrivateKey] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [password, setPassword] = useState('');
  const [installDir, setInstallDir] = useState('');
  const [presented, setPresented] = useState<Presented | null>(null);
  const { busy, error, run } = useAction();
  // Another host or port voids a confirmed key.
  const editTarget = (fn: () => void) => {
    fn();
    setPresented(null);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const credential = auth === 'key' ? { privateKey, ...(passphrase ? { passphrase } : {}) } : { password };
    return run(async () => {
      try {
        const r = await addRemote({ name: name.trim(), host: host.trim(), port, username: username.trim(), ...credential, ...(installDir.trim() ? { installDir: installDir.trim() } : {}), ...(presented ? { hostKeySha256: presented.sha256 } : {}) });
        await qc.invalidateQueries({ queryKey: ['remote-transporters'] });
        onAdded(r.transporter, r.check);
      } catch (err) {
        if (err instanceof ApiRequestError && err.body.code === 'host_key_confirmation_required') setPresented({ sha256: String(err.body.hostKeySha256), keyType: String(err.body.keyType ?? 'ssh-ed25519') });
        else throw err;
      }
    });
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} aria-labelledby="add-remote-title">
      <h3 id="add-remote-title">Add a remote Transporter</h3>
      <p className="muted small">A Linux host near the ESXi hosts or the storage. Nothing needs to be installed there: Vaultline copies its own Node.js and the Transporter over SSH.</p>
      <div className="form-row">
        <label>
          Name
          <input name="remoteName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} placeholder="site-b" />
        </label>
        <label>
          User
          <input name="remoteUser" value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
          <span className="muted small">root gets a systemd unit; another user a supervised process in its home.</span>
        </label>
      </div>
      <div className="form-row">
        <label>
          Host
          <input name="remoteHost" value={host} onChange={(e) => editTarget(() => setHost(e.target.value))} required className="mono" placeholder="10.1.2.3" />
        </label>
        <label>
          SSH port
          <input name="remotePort" type="number" min={1} max={65535} value={Number.isFinite(port) ? port : ''} onChange={(e) => editTarget(() => setPort(e.target.valueAsNumber))} required />
        </label>
      </div>
      <fieldset className="segmented">
        <legend>Sign in with</legend>
        <label>
          <input type="radio" name="remoteAuth" checked={auth === 'key'} onChange={() => setAuth('key')} /> SSH key
        </label>
        <label>
          <input type="radio" name="remoteAuth" checked={auth === 'password'} onChange={() => setAuth('password')} /> Password
        </label>
      </fieldset>
      {auth === 'key' ? (
        <>
          <label>
            SSH private key
            <textarea name="remoteKey" value={privateKey} onChange={(e) => setPrivateKey(e.target.value)} required rows={5} className="mono" placeholder="-----BEGIN OPENSSH PRIVATE KEY-----" spellCheck={false} />
          </label>
          <label>
            <span>
              Key passphrase <span className="muted">(if it has one)</span>
            </span>
            <input name="remotePassphrase" type="password" value={passphrase} onChange={(e) => setPassphrase(e.target.value)} autoComplete="off" />
          </label>
        </>
      ) : (
        <label>
          SSH password
          <input name="remotePassword" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required autoComplete="new-password" />
        </label>
      )}
      <span className="muted small">Sealed with the appliance key before it is stored; never logged.</span>
      <label>
        <span>
          Install folder <span className="muted">(optional)</span>
        </span>
        <input name="installDir" value={installDir} onChange={(e) => setInstallDir(e.target.value)} className="mono" placeholder="/opt/vaultline-transporter (root) or ~/.vaultline-transporter" />
      </label>
      {presented && (
        <HostKeyConfirm fingerprint={presented.sha256}>
          <strong>
            {host}:{port}
          </strong>{' '}
          presents this {presented.keyType} host key. Compare it on the host before trusting it: <code>ssh-keygen -lf /etc/ssh/ssh_host_{presented.keyType.replace(/^ssh-|-.*$/g, '')}_key.pub</code>
        </HostKeyConfirm>
      )}
      <FormError message={error} />
      <div className="form-actions">
        <button type="button" className="link" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? (presented ? 'Checking the host…' : 'Connecting…') : presented ? 'Trust this host key and add' : 'Connect'}
        </button>
      </div>
    </form>
  );
}
