import type { ReactNode } from 'react';

/** The SSH host key a server presented, for the admin to check before it is pinned. */
export function HostKeyConfirm({ fingerprint, children }: { fingerprint: string; children?: ReactNode }) {
  return (
    <div className="alert warn confirm-thumbprint" role="alert" data-testid="host-key">
      <p>{children ?? <>The server presents this SSH host key. Check it on the server before trusting it (for example <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code>).</>}</p>
      <p className="mono thumb">{fingerprint}</p>
      <p className="small">It is pinned: if the server’s key changes later, Vaultline refuses to connect and names both fingerprints.</p>
    </div>
  );
}
