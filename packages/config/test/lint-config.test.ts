/**
 * The lint rules that keep the layers apart (owner imports, process.env, floating promises, import cycles, the engine's zone, handlers apart), shown failing on deliberate violations (the project's own
 * eslint.config.js, run through ESLint's API on snippets placed where they would live).
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
// The probes are not files of any tsconfig: the type-aware rules get them through TypeScript's default project.
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: { languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['apps/*/src/zz-lint-probe.ts', 'apps/*/src/*/zz-lint-probe.ts', 'packages/*/src/zz-lint-probe.ts'] } } } },
});

async function rulesHit(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('the lint configuration', () => {
  it('refuses process.env in the Director, the Transporter and the packages, and allows it in @vaultline/config', async () => {
    const code = 'export const port = process.env.VAULTLINE_PORT;\n';
    for (const file of ['apps/director/src/zz-lint-probe.ts', 'apps/transporter/src/zz-lint-probe.ts', 'packages/repository/src/zz-lint-probe.ts']) {
      expect(await rulesHit(code, file)).toEqual(['no-restricted-properties: \'process.env\' is restricted from being used. read settings through @vaultline/config (its env schemas), not process.env']);
    }
    expect(await rulesHit(code, 'packages/config/src/zz-lint-probe.ts')).toEqual([]);
  });

  it('lets only the owner package import an external system (BullMQ here: packages/queue)', async () => {
    const code = "import { Queue } from 'bullmq';\nexport const q = Queue;\n";
    expect(await rulesHit(code, 'apps/director/src/zz-lint-probe.ts')).toEqual(["no-restricted-imports: 'bullmq' import is restricted from being used. only packages/queue may import bullmq"]);
    expect(await rulesHit(code, 'packages/queue/src/zz-lint-probe.ts')).toEqual([]);
  });

  it('keeps the engine (packages/core) to its ports: no database, queue, vSphere client, appliance, child process or app; the same imports pass in the Transporter', async () => {
    const engine = 'packages/core/src/zz-lint-probe.ts';
    const refused = (name: string, how = '') =>
      `no-restricted-imports: '${name}' import is restricted from being used${how}. the engine reaches it through a port (packages/core/src/*/ports.ts) that the Transporter implements`;
    for (const name of ['@vaultline/db', '@vaultline/queue', '@vaultline/vsphere', '@vaultline/appliance', 'node:child_process', 'child_process', '@vaultline/transporter']) {
      const code = `import * as m from '${name}';\nexport const x = m;\n`;
      expect(await rulesHit(code, engine)).toEqual([refused(name)]);
      expect(await rulesHit(code, 'apps/transporter/src/zz-lint-probe.ts')).toEqual([]);
    }
    const app = '../../../apps/transporter/src/sweep.ts';
    expect(await rulesHit(`import { sweepOrphans } from '${app}';\nexport const s = sweepOrphans;\n`, engine)).toEqual([refused(app, ' by a pattern')]);
    expect(await rulesHit("import type { Logger } from '@vaultline/logger';\nimport { DiskReader } from '@vaultline/repository';\nexport type L = Logger;\nexport const r = DiskReader;\n", engine)).toEqual([]);
  });

  it("refuses a Transporter handler importing another handler; a handler's own modules pass", async () => {
    const file = 'apps/transporter/src/handlers/zz-lint-probe.ts';
    expect(await rulesHit("import { createBackupVmHandler } from './backup-vm.handler.ts';\nexport const h = createBackupVmHandler;\n", file)).toEqual([
      "no-restricted-imports: './backup-vm.handler.ts' import is restricted from being used by a pattern. a handler does not import another handler; move what both need to a shared module",
    ]);
    expect(await rulesHit("import { runDiskRows } from './run-disk-rows.ts';\nimport type { VCenterRow } from '../sessions.ts';\nexport const r = runDiskRows;\nexport type V = VCenterRow;\n", file)).toEqual([]);
  });

  it('refuses a promise left floating in product code (type-aware: it knows the call returns a promise)', async () => {
    const code = 'async function save(): Promise<void> {}\nexport function onClick(): void {\n  save();\n}\n';
    expect(await rulesHit(code, 'apps/director/src/zz-lint-probe.ts')).toEqual([expect.stringMatching(/^@typescript-eslint\/no-floating-promises: Promises must be awaited/)]);
    expect(await rulesHit(code.replace('  save();', '  void save();'), 'apps/director/src/zz-lint-probe.ts')).toEqual([]);
  });

  it('refuses an import cycle inside a package (two real files that import each other); the same files without the loop pass', async () => {
    const dir = path.join(ROOT, 'packages/config/src');
    const files = ['zz-cycle-probe-a.ts', 'zz-cycle-probe-b.ts', 'zz-cycle-probe-c.ts', 'zz-cycle-probe-d.ts'].map((f) => path.join(dir, f));
    try {
      writeFileSync(files[0]!, "import { b } from './zz-cycle-probe-b.ts';\nexport const a = (): number => b() + 1;\n");
      writeFileSync(files[1]!, "import { a } from './zz-cycle-probe-a.ts';\nexport const b = (): number => a() - 1;\n");
      writeFileSync(files[2]!, "import { d } from './zz-cycle-probe-d.ts';\nexport const c = (): number => d() + 1;\n");
      writeFileSync(files[3]!, 'export const d = (): number => 1;\n');
      const hits = async (file: string) => (await eslint.lintFiles([file])).flatMap((r) => r.messages.map((m) => `${m.ruleId}: ${m.message}`));
      expect(await hits(files[0]!)).toEqual(['import-x/no-cycle: Dependency cycle detected']);
      expect(await hits(files[2]!)).toEqual([]);
    } finally {
      for (const f of files) rmSync(f, { force: true });
    }
  });
});
