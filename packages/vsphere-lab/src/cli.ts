/**
 * Lab CLI: `npx tsx packages/vsphere-lab/src/cli.ts <command>` (the root
 * `npm run lab -- <command>` forwards here).
 *
 *   up [--demo] [--san] [--no-hotadd] [--port N]   start detached, print the state JSON
 *   down                                          stop; detach loop devices, unmount, remove the run folder
 *   status                                        print the state JSON and whether the server is alive
 *   create-vm --name N --disk 4G[:thick][:pvscsi|lsilogic|ide|sata][:datastore] ... [--no-cbt] [--power-on]
 *   write --vm N [--disk 0] --offset 1M --length 4M [--pattern zeros|text|random] [--seed S]
 *   sha256 --vm N [--disk 0] [--snapshot snapshot-12]
 *   build                                         install the Debian toolchain if needed (root) and build/cache the server and the demo disk
 *
 * The lab lives in <repo>/.vaultline/lab (git-ignored): tls/ keeps the
 * certificate across runs (stable thumbprint), run/ is removed by `down`.
 */
import { parseArgs } from 'node:util';
import { buildLabServer } from './build.ts';
import { labDown, labStatus, labUp, sharedLab } from './control.ts';
import { buildDemoDisk } from './demo-disk.ts';
import type { LabDiskSpec, WriteOp } from './types.ts';

function size(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new Error(`bad size: ${text}`);
  const mult: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  return Math.round(Number(m[1]) * mult[m[2]!.toUpperCase()]!);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    allowPositionals: false,
    options: {
      demo: { type: 'boolean' },
      san: { type: 'boolean' },
      'no-hotadd': { type: 'boolean' },
      port: { type: 'string' },
      name: { type: 'string' },
      disk: { type: 'string', multiple: true },
      'no-cbt': { type: 'boolean' },
      'power-on': { type: 'boolean' },
      vm: { type: 'string' },
      offset: { type: 'string' },
      length: { type: 'string' },
      pattern: { type: 'string' },
      seed: { type: 'string' },
      snapshot: { type: 'string' },
    },
  });
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

  switch (command) {
    case 'build': {
      // The demo's partitioned disk too (installs ntfs-3g/wimtools as root), so tests and `up --demo` find it cached.
      print({ binary: await buildLabServer(), demoDisk: buildDemoDisk().dir });
      return;
    }
    case 'up': {
      print(await labUp({ demo: values.demo, san: values.san, hotadd: !values['no-hotadd'], port: values.port ? Number(values.port) : 0 }));
      return;
    }
    case 'down': {
      await labDown();
      print({ stopped: true });
      return;
    }
    case 'status': {
      print(labStatus() ?? { running: false });
      return;
    }
    case 'create-vm': {
      const lab = sharedLab();
      if (!values.name) throw new Error('--name is required');
      const disks: LabDiskSpec[] = (values.disk ?? ['4G']).map((d) => {
        const [cap, ...opts] = d.split(':');
        const spec: LabDiskSpec = { capacityBytes: size(cap!) };
        for (const o of opts) {
          if (o === 'thick') spec.thin = false;
          else if (o === 'thin') spec.thin = true;
          else if (['pvscsi', 'lsilogic', 'ide', 'sata'].includes(o)) spec.controller = o as LabDiskSpec['controller'];
          else spec.datastore = o;
        }
        return spec;
      });
      print(await lab.createVm({ name: values.name, disks, cbt: !values['no-cbt'], powerOn: values['power-on'] }));
      return;
    }
    case 'write': {
      const lab = sharedLab();
      const op: WriteOp = {
        offset: size(values.offset ?? '0'),
        length: size(values.length ?? '1M'),
        pattern: (values.pattern ?? 'random') as WriteOp['pattern'],
        seed: values.seed ? Number(values.seed) : 1,
      };
      await lab.guestWrite(values.vm!, Number(values.disk?.[0] ?? 0), [op]);
      print({ written: op });
      return;
    }
    case 'sha256': {
      const lab = sharedLab();
      const sha = await lab.diskSha256(values.vm!, Number(values.disk?.[0] ?? 0), values.snapshot ? { snapshot: values.snapshot } : {});
      print({ vm: values.vm, disk: Number(values.disk?.[0] ?? 0), snapshot: values.snapshot, sha256: sha });
      return;
    }
    default:
      process.stderr.write('usage: lab build | up [--demo] [--san] [--no-hotadd] [--port N] | down | status | create-vm | write | sha256\n');
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
