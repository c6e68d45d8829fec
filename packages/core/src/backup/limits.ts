/**
 * Concurrency limits of one Transporter: at most N disk tasks at once across
 * all VMs, and at most M network-mode streams per ESXi host (VMware's NFC
 * buffers are shared per host, so too many streams slow every backup on it).
 */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly size: number) {}

  async acquire(): Promise<() => void> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.waiters.shift()?.();
    };
  }

  get inUse(): number {
    return this.active;
  }
}

export class TransporterLimits {
  private readonly disks: Semaphore;
  private readonly hosts = new Map<string, Semaphore>();

  constructor(
    maxDiskTasks: number,
    private readonly networkStreamsPerHost: number,
  ) {
    this.disks = new Semaphore(maxDiskTasks);
  }

  /** Waits for a disk slot (and, for network modes, a slot on that host); returns the release. */
  async disk(transport: string, host: string | undefined): Promise<() => void> {
    const releaseDisk = await this.disks.acquire();
    if ((transport === 'nbd' || transport === 'nbdssl') && host) {
      let sem = this.hosts.get(host);
      if (!sem) this.hosts.set(host, (sem = new Semaphore(this.networkStreamsPerHost)));
      const releaseHost = await sem.acquire();
      return () => {
        releaseHost();
        releaseDisk();
      };
    }
    return releaseDisk;
  }
}
