#!/usr/bin/env node
// Keeps what a CI run leaves for people to look at, whether the run passed or failed:
//   screenshots/   every PNG the browser tests wrote (.vaultline/e2e-results: each page at 1440×900 and
//                  390×844 from the responsive spec, the wizard, restores, charts…), and the failure
//                  screenshots Playwright took
//   failures/      Playwright's error-context.md of each failed test
//   index.html     the screenshots on one page, with their sizes
//   manifest.json  file, bytes, width, height and SHA-256 of each
// into $CI_ARTIFACTS_DIR (default .ci/artifacts), and prints where they are and what is there.
//
//   node .ci/artifacts.mjs [--require-screens]
// --require-screens: fail when the browser tests wrote no page screenshot (after a passing test run they must have).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const results = path.join(root, '.vaultline', 'e2e-results');
const dest = path.resolve(process.env.CI_ARTIFACTS_DIR || path.join(root, '.ci', 'artifacts'));
const requireScreens = process.argv.includes('--require-screens');

/** Every file under `dir` whose name passes `keep`, as paths relative to `dir`. */
function walk(dir, keep, rel = '') {
  if (!fs.existsSync(path.join(dir, rel))) return [];
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const p = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...walk(dir, keep, p));
    else if (e.isFile() && keep(e.name)) out.push(p);
  }
  return out.sort();
}

/** Width and height from a PNG's IHDR chunk (null when it is not a PNG). */
function pngSize(buf) {
  if (buf.length < 24 || buf.readUInt32BE(0) !== 0x89504e47 || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

fs.rmSync(dest, { recursive: true, force: true });
fs.mkdirSync(path.join(dest, 'screenshots'), { recursive: true });
const manifest = [];
for (const rel of walk(results, (n) => n.endsWith('.png'))) {
  const buf = fs.readFileSync(path.join(results, rel));
  const target = path.join(dest, 'screenshots', rel);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, buf);
  manifest.push({ file: path.join('screenshots', rel), bytes: buf.length, ...(pngSize(buf) ?? {}), sha256: createHash('sha256').update(buf).digest('hex') });
}
const failures = walk(results, (n) => n === 'error-context.md');
for (const rel of failures) {
  const target = path.join(dest, 'failures', rel);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(path.join(results, rel), target);
}
fs.writeFileSync(path.join(dest, 'manifest.json'), `${JSON.stringify({ at: new Date().toISOString(), screenshots: manifest, failures: failures.map((f) => path.join('failures', f)) }, null, 2)}\n`);
fs.writeFileSync(
  path.join(dest, 'index.html'),
  `<!doctype html><meta charset="utf-8"><title>Vaultline CI screenshots</title>
<style>body{font:14px system-ui;margin:1rem;background:#111;color:#ddd}figure{display:inline-block;margin:.5rem;vertical-align:top}img{max-width:360px;border:1px solid #444}figcaption{max-width:360px;word-break:break-all}</style>
<h1>${manifest.length} screenshots</h1>
${manifest.map((m) => `<figure><a href="${esc(m.file)}"><img loading="lazy" src="${esc(m.file)}" alt="${esc(m.file)}"></a><figcaption>${esc(m.file)} · ${m.width ?? '?'}×${m.height ?? '?'}</figcaption></figure>`).join('\n')}
`,
);

const pages = manifest.filter((m) => m.file.startsWith(path.join('screenshots', 'screens') + path.sep));
const at = (w) => pages.filter((m) => m.width === w).length;
const mib = (manifest.reduce((n, m) => n + m.bytes, 0) / 1048576).toFixed(1);
console.log(`CI artifacts in ${dest}: ${manifest.length} screenshots (${mib} MiB; pages: ${at(1440)} at 1440 px, ${at(390)} at 390 px), ${failures.length} failure context${failures.length === 1 ? '' : 's'}; index.html shows them, manifest.json lists them with their SHA-256`);
for (const m of pages) console.log(`  ${m.file} ${m.width}×${m.height} ${m.sha256.slice(0, 16)}`);
if (requireScreens && (at(1440) === 0 || at(390) === 0)) {
  console.error(`CI artifacts: the browser tests passed but left no page screenshot at ${at(1440) === 0 ? '1440' : '390'} px in ${path.join(results, 'screens')}`);
  process.exit(1);
}
