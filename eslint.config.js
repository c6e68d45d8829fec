import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

// Each external system has exactly one owner package. Everything else reaches
// it through that package's exports, so the domain stays free of frameworks.
const owners = {
  bullmq: 'packages/queue',
  ioredis: 'packages/queue',
  '@prisma/client': 'packages/db',
  '@prisma/adapter-pg': 'packages/db',
  pg: 'packages/db',
  fastify: 'apps/director',
  'socket.io': 'apps/director',
  nodemailer: 'apps/director',
  undici: 'packages/vsphere',
  saxes: 'packages/vsphere',
  'node-ssh': 'packages/remote',
  'node-forge': 'packages/tls',
  '@aws-sdk/client-s3': 'packages/repository',
};

const restrictFor = (except) =>
  Object.entries(owners)
    .filter(([, owner]) => !except.includes(owner))
    .map(([name, owner]) => ({ name, message: `only ${owner} may import ${name}` }));

const ownerDirs = [...new Set(Object.values(owners))];

// The engine (packages/core) reaches the outside world only through its ports, which the Transporter
// implements: no database, queue, vSphere client, appliance services or child processes, and nothing of an app.
const engineMessage = 'the engine reaches it through a port (packages/core/src/*/ports.ts) that the Transporter implements';
const notInEngine = ['@vaultline/db', '@vaultline/queue', '@vaultline/vsphere', '@vaultline/appliance', 'node:child_process', 'child_process']
  .concat(['cli', 'director', 'transporter', 'web'].map((app) => `@vaultline/${app}`))
  .map((name) => ({ name, message: engineMessage }));

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/generated/**', '.vaultline/**', 'bench/work/**', '**/.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { paths: restrictFor([]) }],
    },
  },
  ...ownerDirs.map((dir) => ({
    files: [`${dir}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { paths: restrictFor([dir]) }] },
  })),
  // The S3 lab proves its server with an S3 client of its own.
  { files: ['packages/s3-lab/**/*.ts'], rules: { 'no-restricted-imports': ['error', { paths: restrictFor(['packages/repository']) }] } },
  // Type-aware: a promise is awaited, returned, or marked `void` on purpose; none goes where a callback's
  // result is ignored (an async handler's rejection would be lost).
  {
    files: ['apps/*/src/**/*.{ts,tsx}', 'packages/*/src/**/*.ts'],
    ignores: ['**/generated/**'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  // No import cycles inside an app or package: a module and what it imports form a tree, so each part can be
  // read, tested and moved on its own. (Workspace packages are resolved as packages and not followed.)
  {
    files: ['apps/*/src/**/*.{ts,tsx}', 'packages/*/src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.tsx', '.mjs', '.js'] })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/extensions': ['.ts', '.tsx', '.mjs', '.js'],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  // Settings come from the environment through @vaultline/config's schemas (one per app), checked at start;
  // nothing else in the product reads process.env. (The CLI, the lab and the test tools read theirs directly.)
  {
    files: ['apps/director/src/**/*.ts', 'apps/transporter/src/**/*.ts', 'packages/*/src/**/*.ts'],
    ignores: ['packages/config/src/**', 'packages/vsphere-lab/src/**', 'packages/ssh-lab/src/**', 'packages/s3-lab/src/**', 'packages/delivery/src/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read settings through @vaultline/config (its env schemas), not process.env' }],
    },
  },
  {
    files: ['packages/core/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [...restrictFor([]), ...notInEngine], patterns: [{ regex: '(^|/)apps/', message: engineMessage }] }],
    },
  },
  // Handlers depend on the engine and the adapters, never on each other: what two handlers share lives in a
  // module both import (src/sessions.ts, @vaultline/core).
  {
    files: ['apps/transporter/src/handlers/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: restrictFor([]), patterns: [{ regex: '\\.handler(\\.ts)?$', message: 'a handler does not import another handler; move what both need to a shared module' }] },
      ],
    },
  },
  {
    files: ['apps/web/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [...restrictFor([]), { name: 'socket.io', message: 'the web app uses socket.io-client' }] },
      ],
    },
  },
);
