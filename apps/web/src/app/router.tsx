import { lazy, Suspense } from 'react';
import { Link, Route, Routes } from 'react-router';
import { Page } from '../components/Page.tsx';
import { paths } from '../config/paths.ts';

// One chunk per page: the first screen loads only what it shows.
const OverviewPage = lazy(() => import('../features/overview/OverviewPage.tsx'));
const JobsPage = lazy(() => import('../features/jobs/JobsPage.tsx'));
const JobWizardPage = lazy(() => import('../features/jobs/JobWizardPage.tsx'));
const JobPage = lazy(() => import('../features/jobs/JobPage.tsx'));
const RunsPage = lazy(() => import('../features/runs/RunsPage.tsx'));
const RunDetailPage = lazy(() => import('../features/runs/RunDetailPage.tsx'));
const RepositoriesPage = lazy(() => import('../features/repositories/RepositoriesPage.tsx'));
const RepositoryPage = lazy(() => import('../features/repositories/RepositoryPage.tsx'));
const TransportersPage = lazy(() => import('../features/transporters/TransportersPage.tsx'));
const VCentersPage = lazy(() => import('../features/vcenters/VCentersPage.tsx'));
const UsersPage = lazy(() => import('../features/users/UsersPage.tsx'));
const PasswordPage = lazy(() => import('../features/auth/PasswordPage.tsx'));
const RestoreWizardPage = lazy(() => import('../features/restores/RestoreWizardPage.tsx'));
const FileBrowserPage = lazy(() => import('../features/files/FileBrowserPage.tsx'));
const InstantRecoveriesPage = lazy(() => import('../features/instant/InstantRecoveriesPage.tsx'));
const InstantRecoveryFormPage = lazy(() => import('../features/instant/InstantRecoveryFormPage.tsx'));
const DrillsPage = lazy(() => import('../features/drills/DrillsPage.tsx'));
const DrillFormPage = lazy(() => import('../features/drills/DrillFormPage.tsx'));
const NotificationsPage = lazy(() => import('../features/notifications/NotificationsPage.tsx'));

function NotFound() {
  return (
    <Page title="Not found">
      <p>
        There is no such page. <Link to={paths.overview}>Back to the overview</Link>
      </p>
    </Page>
  );
}

export function AppRoutes() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <Routes>
        <Route path={paths.overview} element={<OverviewPage />} />
        <Route path={paths.jobs} element={<JobsPage />} />
        <Route path={paths.newJob} element={<JobWizardPage />} />
        <Route path="/jobs/:id" element={<JobPage />} />
        <Route path="/jobs/:id/edit" element={<JobWizardPage />} />
        <Route path={paths.runs} element={<RunsPage />} />
        <Route path="/runs/:id" element={<RunDetailPage />} />
        <Route path={paths.repositories} element={<RepositoriesPage />} />
        <Route path="/repositories/:id" element={<RepositoryPage />} />
        <Route path={paths.restore} element={<RestoreWizardPage />} />
        <Route path="/restore-points/:id/files" element={<FileBrowserPage />} />
        <Route path={paths.instantRecoveries} element={<InstantRecoveriesPage />} />
        <Route path="/instant-recovery/new" element={<InstantRecoveryFormPage />} />
        <Route path={paths.drills} element={<DrillsPage />} />
        <Route path={paths.newDrill} element={<DrillFormPage />} />
        <Route path="/drills/:id/edit" element={<DrillFormPage />} />
        <Route path={paths.notifications} element={<NotificationsPage />} />
        <Route path={paths.transporters} element={<TransportersPage />} />
        <Route path={paths.vcenters} element={<VCentersPage />} />
        <Route path={paths.users} element={<UsersPage />} />
        <Route path={paths.password} element={<PasswordPage />} />
        <Route path="*" element={<NotFound />} />
      </Routes>
    </Suspense>
  );
}
