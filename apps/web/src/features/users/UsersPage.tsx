import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { PASSWORD_MIN_LENGTH, type Role, type User } from '@vaultline/contracts';
import { createUser, deleteUser, useUsers } from '../../api/users.ts';
import { ConfirmDialog, useConfirmation } from '../../components/ConfirmDialog.tsx';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { ago } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { useAction } from '../../lib/use-action.ts';
import { TableHead } from '../../components/TableHead.tsx';

const ROLES: { role: Role; help: string }[] = [
  { role: 'viewer', help: 'sees everything, changes nothing' },
  { role: 'operator', help: 'also creates, runs and cancels jobs and restores' },
  { role: 'admin', help: 'also manages vCenters, repositories and users' },
];

function generatePassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}

function AddUserForm({ onAdded }: { onAdded: (u: User, password: string) => void }) {
  const qc = useQueryClient();
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    return run(async () => {
      const u = await createUser({ username, role, password });
      await qc.invalidateQueries({ queryKey: ['users'] });
      onAdded(u, password);
      setUsername('');
      setPassword('');
    });
  };
  return (
    <form className="card form" onSubmit={(e) => void submit(e)} aria-labelledby="add-user-title">
      <h3 id="add-user-title">Add a user</h3>
      <div className="form-row">
        <label>
          Username
          <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} required pattern="[a-zA-Z0-9._\-]{2,64}" title="2–64 letters, digits, dot, dash or underscore" />
        </label>
        <label>
          Role
          <select name="role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r.role} value={r.role}>
                {r.role} — {r.help}
              </option>
            ))}
          </select>
        </label>
      </div>
      <label>
        One-time password <span className="muted">(at least {PASSWORD_MIN_LENGTH} characters; they choose their own at first sign-in)</span>
        <span className="with-suffix">
          <input name="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={PASSWORD_MIN_LENGTH} autoComplete="off" className="mono" />
          <button type="button" onClick={() => setPassword(generatePassword())}>
            Generate
          </button>
        </span>
      </label>
      <FormError message={error} />
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add user'}
        </button>
      </div>
    </form>
  );
}

export default function UsersPage() {
  const me = useMe();
  const admin = can(me.role, 'admin');
  const users = useUsers(admin);
  const qc = useQueryClient();
  const [flash, setFlash] = useState<string | null>(null);
  const removal = useConfirmation(
    (u: User, password) => deleteUser(u.id, password),
    async (_, u) => {
      setFlash(`User ${u.username} deleted.`);
      await qc.invalidateQueries({ queryKey: ['users'] });
    },
    { reauth: true },
  );
  if (!admin) {
    return (
      <Page title="Users">
        <NotAllowed role="admin" />
      </Page>
    );
  }
  return (
    <Page title="Users" subtitle="Who may sign in, and what each may do.">
      {flash && (
        <div className="alert ok" role="status">
          {flash}
        </div>
      )}
      <AddUserForm onAdded={(u, pw) => setFlash(`User ${u.username} (${u.role}) added. Give them the one-time password ${pw}; they must change it at first sign-in.`)} />
      {users.isPending && <Loading what="users" />}
      {users.isError && <LoadError what="users" error={users.error} />}
      {users.data && (
        <section className="card">
          <table className="cards" data-testid="users">
            <TableHead columns={['User', 'Role', 'Last sign-in']} actions="Actions" />
            <tbody>
              {users.data.map((u) => (
                <tr key={u.id} data-testid="user-row">
                  <td data-label="User">
                    <strong>{u.username}</strong> {u.id === me.id && <span className="pill">you</span>} {u.totpEnabled && <span className="pill">two-factor</span>} {u.mustChangePassword && <span className="muted small">one-time password not changed yet</span>}
                  </td>
                  <td data-label="Role">{u.role}</td>
                  <td data-label="Last sign-in">{u.lastLoginAt ? ago(u.lastLoginAt) : <span className="muted">never</span>}</td>
                  <td className="actions">
                    {u.id !== me.id && (
                      <button
                        type="button"
                        className="danger-text"
                        aria-label={`Delete ${u.username}`}
                        onClick={() => removal.ask(u)}
                      >
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <ConfirmDialog {...removal.dialog} title={`Delete user ${removal.subject?.username ?? ''}?`} confirmLabel="Delete user" danger>
        <p>They are signed out everywhere at once. What they did stays in the audit log.</p>
      </ConfirmDialog>
    </Page>
  );
}
