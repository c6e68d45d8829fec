import { Component, type ReactNode } from 'react';

/** A page that throws shows what went wrong instead of a blank console. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  override state: { error: Error | null } = { error: null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  override render() {
    if (this.state.error) {
      return (
        <div className="alert error" role="alert">
          This page failed: {this.state.error.message}.{' '}
          <button type="button" className="link" onClick={() => location.reload()}>
            Reload
          </button>
        </div>
      );
    }
    return this.props.children;
  }
}
