/** Every path of the console, defined once. */
export const paths = {
  overview: '/',
  jobs: '/jobs',
  newJob: '/jobs/new',
  job: (id: string) => `/jobs/${id}`,
  editJob: (id: string) => `/jobs/${id}/edit`,
  runs: '/runs',
  run: (id: string) => `/runs/${id}`,
  repositories: '/repositories',
  repository: (id: string) => `/repositories/${id}`,
  /** The restore wizard, from one restore point or from a VM (its instance UUID or name). */
  restorePoint: (id: string) => `/restore?point=${encodeURIComponent(id)}`,
  restoreVm: (vm: string) => `/restore?vm=${encodeURIComponent(vm)}`,
  restore: '/restore',
  /** The file browser of a restore point (file-level restore). */
  browseFiles: (id: string) => `/restore-points/${encodeURIComponent(id)}/files`,
  /** Instant recovery: the recovered VMs, and the form that recovers a restore point. */
  instantRecoveries: '/instant-recovery',
  newInstantRecovery: (pointId: string) => `/instant-recovery/new?point=${encodeURIComponent(pointId)}`,
  drills: '/drills',
  newDrill: '/drills/new',
  editDrill: (id: string) => `/drills/${id}/edit`,
  notifications: '/notifications',
  transporters: '/transporters',
  vcenters: '/vcenters',
  users: '/users',
  password: '/account/password',
} as const;
