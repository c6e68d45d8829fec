export type Events = 'failures' | 'problems' | 'all';

export const EVENTS: { value: Events; label: string }[] = [
  { value: 'failures', label: 'Failed runs' },
  { value: 'problems', label: 'Failed runs and runs with warnings' },
  { value: 'all', label: 'Every finished run' },
];
