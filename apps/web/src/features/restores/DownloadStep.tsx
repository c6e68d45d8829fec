import { useState } from 'react';
import type { RestorePointDetail } from '@vaultline/contracts';
import { diskDownloadUrl, ovaUrl } from '../../api/restores.ts';
import { formatBytes } from '../../lib/format.ts';

/** Download: each disk as raw or VMDK, or the VM as an OVA (chunked or whole). Plain links: the browser streams them. */
export function DownloadStep({ point }: { point: RestorePointDetail }) {
  const [layout, setLayout] = useState<'chunked' | 'whole'>('chunked');
  return (
    <div className="step-body">
      <section aria-labelledby="dl-disks">
        <h4 id="dl-disks">A disk</h4>
        <p className="muted small">Raw: the disk byte for byte, its full size. VMDK: streamOptimized (compressed, zeros left out), what qemu-img and ESXi imports read.</p>
        <table className="compact cards" data-testid="download-disks" aria-labelledby="dl-disks">
          <tbody>
            {point.disks.map((d) => (
              <tr key={d.key}>
                <td data-label="Disk" className="name-cell">
                  <strong>{d.label}</strong> <span className="muted">{formatBytes(d.capacityBytes)}</span>
                </td>
                <td className="actions">
                  <a className="button" href={diskDownloadUrl(point.id, d.key, 'raw')} download>
                    Raw image<span className="sr-only"> of {d.label}</span>
                  </a>{' '}
                  <a className="button" href={diskDownloadUrl(point.id, d.key, 'vmdk')} download>
                    VMDK<span className="sr-only"> of {d.label}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <fieldset className="choices">
        <legend>The VM, as an OVA</legend>
        {point.hardware === null ? (
          <p className="muted">This restore point holds no hardware description, so it cannot be packaged as a VM; download its disks.</p>
        ) : (
          <>
            <label className={`choice ${layout === 'chunked' ? 'chosen' : ''}`}>
              <input type="radio" name="ovaLayout" checked={layout === 'chunked'} onChange={() => setLayout('chunked')} />
              <span className="choice-text">
                <strong>Chunked (recommended)</strong>
                <span className="muted small block">One pass: the download starts at once, each disk’s VMDK split into OVF chunk files (ovftool and vSphere’s import read them; some other importers do not).</span>
              </span>
            </label>
            <label className={`choice ${layout === 'whole' ? 'chosen' : ''}`}>
              <input type="radio" name="ovaLayout" checked={layout === 'whole'} onChange={() => setLayout('whole')} />
              <span className="choice-text">
                <strong>One file per disk</strong>
                <span className="muted small block">For importers that do not read chunks. Every disk is read and compressed twice (sizes first), so it takes about twice as long and starts only after the first pass.</span>
              </span>
            </label>
            <p>
              <a className="button primary" href={ovaUrl(point.id, layout)} download>
                Download the OVA
              </a>
            </p>
          </>
        )}
      </fieldset>
    </div>
  );
}
