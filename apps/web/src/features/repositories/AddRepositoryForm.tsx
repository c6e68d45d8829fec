import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { RepositoryCreate, RepositoryDto } from '@vaultline/contracts';
import { useTransporters } from '../../api/health.ts';
import { createRepository } from '../../api/repositories.ts';
import { FormError } from '../../components/FormError.tsx';
import { HostKeyConfirm } from '../../components/HostKeyConfirm.tsx';
import { ApiRequestError } from '../../lib/api.ts';
import { useAction } from '../../lib/use-action.ts';

export function AddRepositoryForm({ onAdded, onCancel }: { onAdded: (r: RepositoryDto) => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const [kind, setKind] = useState<RepositoryCreate['kind']>('local');
  const [name, setName] = useState('');
  const [path, setPath] = useState('');
  const [sftpUrl, setSftpUrl] = useState('');
  const [privateKey, setPrivateKey] = useState('');
  /** A repository another Transporter serves: `<transporter id>/<served name>`. */
  const [served, setServed] = useState('');
  const serving = (useTransporters().data ?? []).filter((t) => t.serves);
  const [s3, setS3] = useState({ endpoint: '', region: 'us-east-1', bucket: '', prefix: '', accessKeyId: '', secretAccessKey: '' });
  const s3Field = (field: keyof typeof s3) => ({ name: field, value: s3[field], onChange: (e: { target: { value: string } }) => setS3({ ...s3, [field]: e.target.value }) });
  const [hardened, setHardened] = useState(false);
  const [encrypt, setEncrypt] = useState(false);
  const [passphrase, setPassphrase] = useState('');
  const [passphrase2, setPassphrase2] = useState('');
  /** The SFTP server's host key fingerprint, once the Director has shown it for confirmation. */
  const [hostKey, setHostKey] = useState<string | null>(null);
  const { busy, error, setError, run } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (encrypt && passphrase !== passphrase2) {
      setError('The two passphrases differ.');
      return;
    }
    const secret = encrypt ? { passphrase } : {};
    const body: RepositoryCreate =
      kind === 'local'
        ? { kind, name, location: path, hardened, ...secret }
        : kind === 's3'
          ? { kind, name, ...s3, endpoint: s3.endpoint || undefined, ...secret }
          : kind === 'transporter'
            ? { kind, name, transporterId: served.slice(0, served.lastIndexOf('/')), repository: served.slice(served.lastIndexOf('/') + 1), ...secret }
            : { kind, name, location: sftpUrl, privateKey, ...(hostKey ? { hostKeySha256: hostKey } : {}), ...secret };
    return run(async () => {
      try {
        const repo = await createRepository(body);
        await qc.invalidateQueries({ queryKey: ['repositories'] });
        onAdded(repo);
      } catch (err) {
        if (err instanceof ApiRequestError && err.body.code === 'host_key_confirmation_required') setHostKey(String(err.body.hostKeySha256));
        else throw err;
      }
    });
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} aria-labelledby="add-repo-title">
      <h3 id="add-repo-title">Add a repository</h3>
      <fieldset className="segmented">
        <legend>Where</legend>
        <label>
          <input type="radio" name="kind" checked={kind === 'local'} onChange={() => setKind('local')} /> Local folder
        </label>
        <label>
          <input type="radio" name="kind" checked={kind === 'sftp'} onChange={() => setKind('sftp')} /> SFTP server
        </label>
        <label>
          <input type="radio" name="kind" checked={kind === 's3'} onChange={() => setKind('s3')} /> S3 object storage
        </label>
        <label>
          <input type="radio" name="kind" checked={kind === 'transporter'} onChange={() => setKind('transporter')} /> On a Transporter
        </label>
      </fieldset>
      <label>
        Name
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </label>
      {kind === 's3' ? (
        <>
          <label>
            Endpoint
            <input {...s3Field('endpoint')} placeholder="https://s3.example.com (empty for AWS)" className="mono" />
          </label>
          <label>
            Region
            <input {...s3Field('region')} required className="mono" />
          </label>
          <label>
            Bucket
            <input {...s3Field('bucket')} required className="mono" />
            <span className="muted small">An existing bucket. For immutable restore points it must have been created with Object Lock; Vaultline turns versioning on when it is off.</span>
          </label>
          <label>
            Folder in the bucket
            <input {...s3Field('prefix')} placeholder="vaultline" className="mono" />
          </label>
          <label>
            Access key id
            <input {...s3Field('accessKeyId')} required className="mono" autoComplete="off" />
          </label>
          <label>
            Secret access key
            <input {...s3Field('secretAccessKey')} type="password" required autoComplete="off" />
            <span className="muted small">Sealed with the appliance key before it is stored.</span>
          </label>
        </>
      ) : kind === 'transporter' ? (
        <label>
          Served repository
          <select name="served" value={served} onChange={(e) => setServed(e.target.value)} required>
            <option value="">{serving.length ? 'Choose one' : 'No Transporter serves a repository'}</option>
            {serving.flatMap((t) =>
              t.serves!.repositories.map((r) => (
                <option key={`${t.id}/${r}`} value={`${t.id}/${r}`}>
                  {r} on {t.name} ({t.serves!.address})
                </option>
              )),
            )}
          </select>
          <span className="muted small">
            A folder a repository-side Transporter serves (VAULTLINE_SERVE_REPOSITORIES) over mutual TLS with certificates this Director issued. The Transporters that back up into it
            compress and encrypt; it stores only what it lacks and never gets the passphrase.
          </span>
        </label>
      ) : kind === 'local' ? (
        <>
          <label>
            Path
            <input name="path" value={path} onChange={(e) => setPath(e.target.value)} required placeholder="/srv/vaultline" className="mono" />
            <span className="muted small">An absolute path on the appliance (Director and Transporters). An existing Vaultline repository there is adopted if its passphrase matches.</span>
          </label>
          <label className="check-field">
            <input type="checkbox" name="hardened" checked={hardened} onChange={(e) => setHardened(e.target.checked)} />
            <span>
              Hardened (immutable files)
              <span className="muted small block">
                The files of restore points a job keeps immutable are locked on the filesystem (chattr +i) until their date: nobody but root can delete them early. Needs ext4, XFS or Btrfs.
              </span>
            </span>
          </label>
        </>
      ) : (
        <>
          <label>
            SFTP location
            <input
              name="sftpUrl"
              value={sftpUrl}
              onChange={(e) => {
                setSftpUrl(e.target.value);
                setHostKey(null); // another server voids a confirmed key
              }}
              required
              placeholder="sftp://backup@nas.example:22/srv/vaultline"
              className="mono"
            />
          </label>
          <label>
            SSH private key
            <textarea name="privateKey" value={privateKey} onChange={(e) => setPrivateKey(e.target.value)} required rows={5} className="mono" placeholder="-----BEGIN OPENSSH PRIVATE KEY-----" spellCheck={false} />
            <span className="muted small">Sealed with the appliance key before it is stored.</span>
          </label>
          {hostKey && <HostKeyConfirm fingerprint={hostKey} />}
        </>
      )}
      <label className="check-field">
        <input type="checkbox" checked={encrypt} onChange={(e) => setEncrypt(e.target.checked)} />
        <span>
          Encrypt with a passphrase (AES-256-GCM)
          <span className="muted small block">Optional. Everything written is encrypted before it leaves the Transporter.</span>
        </span>
      </label>
      {encrypt && (
        <>
          <div className="alert warn" role="note">
            Keep this passphrase somewhere safe outside the appliance. The appliance keeps a sealed copy, but if the appliance is lost, nothing — not Vaultline, not support — can read
            these backups without it. It cannot be recovered or reset.
          </div>
          <label>
            Passphrase <span className="muted">(at least 8 characters)</span>
            <input name="passphrase" type="password" autoComplete="new-password" minLength={8} value={passphrase} onChange={(e) => setPassphrase(e.target.value)} required />
          </label>
          <label>
            Passphrase again
            <input name="passphrase2" type="password" autoComplete="new-password" value={passphrase2} onChange={(e) => setPassphrase2(e.target.value)} required />
          </label>
        </>
      )}
      <FormError message={error} />
      <div className="form-actions">
        <button type="button" className="link" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Creating…' : hostKey && kind === 'sftp' ? 'Trust this host key and add' : 'Add repository'}
        </button>
      </div>
    </form>
  );
}
