/** Every path of the console, defined once. */
export const paths = {
  overview: '/',
  jobs: '/jobs',
  newJob: '/jobs/new',
  editJob: (id: string) => `/jobs/${id}/edit`,
  runs: '/runs',
  run: (id: string) => `/runs/${id}`,
  repositories: '/repositories',
  repository: (id: string) => `/repositories/${id}`,
  transporters: '/transporters',
  vcenters: '/vcenters',
  users: '/users',
  password: '/account/password',
} as const;
