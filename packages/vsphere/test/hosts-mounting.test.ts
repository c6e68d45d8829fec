import { describe, expect, it } from 'vitest';
import { hostsMounting } from '../src/index.ts';

const mount = (host: string, mounted = true, accessible = true) => ({ host, mounted, accessible });

describe('hostsMounting: the hosts that mount a datastore, from both of vCenter\'s lists', () => {
  const hosts = [
    { moref: 'host-1', datastores: ['datastore-1', 'datastore-2'] },
    { moref: 'host-2', datastores: ['datastore-1'] },
    { moref: 'host-3', datastores: [] },
  ].map((h) => ({ ...h, name: h.moref, datacenter: 'dc' }));

  it("counts a host the datastore's own list omits when the host lists the datastore (a lagging view)", () => {
    expect(hostsMounting({ hosts }, { moref: 'datastore-1', hosts: [mount('host-2')] })).toEqual(['host-1', 'host-2']);
  });

  it('counts a host only the datastore lists', () => {
    expect(hostsMounting({ hosts }, { moref: 'datastore-2', hosts: [mount('host-3')] })).toEqual(['host-1', 'host-3']);
  });

  it('leaves out a host the datastore says is unmounted or inaccessible, whatever the host lists', () => {
    expect(hostsMounting({ hosts }, { moref: 'datastore-1', hosts: [mount('host-1', false), mount('host-2', true, false)] })).toEqual([]);
  });
});
