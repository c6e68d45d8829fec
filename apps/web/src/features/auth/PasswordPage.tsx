import { useState } from 'react';
import { Page } from '../../components/Page.tsx';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { PasswordForm } from './PasswordForm.tsx';
import { TwoFactorSection } from './TwoFactorSection.tsx';

export default function PasswordPage() {
  const me = useMe();
  const [done, setDone] = useState(false);
  return (
    <Page title="Change password" subtitle={`Signed in as ${me.username} (${me.role}). Your other sessions are signed out when the password changes.`}>
      {done && (
        <div className="alert ok" role="status">
          Password changed.
        </div>
      )}
      <PasswordForm className="card form narrow" currentLabel="Current password" submitLabel="Change password" busyLabel="Changing…" onChanged={() => setDone(true)} />
      {can(me.role, 'admin') && <TwoFactorSection />}
    </Page>
  );
}
